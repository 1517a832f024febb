"""Jobs subgraph: job, jobs, jobVersions, jobPlan, validateJob, createJob, updateJob, deleteJob, `Job`."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from opsconductor_jobs import service
from opsconductor_jobs.service import danger
from opsconductor_jobs.types import (
    ERRORS,
    CreateJobInput,
    CreateJobResult,
    DangerousCommandRule,
    DangerousFinding,
    DeleteJobResult,
    Info,
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
    UpdateJobInput,
    UpdateJobResult,
    ValidateJobResult,
)
from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import ForbiddenError, ValidationError
from opsconductor_shared.paging import Connection, build_connection, check_first, decode_cursor
from opsconductor_shared.unit_of_work import maps_errors, transactional, unit_of_work

CURSOR_KIND = "job"


def _actor(info: Info) -> str | None:
    identity = info.context.identity
    return identity.subject if identity else None


def _step(s: JobStepInput) -> service.StepDraft:
    return service.StepDraft.from_dict(dataclasses.asdict(s))


def _policy(p: JobPolicyInput | None) -> service.PolicyDraft | None:
    return None if p is None else service.PolicyDraft.from_dict(dataclasses.asdict(p))


def _parameters(params: list[JobParameterInput] | None) -> list[service.ParameterDef]:
    return [
        service.ParameterDef(**{**dataclasses.asdict(p), "choices": tuple(p.choices)}) for p in params or []
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


def _needs_targets_read(info: Info, what: str) -> None:
    """L17: the answer shows targets the jobs service resolved with its own service token, so the
    caller must hold targets:read itself (the executions service's token does)."""
    identity = info.context.identity
    if identity is None or not identity.has("targets:read"):
        raise ForbiddenError(
            f"{what} shows the job's targets: it needs targets:read", permission="targets:read"
        )


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="One job by id; null when it does not exist or was deleted.",
    )
    async def job(self, info: Info, id: strawberry.ID) -> Job | None:
        row = await service.get_job(job_id=str(id))
        return None if row is None else Job.from_record(row)

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
            node=Job.from_record,
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
        return [JobVersion.from_record(v) for v in await service.job_versions(job_id=str(job_id))]

    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="What a run of the job's current version would do: parameters substituted (quoted), "
        "targets resolved (ids and selector, narrowed to `targetIds`), policy and dangerous-command findings. "
        "The executions service calls it with its service token to start a run.",
    )
    @maps_errors(ERRORS)
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
        check_targets: Annotated[
            bool,
            strawberry.argument(
                description="Check with the targets service that the job's explicit target ids still exist "
                "(UnknownTargets otherwise). A run passes false: its connection grant checks them, "
                "authoritatively. Selector targets are always resolved."
            ),
        ] = True,
    ) -> JobPlanResult:
        _needs_targets_read(info, "a job plan")
        plan = await service.plan_job(
            job_id=str(job_id),
            parameters=parameters,
            target_ids=None if target_ids is None else [str(t) for t in target_ids],
            deps=info.context.deps,
            version=version,
            check_ids=check_targets,
        )
        return JobPlan.from_plan(plan)

    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="What createJob would answer for this input, plus dangerous-command findings; nothing is saved.",
    )
    @maps_errors(ERRORS)
    async def validate_job(self, info: Info, input: CreateJobInput) -> ValidateJobResult:
        deps = info.context.deps
        valid, findings = await service.check_definition(draft=_draft(input), deps=deps)
        if valid.target_ids:
            _needs_targets_read(info, "validating target ids")
        await service.check_targets(directory=deps.targets, target_ids=valid.target_ids)
        return JobValid(
            target_ids=[strawberry.ID(t) for t in valid.target_ids],
            dangerous=[DangerousFinding.from_finding(f) for f in findings],
        )

    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="The dangerous-command rules: built-in and site rules, and whether each is on.",
    )
    def dangerous_command_rules(self, info: Info) -> list[DangerousCommandRule]:
        rules = info.context.deps.rules
        active = {r.id for r in rules}
        builtin = [
            DangerousCommandRule(id=r.id, reason=r.reason, enabled=r.id in active)
            for r in danger.BUILTIN_RULES
        ]
        site = [
            DangerousCommandRule(id=r.id, reason=r.reason, enabled=True)
            for r in rules
            if r.id not in danger.RULE_IDS
        ]
        return builtin + site


@strawberry.type
class Mutation:
    # createJob and updateJob check targets with the targets service first, outside any transaction
    # (no database transaction waits on another service); only the write is one unit of work.

    @strawberry.mutation(
        permission_classes=[requires("jobs:write")],
        description="Define a job; its target ids are checked with the targets service.",
    )
    @maps_errors(ERRORS)
    async def create_job(self, info: Info, input: CreateJobInput) -> CreateJobResult:
        deps = info.context.deps
        valid, _ = await service.check_definition(draft=_draft(input), deps=deps)
        await service.check_targets(directory=deps.targets, target_ids=valid.target_ids)
        async with unit_of_work(info.context.runtime):
            row = await service.create_job(job=valid, actor=_actor(info))
        return JobCreated(job=Job.from_record(await service.live_job(job_id=str(row.id))))

    @strawberry.mutation(
        permission_classes=[requires("jobs:write")],
        description="Change a job: the given fields replace the current ones; a real change increments "
        "`version` and keeps the previous version in `versions`.",
    )
    @maps_errors(ERRORS)
    async def update_job(self, info: Info, id: strawberry.ID, input: UpdateJobInput) -> UpdateJobResult:
        deps = info.context.deps
        current = await service.live_job(job_id=str(id))
        draft = _patched(service.draft_from_valid(service.valid_from_model(current)), input)
        valid, _ = await service.check_definition(draft=draft, deps=deps)
        await service.check_targets(directory=deps.targets, target_ids=valid.target_ids)
        async with unit_of_work(info.context.runtime):
            _, changed = await service.update_job(
                job_id=str(id),
                job=valid,
                based_on=current.version,
                expected_version=input.expected_version,
                actor=_actor(info),
            )
        return JobUpdated(job=Job.from_record(await service.live_job(job_id=str(id))), changed=changed)

    @strawberry.mutation(
        permission_classes=[requires("jobs:write")],
        description="Delete a job (soft: runs and audit still refer to it).",
    )
    @transactional(ERRORS)
    async def delete_job(self, info: Info, id: strawberry.ID) -> DeleteJobResult:
        await service.delete_job(job_id=str(id), actor=_actor(info))
        return JobDeleted(id=id)


schema = build_schema(query=Query, mutation=Mutation, types=[Job, Target])
