"""GraphQL types of the jobs subgraph (separate from ORM rows: built with ``from_record``), its error
types and its one error table (``ERRORS``), and the typed resolver ``Info``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, cast

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.scalars import JSON

from opsconductor_jobs import models, service
from opsconductor_jobs.errors import UnknownTargetsError, VersionConflictError
from opsconductor_jobs.loaders import job_loader
from opsconductor_jobs.service import danger
from opsconductor_jobs.service.render import ParameterDef
from opsconductor_jobs.settings import Settings
from opsconductor_shared import runplan
from opsconductor_shared.app import RequestContext
from opsconductor_shared.auth import check_permission, entity_permission
from opsconductor_shared.errors import (
    DependencyUnavailable,
    Error,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from opsconductor_shared.unit_of_work import ErrorTable

Info = strawberry.Info[RequestContext[Settings, service.Deps], None]


@strawberry.federation.type(
    keys=[Key(fields=FieldSet("id"), resolvable=False)],
    description="A target; the targets subgraph owns it and resolves its fields.",
)
class Target:
    id: strawberry.ID


@strawberry.federation.type(shareable=True, description="An environment variable set for a step.")
class EnvVar:
    name: str
    value: str


@strawberry.federation.type(shareable=True, description="The script of a `script` step.")
class ScriptSpec:
    interpreter: str = strawberry.field(description="bash, sh, powershell or python.")
    body: str = strawberry.field(description="The script, uploaded and run by the interpreter.")
    arguments: list[str] = strawberry.field(description="Passed to the script as separate arguments.")


@strawberry.federation.type(shareable=True, description="What a `file_transfer` step copies.")
class FileTransferSpec:
    direction: str = strawberry.field(description="upload (content to the target) or download.")
    source: str | None = strawberry.field(description="download: the absolute remote path read.")
    destination: str = strawberry.field(
        description="upload: the absolute remote path written; download: a label for the output."
    )
    content: str | None = strawberry.field(description="upload: the text written (at most 1 MiB).")
    mode: str | None = strawberry.field(description="upload: octal file mode such as 0644.")


@strawberry.federation.type(
    shareable=True,
    description="One step of a job: a command, script or file transfer run on every target, in `order`.",
)
class JobStep:
    order: int = strawberry.field(description="1-based position; steps run in this order on each target.")
    name: str
    type: str = strawberry.field(description="`command`, `script` or `file_transfer`.")
    command: str = strawberry.field(description="The shell command of a command step; empty for other types.")
    timeout_seconds: int = strawberry.field(description="The step fails when it runs longer than this.")
    continue_on_error: bool = strawberry.field(
        description="When the step fails, run the next steps on that target anyway."
    )
    working_directory: str | None = strawberry.field(description="Absolute; null means the login directory.")
    env: list[EnvVar] = strawberry.field(description="Environment variables set for the step.")
    expected_exit_codes: list[int] = strawberry.field(description="Exit codes that count as success.")
    script: ScriptSpec | None = strawberry.field(description="For script steps.")
    transfer: FileTransferSpec | None = strawberry.field(description="For file_transfer steps.")

    @classmethod
    def from_step(cls, s: runplan.Step) -> JobStep:
        """The GraphQL fields are the plan step's, by name (nested values likewise)."""
        return cls(
            **s.model_dump(exclude={"env", "script", "transfer"}),
            env=[EnvVar(**e.model_dump()) for e in s.env],
            script=None if s.script is None else ScriptSpec(**s.script.model_dump()),
            transfer=None if s.transfer is None else FileTransferSpec(**s.transfer.model_dump()),
        )


@strawberry.federation.type(shareable=True, description="How a run of the job is carried out.")
class JobPolicy:
    max_parallel: int = strawberry.field(description="At most this many targets run at the same time.")
    batch_size: int | None = strawberry.field(
        description="Rolling batches of this many targets; null: all at once."
    )
    batch_percent: int | None = strawberry.field(
        description="Or batches of this percentage of the targets (1..100)."
    )
    fail_fast_threshold: int | None = strawberry.field(
        description="Stop starting targets after this many failed; null: never."
    )
    retries: int = strawberry.field(
        description="Connection-failure retries per target (never after a command started)."
    )
    retry_backoff_seconds: float = strawberry.field(description="First retry backoff, doubling, with jitter.")
    timeout_seconds: int | None = strawberry.field(description="Overall run timeout; null: none.")
    concurrency: str = strawberry.field(
        description="When the job already has a running or queued execution: allow, skip or queue."
    )
    allow_host_overlap: bool = strawberry.field(description="Whether two runs may interleave on one host.")

    @classmethod
    def from_policy(cls, p: runplan.Policy) -> JobPolicy:
        return cls(**p.model_dump())


