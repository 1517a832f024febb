"""The run plan: jobs' ``jobPlan`` answer as a typed :class:`RunPlan`, the connection grant, the
stored form of a run's plan, and the engine's ``ExecutionPlan`` (built in one function).

``RunPlan`` (``opsconductor_shared.runplan``) is the one plan shape: jobs answers it (its JSON keys
are the ``JobPlan`` step/policy fields), executions stores its JSON with the run
(``Execution.plan``) and retries from it, and :func:`engine_plan` hands it to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from opsconductor_executions.models import Execution
from opsconductor_ray.protocol import CredentialRef, ExecutionPlan, TargetSpec
from opsconductor_shared.client import ServiceCallError, ServiceClient
from opsconductor_shared.errors import DependencyUnavailableError, NotFoundError, ValidationError
from opsconductor_shared.logging import get_logger
from opsconductor_shared.runplan import RunPlan

log = get_logger("opsconductor.executions")

# checkTargets: false — the connection grant checks the targets, authoritatively (item 6: once).
JOB_PLAN_QUERY = """query($id: ID!, $parameters: JSON, $targetIds: [ID!]) {
  jobPlan(jobId: $id, parameters: $parameters, targetIds: $targetIds, checkTargets: false) { __typename
  ... on JobPlan { plan dangerous { stepName rule reason match } }
  ... on UnknownTargets { message targetIds }
  ... on ValidationFailed { message field }
  ... on DependencyUnavailable { message service }
  ... on Error { message } } }"""
GRANT_MUTATION = """mutation($ids: [ID!]!) { issueConnectionGrant(targetIds: $ids) {
  __typename ... on ConnectionGrant { grant resolverUrl expiresAt targets { id name host port method } }
  ... on Error { message } } }"""
TARGETS_QUERY = """query($ids: [ID!]!) { targetsByIds(ids: $ids) { id name
  communicationMethods { type host port isPrimary isActive } } }"""


@dataclass(frozen=True)
class JobRun:
    """What jobs planned for one run: the typed plan and its dangerous-command findings."""

    plan: RunPlan
    dangerous: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Grant:
    """A short-lived connection grant for a run's targets (targets subgraph)."""

    grant: str
    resolver_url: str
    expires_at: str | None
    targets: list[dict[str, Any]]
    """``{id, name, host, port, method}`` per target, in the order asked."""


def parse_run_plan(data: dict[str, Any]) -> RunPlan:
    """A RunPlan from its JSON form; a malformed one is the caller's ValidationError."""
    try:
        return RunPlan.from_json(data)
    except PydanticValidationError as exc:
        raise ValidationError(f"invalid run plan: {exc.errors()[0]['msg']}", field="plan") from exc


def stored_plan(execution: Execution) -> JobRun:
    """The plan a run was made with, from its row: the one place that reads ``Execution.plan``.

    Rows written before RunPlan hold ``{steps, policy, targets, dangerous}`` (steps and policy
    already in camelCase with defaults, ``targets`` the grant's answer); they are converted here.
    """
    raw = dict(execution.plan or {})
    dangerous = execution.dangerous if execution.dangerous is not None else list(raw.get("dangerous") or [])
    if "jobId" not in raw:  # the older dict shape
        raw = {
            "jobId": execution.job_id,
            "serial": execution.job_serial or "",
            "name": execution.job_name,
            "version": execution.job_version,
            "steps": [_old_step(s, i) for i, s in enumerate(raw.get("steps") or [])],
            "targetIds": [t["id"] for t in raw.get("targets") or []],
            "policy": {k: v for k, v in (raw.get("policy") or {}).items() if v is not None},
            "parameters": execution.parameters or {},
        }
    return JobRun(plan=RunPlan.from_json(raw), dangerous=dangerous)


def _old_step(step: dict[str, Any], index: int) -> dict[str, Any]:
    values = {k: v for k, v in step.items() if v is not None}
    values.setdefault("order", index + 1)
    return values


