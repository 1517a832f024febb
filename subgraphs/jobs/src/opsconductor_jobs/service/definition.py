"""The shapes of a job definition: what a caller sent (``*Draft``) and what was checked (``ValidJob``).

A ``ValidJob`` is the definition with defaults applied; its steps and policy are already the run
plan's own types (:mod:`opsconductor_shared.runplan` ``Step`` / ``Policy``), so a plan is the
definition rendered, not a copy of it. A version snapshot is ``ValidJob.to_snapshot()``: camelCase
JSON, the same keys as ``RunPlan.to_json()``. Stored snapshots and rows written by older versions
load through :func:`load_step` / :func:`load_policy`, which leave every key they lack (or hold as
null) to the model's defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsconductor_jobs.models import Job
from opsconductor_jobs.service.render import ParameterDef
from opsconductor_shared.runplan import Policy, Step

# ---- input (plain data; the resolver converts GraphQL inputs into these) ----------------------


@dataclass
class ScriptDraft:
    interpreter: str
    body: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class TransferDraft:
    direction: str
    destination: str
    source: str | None = None
    content: str | None = None
    mode: str | None = None


@dataclass
class StepDraft:
    name: str
    command: str = ""
    timeout_seconds: int | None = None
    continue_on_error: bool | None = None
    type: str | None = None  # None: "command"
    working_directory: str | None = None
    env: list[tuple[str, str]] | None = None
    expected_exit_codes: list[int] | None = None
    script: ScriptDraft | None = None
    transfer: TransferDraft | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepDraft:
        """From a mapping with the same (snake_case) keys: a GraphQL input (``dataclasses.asdict``)
        or a valid step (``Step.model_dump()``); env entries are ``{name, value}`` mappings."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        env, script, transfer = values.get("env"), values.get("script"), values.get("transfer")
        values["env"] = None if env is None else [(str(e["name"]), str(e["value"])) for e in env]
        values["expected_exit_codes"] = _listed(values.get("expected_exit_codes"))
        values["script"] = (
            None if script is None else ScriptDraft(**{**script, "arguments": list(script["arguments"])})
        )
        values["transfer"] = None if transfer is None else TransferDraft(**transfer)
        return cls(**values)


def _listed(values: Any) -> list[int] | None:
    return None if values is None else list(values)


@dataclass
class PolicyDraft:
    """Every field None means "the default" (``runplan.Policy``)."""

    max_parallel: int | None = None
    batch_size: int | None = None
    batch_percent: int | None = None
    fail_fast_threshold: int | None = None
    retries: int | None = None
    retry_backoff_seconds: float | None = None
    timeout_seconds: int | None = None
    concurrency: str | None = None
    allow_host_overlap: bool | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyDraft:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SelectorDraft:
    tags: list[str] = field(default_factory=list)
    os_types: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)


@dataclass
class JobDraft:
    name: str
    steps: list[StepDraft]
    target_ids: list[str] = field(default_factory=list)
    description: str | None = None
    max_parallel: int | None = None  # shorthand for policy.max_parallel
    policy: PolicyDraft | None = None
    parameters: list[ParameterDef] = field(default_factory=list)
    target_selector: SelectorDraft | None = None


# ---- validated definition (also the snapshot of a version) ------------------------------------

STEP_KEYS = frozenset(Step.model_fields) | {f.alias for f in Step.model_fields.values() if f.alias}
POLICY_KEYS = frozenset(Policy.model_fields) | {f.alias for f in Policy.model_fields.values() if f.alias}


def load_step(data: Mapping[str, Any]) -> Step:
    """A stored step (snapshot JSON, camelCase, or a ``job_steps`` row's columns, snake_case).

    Older rows and snapshots lack keys or hold null or ``[]`` where a default is meant (rows from
    before migration 0002 have ``env = []``, ``expected_exit_codes = []`` meaning ``[0]``): those
    keys are left out, so the model's defaults apply.
    """
    values = {k: v for k, v in data.items() if k in STEP_KEYS and v is not None}
    for key in ("expectedExitCodes", "expected_exit_codes", "type"):
        if key in values and not values[key]:
            del values[key]
    return Step.model_validate(values)


def load_policy(data: Mapping[str, Any] | None) -> Policy:
    """A stored policy: rows from before 0002 hold only ``maxParallel`` (or nothing)."""
    return Policy.model_validate({k: v for k, v in (data or {}).items() if k in POLICY_KEYS})


def dump(model: Step | Policy) -> dict[str, Any]:
    """The stored (and GraphQL ``JSON``) form: camelCase JSON."""
    return model.model_dump(mode="json", by_alias=True)


@dataclass
class ValidJob:
    name: str
    description: str | None
    steps: list[Step]
    target_ids: list[str]
    policy: Policy = field(default_factory=Policy)
    parameters: list[ParameterDef] = field(default_factory=list)
    target_selector: dict[str, list[str]] | None = None

    def to_snapshot(self) -> dict[str, Any]:
        """The whole definition as JSON: stored per version, compared to detect a real edit."""
        return {
            "name": self.name,
            "description": self.description,
            "steps": [dump(s) for s in self.steps],
            "targetIds": list(self.target_ids),
            "targetSelector": self.target_selector,
            "parameters": [p.to_json() for p in self.parameters],
            "policy": dump(self.policy),
        }

    @classmethod
    def from_snapshot(cls, d: Mapping[str, Any]) -> ValidJob:
        return cls(
            name=str(d["name"]),
            description=d.get("description"),
            steps=[load_step(s) for s in d.get("steps") or ()],
            target_ids=[str(t) for t in d.get("targetIds") or ()],
            policy=load_policy(d.get("policy")),
            parameters=[ParameterDef.from_json(p) for p in d.get("parameters") or ()],
            target_selector=d.get("targetSelector"),
        )


def valid_from_model(row: Job) -> ValidJob:
    """The current definition from the rows (needs 'steps' and 'targets' prefetched)."""
    return ValidJob(
        name=row.name,
        description=row.description,
        steps=[load_step({key: getattr(s, key) for key in Step.model_fields}) for s in row.ordered_steps()],
        target_ids=row.target_ids(),
        policy=load_policy(row.policy),
        parameters=[ParameterDef.from_json(p) for p in row.parameters or ()],
        target_selector=row.target_selector or None,
    )


def draft_from_valid(job: ValidJob) -> JobDraft:
    """Back to a draft, so an update can patch some fields and validate the whole again."""
    selector = job.target_selector or {}
    return JobDraft(
        name=job.name,
        description=job.description,
        steps=[StepDraft.from_dict(s.model_dump()) for s in job.steps],
        target_ids=list(job.target_ids),
        policy=PolicyDraft.from_dict(job.policy.model_dump()),
        parameters=list(job.parameters),
        target_selector=SelectorDraft(
            tags=list(selector.get("tags", [])),
            os_types=list(selector.get("osTypes", [])),
            environments=list(selector.get("environments", [])),
        )
        if job.target_selector
        else None,
    )