@strawberry.type(description="A declared job parameter, substituted into steps as `{{ name }}`.")
class JobParameter:
    name: str
    type: str = strawberry.field(description="string, int, bool or choice.")
    required: bool = strawberry.field(description="A run must give a value unless there is a default.")
    default: str | None = strawberry.field(description="Used when a run gives no value.")
    choices: list[str] = strawberry.field(description="The allowed values of a choice parameter.")
    description: str | None

    @classmethod
    def from_def(cls, p: ParameterDef) -> JobParameter:
        return cls(
            name=p.name,
            type=p.type,
            required=p.required,
            default=p.default,
            choices=list(p.choices),
            description=p.description,
        )


@strawberry.type(description="Targets chosen by their attributes when a run starts.")
class TargetSelector:
    tags: list[str] = strawberry.field(description="Targets carrying all of these tags.")
    os_types: list[str] = strawberry.field(description="Targets of any of these OS types (empty: any).")
    environments: list[str] = strawberry.field(
        description="Targets in any of these environments (empty: any)."
    )

    @classmethod
    def from_json(cls, d: dict[str, list[str]] | None) -> TargetSelector | None:
        if not d:
            return None
        return cls(
            tags=list(d.get("tags", [])),
            os_types=list(d.get("osTypes", [])),
            environments=list(d.get("environments", [])),
        )


@strawberry.federation.type(shareable=True, description="A step matched a dangerous-command rule.")
class DangerousFinding:
    step_name: str
    rule: str = strawberry.field(description="Rule id, e.g. fs.rm-recursive-root.")
    reason: str = strawberry.field(description="Why the rule exists, readable.")
    match: str = strawberry.field(description="The matching command text (at most 200 characters).")

    @classmethod
    def from_finding(cls, f: danger.Finding) -> DangerousFinding:
        return cls(step_name=f.step_name, rule=f.rule, reason=f.reason, match=f.match)


@strawberry.type(description="One stored version of a job definition.")
class JobVersion:
    version: int
    created_at: datetime
    created_by: str | None = strawberry.field(description="Subject of the token that made this version.")
    name: str
    description: str | None
    steps: list[JobStep]
    policy: JobPolicy
    parameters: list[JobParameter]
    target_ids: list[strawberry.ID]
    target_selector: TargetSelector | None

    @classmethod
    def from_record(cls, row: models.JobVersion) -> JobVersion:
        job = service.ValidJob.from_snapshot(row.snapshot)
        return cls(
            version=row.version,
            created_at=row.created_at,
            created_by=row.created_by,
            name=job.name,
            description=job.description,
            steps=[JobStep.from_step(s) for s in job.steps],
            policy=JobPolicy.from_policy(job.policy),
            parameters=[JobParameter.from_def(p) for p in job.parameters],
            target_ids=[strawberry.ID(t) for t in job.target_ids],
            target_selector=TargetSelector.from_json(job.target_selector),
        )


@strawberry.federation.type(
    keys=["id"], description="A job definition: ordered steps to run on a set of targets."
)
class Job:
    id: strawberry.ID
    serial: str = strawberry.field(description="Human-readable handle, `JOB-000001`.")
    name: str
    description: str | None
    version: int = strawberry.field(description="Starts at 1; incremented on every edit of the definition.")
    created_at: datetime
    updated_at: datetime
    steps: list[JobStep] = strawberry.field(description="In execution order.")
    policy: JobPolicy
    target_ids: list[strawberry.ID] = strawberry.field(description="The explicit targets of the job, by id.")
    target_selector: TargetSelector | None = strawberry.field(
        description="Targets added by attributes at run time (null: only `targetIds`)."
    )
    parameters: list[JobParameter] = strawberry.field(description="Parameters a run may set.")

    @strawberry.field(description="The explicit targets of the job (resolved by the targets subgraph).")
    def targets(self) -> list[Target]:
        return [Target(id=t) for t in self.target_ids]

    @strawberry.field(description="Every version of the definition, newest first (the current one included).")
    async def versions(self) -> list[JobVersion]:
        return [JobVersion.from_record(v) for v in await service.job_versions(job_id=str(self.id))]

    @classmethod
    def from_record(cls, row: models.Job) -> Job:
        job = service.valid_from_model(row)
        return cls(
            id=strawberry.ID(str(row.id)),
            serial=row.serial,
            name=row.name,
            description=row.description,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            steps=[JobStep.from_step(s) for s in job.steps],
            policy=JobPolicy.from_policy(job.policy),
            target_ids=[strawberry.ID(t) for t in job.target_ids],
            target_selector=TargetSelector.from_json(job.target_selector),
            parameters=[JobParameter.from_def(p) for p in job.parameters],
        )

    @classmethod
    @entity_permission("jobs:read")
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Job | None:
        """`_entities`: a deleted or unknown job resolves to null. Batched per request."""
        check_permission(info.context, "jobs:read")
        row = await job_loader(info.context).load(str(id))
        return None if row is None else cls.from_record(row)