def engine_plan(
    execution_id: str, plan: RunPlan, grant: Grant, *, connect_timeout_s: float, max_output_bytes: int
) -> ExecutionPlan:
    """The engine's snapshot of the run: the one place a RunPlan becomes an ExecutionPlan (whose
    steps and policy are the run plan's own types)."""
    return ExecutionPlan(
        execution_id=execution_id,
        steps=tuple(sorted(plan.steps, key=lambda s: s.order)),
        targets=tuple(
            TargetSpec(
                target_id=t["id"],
                name=t["name"],
                host=t["host"],
                port=int(t["port"]),
                method=str(t["method"]).lower(),
            )
            for t in grant.targets
        ),
        credentials=credentials(grant),
        policy=plan.policy,
        connect_timeout_s=connect_timeout_s,
        max_output_bytes=max_output_bytes,
    )


def credentials(grant: Grant) -> CredentialRef:
    return CredentialRef(resolver_url=grant.resolver_url, grant=grant.grant)


class PlanSource:
    """The jobs and targets subgraphs, as the executions service asks them (service token)."""

    def __init__(self, *, jobs: ServiceClient, targets: ServiceClient) -> None:
        self.jobs = jobs
        self.targets = targets

    async def job_run(
        self, *, job_id: str, parameters: dict[str, Any] | None, target_ids: list[str] | None
    ) -> JobRun:
        """The job's run plan from jobs' ``jobPlan`` (parameters substituted, targets resolved)."""
        try:
            data = await self.jobs.execute(
                JOB_PLAN_QUERY, {"id": job_id, "parameters": parameters, "targetIds": target_ids}
            )
        except ServiceCallError as exc:
            raise DependencyUnavailableError(f"jobs service unavailable: {exc}", "jobs") from exc
        result = data["jobPlan"]
        kind = result["__typename"]
        if kind == "NotFound":
            raise NotFoundError(result["message"], id=job_id)
        if kind == "DependencyUnavailable":
            raise DependencyUnavailableError(result["message"], result.get("service"))
        if kind == "UnknownTargets":
            raise ValidationError(result["message"], field="targetIds")
        if kind != "JobPlan":
            raise ValidationError(result["message"], field=result.get("field"))
        plan = parse_run_plan(result["plan"])
        return JobRun(plan=plan, dangerous=list(result.get("dangerous") or []))

    async def grant(self, ids: list[str] | tuple[str, ...]) -> Grant:
        """A connection grant for ``ids``: the authoritative check that the targets exist."""
        try:
            data = await self.targets.execute(GRANT_MUTATION, {"ids": list(ids)}, retries=0)
        except ServiceCallError as exc:
            raise DependencyUnavailableError(f"targets service unavailable: {exc}", "targets") from exc
        answer = data["issueConnectionGrant"]
        if answer["__typename"] != "ConnectionGrant":
            raise ValidationError(answer.get("message", "targets unavailable"), field="targetIds")
        return Grant(
            grant=answer["grant"],
            resolver_url=answer["resolverUrl"],
            expires_at=answer.get("expiresAt"),
            targets=list(answer["targets"]),
        )

    async def targets_info(self, ids: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
        """Name, host and method of each target (read only: for dry runs)."""
        try:
            rows = (await self.targets.execute(TARGETS_QUERY, {"ids": list(ids)}))["targetsByIds"]
        except ServiceCallError as exc:
            raise DependencyUnavailableError(f"targets service unavailable: {exc}", "targets") from exc
        out = []
        for row in rows:
            methods = [m for m in row["communicationMethods"] if m.get("isActive", True)]
            method = next((m for m in methods if m["isPrimary"]), methods[0] if methods else None)
            out.append(
                {
                    "id": row["id"],
                    "name": row["name"],
                    "host": method["host"] if method else "",
                    "port": method["port"] if method else 0,
                    "method": str(method["type"]).lower() if method else "",
                }
            )
        return out
