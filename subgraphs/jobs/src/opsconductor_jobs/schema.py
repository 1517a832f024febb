"""Jobs subgraph: job, jobs, jobVersions, jobPlan, validateJob, createJob, updateJob, deleteJob, `Job`."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from tortoise.transactions import in_transaction

from opsconductor_jobs import danger, service
from opsconductor_jobs.render import ParameterDef
from opsconductor_jobs.types import (
    CreateJobInput,
    CreateJobResult,
    DangerousCommandRule,
    DangerousFinding,
    DeleteJobResult,
    Job,
    JobCreated,
    JobDeleted,
    JobFilter,
    JobParameterInput,
    JobPlan,
    JobPlanResult,
    JobPolicyInput,
    JobStepInput,
    JobUpdated,
    JobValid,
    JobVersion,
    Target,
    TargetSelectorInput,
    UnknownTargets,
    UpdateJobInput,
    UpdateJobResult,
    ValidateJobResult,
    VersionConflict,
)
from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import (
    DependencyUnavailable,
    DomainError,
    NotFound,
    NotFoundError,
    PermissionDenied,
    ValidationError,
    to_graphql_error,
)
from opsconductor_shared.paging import Connection, build_connection, check_first, decode_cursor

Info = strawberry.Info[RequestContext, None]

CURSOR_KIND = "job"


def _actor(info: Info) -> str | None:
    identity = info.context.identity
    return identity.subject if identity else None


def _step(s: JobStepInput) -> service.StepDraft:
    return service.StepDraft(
        name=s.name,
        command=s.command,
        timeout_seconds=s.timeout_seconds,
        continue_on_error=s.continue_on_error,
        type=s.type,
        working_directory=s.working_directory,
        env=None if s.env is None else [(e.name, e.value) for e in s.env],
        expected_exit_codes=s.expected_exit_codes,
        script=None
        if s.script is None
        else service.ScriptDraft(s.script.interpreter, s.script.body, list(s.script.arguments)),
        transfer=None
        if s.transfer is None
        else service.TransferDraft(
            direction=s.transfer.direction,
            destination=s.transfer.destination,
            source=s.transfer.source,
            content=s.transfer.content,
            mode=s.transfer.mode,
        ),
    )


def _policy(p: JobPolicyInput | None) -> service.PolicyDraft | None:
    if p is None:
        return None
    return service.PolicyDraft(
        max_parallel=p.max_parallel,
        batch_size=p.batch_size,
        batch_percent=p.batch_percent,
        fail_fast_threshold=p.fail_fast_threshold,
        retries=p.retries,
        retry_backoff_seconds=p.retry_backoff_seconds,
        timeout_seconds=p.timeout_seconds,
        concurrency=p.concurrency,
        allow_host_overlap=p.allow_host_overlap,
    )


def _parameters(params: list[JobParameterInput] | None) -> list[ParameterDef]:
    return [
        ParameterDef(
            name=p.name,
            type=p.type,
            required=p.required,
            default=p.default,
            choices=tuple(p.choices),
            description=p.description,
        )
        for p in params or []
    ]


def _selector(sel: TargetSelectorInput | None) -> service.SelectorDraft | None:
    if sel is None:
        return None
    return service.SelectorDraft(
        tags=list(sel.tags), os_types=list(sel.os_types), environments=list(sel.environments)
    )


def _draft(data: CreateJobInput) -> service.JobDraft:
    return service.JobDraft(
        name=data.name,
        description=data.description,
        steps=[_step(s) for s in data.steps],
        target_ids=[str(t) for t in data.target_ids],
        policy=_policy(data.policy),
        parameters=_parameters(data.parameters),
        target_selector=_selector(data.target_selector),
    )


def _patched(current: service.JobDraft, data: UpdateJobInput) -> service.JobDraft:
    """The current definition with the given fields replaced (then validated whole)."""
    draft = current
    if data.name is not None:
        draft.name = data.name
    if data.description is not None:
        draft.description = data.description or None
    if data.steps is not None:
        draft.steps = [_step(s) for s in data.steps]
    if data.target_ids is not None:
        draft.target_ids = [str(t) for t in data.target_ids]
    if data.policy is not None:
        draft.policy = _policy(data.policy)
    if data.parameters is not None:
        draft.parameters = _parameters(data.parameters)
    if data.target_selector is not None:
        draft.target_selector = _selector(data.target_selector)
    return draft


@functools.lru_cache(maxsize=8)
def _rules_for(disabled: tuple[str, ...], extra: tuple[tuple[str, str], ...]) -> tuple[danger.Rule, ...]:
    return danger.build_rules(disabled, dict(extra))


def _rules(info: Info) -> tuple[danger.Rule, ...]:
    """The built-in rules as configured by settings (compiled once per configuration)."""
    settings = info.context.runtime.settings
    return _rules_for(
        tuple(getattr(settings, "danger_disabled_rules", ())),
        tuple(sorted(getattr(settings, "danger_extra_rules", {}).items())),
    )


def _scan_timeout(info: Info) -> float:
    return float(
        getattr(info.context.runtime.settings, "danger_scan_timeout_seconds", service.SCAN_TIMEOUT_SECONDS)
    )


def _validate_and_scan(
    draft: service.JobDraft, rules: tuple[danger.Rule, ...], *, deadline: float | None = None
) -> tuple[service.ValidJob, list[danger.Finding]]:
    valid = service.validate_job(draft)
    return valid, service.preview_dangerous(valid, rules, deadline=deadline)


async def _checked(info: Info, draft: service.JobDraft) -> tuple[service.ValidJob, list[danger.Finding]]:
    """Validate a definition and scan it for dangerous commands in a thread, bounded in time (C1).

    createJob and updateJob scan too (and drop the findings): the same input costs the same
    everywhere, and a definition too large to check is refused when it is saved.
    """
    return await service.scan_in_thread(_validate_and_scan, draft, _rules(info), timeout=_scan_timeout(info))


def _error(exc: Exception) -> Any:
    """The GraphQL error type for an expected failure of a jobs operation."""
    if isinstance(exc, service.UnknownTargetsError):
        return UnknownTargets(message=exc.message, target_ids=[strawberry.ID(t) for t in exc.target_ids])
    if isinstance(exc, service.DependencyUnavailableError):
        return DependencyUnavailable(message=exc.message, service=exc.service)
    if isinstance(exc, service.VersionConflictError):
        return VersionConflict(
            message=exc.message, expected_version=exc.expected, current_version=exc.current
        )
    assert isinstance(exc, DomainError)
    return to_graphql_error(exc)


EXPECTED = (
    ValidationError,
    NotFoundError,
    service.UnknownTargetsError,
    service.DependencyUnavailableError,
    service.VersionConflictError,
)


def _target_denial(info: Info, what: str) -> PermissionDenied | None:
    """L17: the answer shows targets the jobs service resolved with its own service token, so the
    caller must hold targets:read itself (the executions service's token does)."""
    identity = info.context.identity
    if identity is not None and identity.has("targets:read"):
        return None
    return PermissionDenied(
        message=f"{what} shows the job's targets: it needs targets:read", permission="targets:read"
    )


def _targets(info: Info) -> service.TargetDirectory:
    runtime = info.context.runtime
    settings = runtime.settings
    return service.TargetsSubgraph(
        runtime.client(settings.targets_url, timeout=settings.targets_timeout_seconds)
    )


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="One job by id; null when it does not exist or was deleted.",
    )
    async def job(self, info: Info, id: strawberry.ID) -> Job | None:
        row = await service.get_job(str(id))
        return None if row is None else Job.from_model(row)

    @strawberry.field(permission_classes=[requires("jobs:read")], description="Jobs, newest first.")
    async def jobs(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: JobFilter | None = None
    ) -> Connection[Job]:
        cursor = decode_cursor(after, CURSOR_KIND)
        if cursor is not None and not cursor.isdigit():
            raise ValidationError("invalid cursor", field="after")
        page = await service.list_jobs(
            first=check_first(first),
            after=int(cursor) if cursor is not None else None,
            search=filter.search if filter else None,
        )
        return build_connection(
            page.rows,
            node=Job.from_model,
            key=lambda row: str(row.number),
            has_next=page.has_next,
            total=page.total,
            after=after,
            kind=CURSOR_KIND,
        )

    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="Every version of a job's definition, newest first; empty for an unknown or deleted job.",
    )
    async def job_versions(self, info: Info, job_id: strawberry.ID) -> list[JobVersion]:
        return [JobVersion.from_model(v) for v in await service.job_versions(str(job_id))]

    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="What a run of the job's current version would do: parameters substituted (quoted), "
        "targets resolved (ids and selector, narrowed to `targetIds`), policy and dangerous-command findings. "
        "The executions service calls it with its service token.",
    )
    async def job_plan(
        self,
        info: Info,
        job_id: strawberry.ID,
        parameters: JSON | None = None,
        target_ids: list[strawberry.ID] | None = None,
        version: Annotated[
            int | None,
            strawberry.argument(description="Plan this stored version instead of the current one (retries)."),
        ] = None,
    ) -> JobPlanResult:
        denied = _target_denial(info, "a job plan")
        if denied is not None:
            return denied
        try:
            plan = await service.plan_job(
                str(job_id),
                parameters=parameters,
                target_ids=None if target_ids is None else [str(t) for t in target_ids],
                directory=_targets(info),
                rules=_rules(info),
                version=version,
                scan_timeout=_scan_timeout(info),
            )
        except EXPECTED as exc:
            return _error(exc)
        return JobPlan.from_plan(plan)

    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="What createJob would answer for this input, plus dangerous-command findings; nothing is saved.",
    )
    async def validate_job(self, info: Info, input: CreateJobInput) -> ValidateJobResult:
        try:
            valid, findings = await _checked(info, _draft(input))
            if valid.target_ids and (denied := _target_denial(info, "validating target ids")) is not None:
                return denied
            await service.check_targets(_targets(info), valid.target_ids)
        except EXPECTED as exc:
            return _error(exc)
        return JobValid(
            target_ids=[strawberry.ID(t) for t in valid.target_ids],
            dangerous=[DangerousFinding.from_finding(f) for f in findings],
        )

    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="The dangerous-command rules: built-in and site rules, and whether each is on.",
    )
    def dangerous_command_rules(self, info: Info) -> list[DangerousCommandRule]:
        active = {r.id for r in _rules(info)}
        builtin = [
            DangerousCommandRule(id=r.id, reason=r.reason, enabled=r.id in active)
            for r in danger.BUILTIN_RULES
        ]
        site = [
            DangerousCommandRule(id=r.id, reason=r.reason, enabled=True)
            for r in _rules(info)
            if r.id not in danger.RULE_IDS
        ]
        return builtin + site


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[requires("jobs:write")],
        description="Define a job; its target ids are checked with the targets service.",
    )
    async def create_job(self, info: Info, input: CreateJobInput) -> CreateJobResult:
        try:
            valid, _ = await _checked(info, _draft(input))
            # Outside the transaction: no database transaction waits on another service.
            await service.check_targets(_targets(info), valid.target_ids)
        except EXPECTED as exc:
            return _error(exc)
        async with in_transaction():
            row = await service.create_job(valid, actor=_actor(info))
        info.context.runtime.events_committed()
        created = await service.get_job(str(row.id))
        assert created is not None  # just committed
        return JobCreated(job=Job.from_model(created))

    @strawberry.mutation(
        permission_classes=[requires("jobs:write")],
        description="Change a job: the given fields replace the current ones; a real change increments "
        "`version` and keeps the previous version in `versions`.",
    )
    async def update_job(self, info: Info, id: strawberry.ID, input: UpdateJobInput) -> UpdateJobResult:
        current = await service.get_job(str(id))
        if current is None:
            return NotFound(message=f"job {id} not found", id=id)
        try:
            draft = _patched(service.draft_from_valid(service.valid_from_model(current)), input)
            valid, _ = await _checked(info, draft)
            await service.check_targets(_targets(info), valid.target_ids)
            async with in_transaction():
                result = await service.update_job(
                    str(id),
                    valid,
                    based_on=current.version,
                    expected_version=input.expected_version,
                    actor=_actor(info),
                )
        except EXPECTED as exc:
            return _error(exc)
        if result is None:
            return NotFound(message=f"job {id} not found", id=id)
        _, changed = result
        if changed:
            info.context.runtime.events_committed()
        updated = await service.get_job(str(id))
        assert updated is not None  # just committed
        return JobUpdated(job=Job.from_model(updated), changed=changed)

    @strawberry.mutation(
        permission_classes=[requires("jobs:write")],
        description="Delete a job (soft: runs and audit still refer to it).",
    )
    async def delete_job(self, info: Info, id: strawberry.ID) -> DeleteJobResult:
        async with in_transaction():
            row = await service.delete_job(str(id), actor=_actor(info))
        if row is None:
            return NotFound(message=f"job {id} not found", id=id)
        info.context.runtime.events_committed()
        return JobDeleted(id=id)


schema = build_schema(query=Query, mutation=Mutation, types=[Job, Target])