@strawberry.input(description="Narrows `jobs`.")
class JobFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive match on name, serial or description."
    )


# ---- inputs -----------------------------------------------------------------------------------


@strawberry.input(description="An environment variable for a step.")
class EnvVarInput:
    name: str = strawberry.field(description="[A-Za-z_][A-Za-z0-9_]*.")
    value: str = strawberry.field(description="May contain {{ parameters }} (substituted verbatim).")


@strawberry.input(description="The script of a `script` step.")
class ScriptSpecInput:
    interpreter: str = strawberry.field(description="bash, sh, powershell or python.")
    body: str = strawberry.field(
        description="At most 1 MiB; {{ parameters }} are quoted for the interpreter."
    )
    arguments: list[str] = strawberry.field(default_factory=list, description="At most 100, each 4 KiB.")


@strawberry.input(description="What a `file_transfer` step copies.")
class FileTransferSpecInput:
    direction: str = strawberry.field(description="upload or download.")
    destination: str = strawberry.field(
        description="upload: absolute remote path; download: a label for the output."
    )
    source: str | None = strawberry.field(default=None, description="download: absolute remote path.")
    content: str | None = strawberry.field(default=None, description="upload: text, at most 1 MiB.")
    mode: str | None = strawberry.field(default=None, description="upload: octal mode such as 0644.")


@strawberry.input(description="One step of a job.")
class JobStepInput:
    name: str
    command: str = strawberry.field(
        default="", description="Shell command of a command step (at most 64 KiB); empty for other types."
    )
    timeout_seconds: int | None = strawberry.field(default=None, description="1..86400; default 300.")
    continue_on_error: bool | None = strawberry.field(default=None, description="Default false.")
    type: str | None = strawberry.field(
        default=None, description="command (default), script or file_transfer."
    )
    working_directory: str | None = strawberry.field(default=None, description="Absolute remote directory.")
    env: list[EnvVarInput] | None = strawberry.field(default=None, description="At most 100 variables.")
    expected_exit_codes: list[int] | None = strawberry.field(default=None, description="0..255; default [0].")
    script: ScriptSpecInput | None = None
    transfer: FileTransferSpecInput | None = None


@strawberry.input(description="How a run of the job is carried out.")
class JobPolicyInput:
    max_parallel: int | None = strawberry.field(default=None, description="1..1000; default 50.")
    batch_size: int | None = strawberry.field(default=None, description="1..10000; not with batchPercent.")
    batch_percent: int | None = strawberry.field(default=None, description="1..100; not with batchSize.")
    fail_fast_threshold: int | None = strawberry.field(default=None, description="1..10000 failed targets.")
    retries: int | None = strawberry.field(default=None, description="0..10; default 0.")
    retry_backoff_seconds: float | None = strawberry.field(default=None, description="0..300; default 2.")
    timeout_seconds: int | None = strawberry.field(default=None, description="1..604800 (7 days).")
    concurrency: str | None = strawberry.field(default=None, description="allow (default), skip or queue.")
    allow_host_overlap: bool | None = strawberry.field(default=None, description="Default false.")


@strawberry.input(description="A job parameter declaration.")
class JobParameterInput:
    name: str = strawberry.field(description="[A-Za-z_][A-Za-z0-9_]*, at most 64.")
    type: str = strawberry.field(default="string", description="string, int, bool or choice.")
    required: bool = False
    default: str | None = strawberry.field(default=None, description="Checked against the type.")
    choices: list[str] = strawberry.field(default_factory=list, description="For choice parameters.")
    description: str | None = None


@strawberry.input(description="Targets chosen by their attributes when a run starts.")
class TargetSelectorInput:
    tags: list[str] = strawberry.field(default_factory=list, description="All of these tags.")
    os_types: list[str] = strawberry.field(default_factory=list, description="Any of these OS types.")
    environments: list[str] = strawberry.field(default_factory=list, description="Any of these environments.")


@strawberry.input(description="A new job definition.")
class CreateJobInput:
    name: str = strawberry.field(description="1..255 characters.")
    steps: list[JobStepInput] = strawberry.field(description="At least one; run in the given order.")
    target_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list,
        description="Existing targets; duplicates count once. At least one, unless targetSelector is given.",
    )
    description: str | None = None
    policy: JobPolicyInput | None = None
    parameters: list[JobParameterInput] | None = strawberry.field(default=None, description="At most 50.")
    target_selector: TargetSelectorInput | None = strawberry.field(
        default=None, description="Adds the targets matching it at run time."
    )


@strawberry.input(
    description="Changes to a job; omitted (null) fields stay as they are. Lists and the policy are replaced whole."
)
class UpdateJobInput:
    name: str | None = None
    description: str | None = strawberry.field(default=None, description="An empty string clears it.")
    steps: list[JobStepInput] | None = None
    target_ids: list[strawberry.ID] | None = None
    policy: JobPolicyInput | None = None
    parameters: list[JobParameterInput] | None = None
    target_selector: TargetSelectorInput | None = strawberry.field(
        default=None, description="Replaces the selector; one with empty lists removes it."
    )
    expected_version: int | None = strawberry.field(
        default=None, description="When given, the update fails with VersionConflict unless the job is at it."
    )


# ---- results ----------------------------------------------------------------------------------


@strawberry.type(description="The job was created.")
class JobCreated:
    job: Job


@strawberry.type(description="The job was deleted; it no longer appears in `job` or `jobs`.")
class JobDeleted:
    id: strawberry.ID


@strawberry.federation.type(shareable=True, description="Some target ids do not name an existing target.")
class UnknownTargets(Error):
    target_ids: list[strawberry.ID] = strawberry.field(description="The ids that were not found.")


CreateJobResult = Annotated[
    JobCreated | ValidationFailed | UnknownTargets | DependencyUnavailable,
    strawberry.union("CreateJobResult"),
]


@strawberry.type(description="The job was changed (its version grows when the definition changed).")
class JobUpdated:
    job: Job
    changed: bool = strawberry.field(description="False when the input matched the current definition.")


@strawberry.type(description="The job changed since the version the edit was based on.")
class VersionConflict(Error):
    expected_version: int
    current_version: int


@strawberry.type(description="What a run of the job's current version would do; nothing is started.")
class JobPlan:
    job_id: strawberry.ID
    serial: str
    name: str
    version: int = strawberry.field(
        description="The version this plan was made from (record it with the run)."
    )
    steps: list[JobStep] = strawberry.field(description="With parameters substituted.")
    target_ids: list[strawberry.ID] = strawberry.field(
        description="Explicit ids and selector matches, narrowed to the requested subset."
    )
    policy: JobPolicy
    parameters: JSON = strawberry.field(description="The effective values, defaults applied.")
    dangerous: list[DangerousFinding] = strawberry.field(
        description="Dangerous-command findings on the rendered steps; a run needs confirmation when non-empty."
    )
    plan: JSON = strawberry.field(
        description="The whole run plan as one JSON object (`opsconductor_shared.runplan.RunPlan`, camelCase: "
        "jobId serial name version steps targetIds policy parameters), the same content as the fields above "
        "without `dangerous`; executions parses it with `RunPlan.from_json`."
    )

    @classmethod
    def from_plan(cls, plan: service.Plan) -> JobPlan:
        run = plan.run
        return cls(
            job_id=strawberry.ID(run.job_id),
            serial=run.serial,
            name=run.name,
            version=run.version,
            steps=[JobStep.from_step(s) for s in run.steps],
            target_ids=[strawberry.ID(t) for t in run.target_ids],
            policy=JobPolicy.from_policy(run.policy),
            parameters=cast(JSON, run.parameters),
            dangerous=[DangerousFinding.from_finding(f) for f in plan.dangerous],
            plan=cast(JSON, run.to_json()),
        )


@strawberry.type(description="The definition is valid; nothing was saved.")
class JobValid:
    target_ids: list[strawberry.ID] = strawberry.field(description="The explicit target ids, deduplicated.")
    dangerous: list[DangerousFinding] = strawberry.field(
        description="Findings on the steps rendered with parameter defaults (runs check the real values)."
    )


@strawberry.type(description="A dangerous-command rule and whether it is on.")
class DangerousCommandRule:
    id: str
    reason: str
    enabled: bool


DeleteJobResult = Annotated[JobDeleted | NotFound, strawberry.union("DeleteJobResult")]
UpdateJobResult = Annotated[
    JobUpdated | NotFound | ValidationFailed | UnknownTargets | DependencyUnavailable | VersionConflict,
    strawberry.union("UpdateJobResult"),
]
JobPlanResult = Annotated[
    JobPlan | NotFound | ValidationFailed | UnknownTargets | DependencyUnavailable | PermissionDenied,
    strawberry.union("JobPlanResult"),
]
ValidateJobResult = Annotated[
    JobValid | ValidationFailed | UnknownTargets | DependencyUnavailable | PermissionDenied,
    strawberry.union("ValidateJobResult"),
]


ERRORS = ErrorTable(
    {
        UnknownTargetsError: lambda e: UnknownTargets(
            message=e.message, target_ids=[strawberry.ID(t) for t in e.target_ids]
        ),
        VersionConflictError: lambda e: VersionConflict(
            message=e.message, expected_version=e.expected, current_version=e.current
        ),
    }
)
"""The jobs service's domain errors as GraphQL types (the shared ones are in every table)."""
