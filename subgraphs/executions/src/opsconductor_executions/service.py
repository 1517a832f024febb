"""Executions domain logic: start a run on the engine, follow its events, persist and fan out.

A run: resolve the job's plan (jobs subgraph `jobPlan`: parameters substituted, targets resolved,
dangerous findings), apply the dangerous-command gate and the job's concurrency policy, get a
short-lived connection grant for its targets (targets subgraph; secrets stay there until the
engine's pool asks at connect time), create the rows, start an ExecutionCoordinator on Ray, and
follow it. The follower pulls event batches from the coordinator, persists them in one
transaction per batch (events + the rows they change), then publishes them to live subscribers.

Several replicas may run: the one following a run holds a lease on it (``lease_owner`` /
``lease_until``, renewed while following, released on shutdown). A periodic sweep (and the
start-up one) adopts runs whose lease expired while their coordinator lives, and ends runs with
no coordinator beyond ``stale_after_seconds`` as FAILED "stale: ...". Because the coordinator
keeps every event and the database records the highest persisted sequence number (checked
under a row lock on every batch), adoption continues exactly where the last follower stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Max
from tortoise.transactions import in_transaction

from opsconductor_executions.lifecycle import (
    GrantClock,
    check_idempotency_key,
    engine_call,
    engine_has,
    prune_keys,
    remember_key,
    remembered_execution,
    renew_grant,
    settle,
)
from opsconductor_executions.models import Execution, ExecutionEvent, Outbox, StepResult, TargetRun
from opsconductor_executions.settings import Settings
from opsconductor_ray.protocol import CredentialRef, EngineEvent, ExecutionPlan, TargetSpec
from opsconductor_shared.client import ServiceCallError, ServiceClient
from opsconductor_shared.errors import (
    DependencyUnavailableError,
    DomainError,
    NotFoundError,
    ValidationError,
)
from opsconductor_shared.events import Broadcaster, EventEnvelope, record_event
from opsconductor_shared.logging import get_logger
from opsconductor_shared.runplan import DEFAULT_STEP_TIMEOUT_SECONDS, EnvVar, Policy, Script, Step, Transfer

log = get_logger("opsconductor.executions")

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
ACTIVE = ("QUEUED", "RUNNING")
TRUNCATED_MARKER = "\n[... output truncated by OpsConductor: over {limit} bytes ...]\n"
CONCURRENCY = ("allow", "skip", "queue")
ENGINE_MARKER_SLACK = 256  # bytes above the limit the follower lets through for the engine's marker
SPILLED_MARKER = (
    "\n[... output not kept in this step result (the service's output buffer was full): "
    "read it with targetOutput ...]\n"
)

STEP_FIELDS = """order name type command timeoutSeconds continueOnError workingDirectory
  env { name value } expectedExitCodes script { interpreter body arguments }
  transfer { direction source destination content mode }"""
POLICY_FIELDS = """maxParallel batchSize batchPercent failFastThreshold retries retryBackoffSeconds
  timeoutSeconds concurrency allowHostOverlap"""
JOB_PLAN_QUERY = f"""query($id: ID!, $parameters: JSON, $targetIds: [ID!]) {{
  jobPlan(jobId: $id, parameters: $parameters, targetIds: $targetIds) {{ __typename
  ... on JobPlan {{ jobId serial name version targetIds parameters steps {{ {STEP_FIELDS} }}
      policy {{ {POLICY_FIELDS} }} dangerous {{ stepName rule reason match }} }}
  ... on UnknownTargets {{ message targetIds }}
  ... on ValidationFailed {{ message field }}
  ... on DependencyUnavailable {{ message service }}
  ... on Error {{ message }} }} }}"""
# Before the jobs subgraph has `jobPlan`: the plain job (no parameters, selector or findings).
JOB_QUERY = """query($id: ID!) { job(id: $id) { id serial name version targetIds
  steps { order name command timeoutSeconds continueOnError } policy { maxParallel } } }"""
GRANT_MUTATION = """mutation($ids: [ID!]!) { issueConnectionGrant(targetIds: $ids) {
  __typename ... on ConnectionGrant { grant resolverUrl expiresAt targets { id name host port method } }
  ... on Error { message } } }"""
TARGETS_QUERY = """query($ids: [ID!]!) { targetsByIds(ids: $ids) { id name
  communicationMethods { type host port isPrimary isActive } } }"""

DEFAULT_POLICY: dict[str, Any] = {
    "maxParallel": 50,
    "batchSize": None,
    "batchPercent": None,
    "failFastThreshold": None,
    "retries": 0,
    "retryBackoffSeconds": 2.0,
    "timeoutSeconds": None,
    "concurrency": "allow",
    "allowHostOverlap": False,
}


def now() -> datetime:
    return datetime.now(UTC)


def channel(execution_id: str) -> str:
    return f"execution:{execution_id}"


PUBLISH_CHUNK = 500
"""Events per live message: a persisted batch goes out as one message (a JSON list), so a run of
thousands of events costs subscribers, Redis and the router tens of messages, not thousands."""
MESSAGE_DATA_BYTES = 1_048_576
"""...and a message carries about this much output at most (more only when one event is larger)."""


def chunk_events(
    payloads: list[dict[str, Any]], max_count: int, max_bytes: int = MESSAGE_DATA_BYTES
) -> list[list[dict[str, Any]]]:
    """Consecutive runs of ``payloads`` of at most ``max_count`` events and about ``max_bytes``
    of output each (an event is never split; one larger than the budget goes alone)."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for payload in payloads:
        cost = len(payload.get("data") or "")
        if current and (len(current) >= max_count or size + cost > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(payload)
        size += cost
    if current:
        chunks.append(current)
    return chunks


async def publish_events(broadcaster: Broadcaster, execution_id: str, payloads: list[dict[str, Any]]) -> None:
    """Publish persisted events to live subscribers, in order, in chunks (chunk_events)."""
    for chunk in chunk_events(payloads, PUBLISH_CHUNK):
        await broadcaster.publish(channel(execution_id), json.dumps(chunk))


def decode_live(message: str) -> list[dict[str, Any]]:
    """A live message: a list of event payloads (a single object from an older replica)."""
    value = json.loads(message)
    return value if isinstance(value, list) else [value]


def event_payload(row: ExecutionEvent | dict[str, Any]) -> dict[str, Any]:
    """The JSON form published to live subscribers (same fields as the GraphQL type)."""
    if isinstance(row, dict):
        return row
    return {
        "seq": row.seq,
        "type": row.type,
        "targetId": row.target_id,
        "stepIndex": row.step_index,
        "stepName": row.step_name,
        "data": row.data,
        "exitCode": row.exit_code,
        "status": row.status,
        "at": row.at.isoformat(),
    }


# ---- typed errors (the resolver maps them to GraphQL types) -----------------------------------


class DangerousCommandBlockedError(DomainError):
    code = "DANGEROUS_COMMAND_BLOCKED"

    def __init__(self, message: str, findings: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.findings = findings


class JobAlreadyRunningError(DomainError):
    code = "JOB_ALREADY_RUNNING"

    def __init__(self, message: str, execution_id: str) -> None:
        super().__init__(message)
        self.execution_id = execution_id


# ---- plans --------------------------------------------------------------------------------------


def _field_names(cls: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} if cls is not None else set()


def normalise_step(raw: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "order": raw.get("order", index + 1),
        "name": raw["name"],
        "type": raw.get("type") or "command",
        "command": raw.get("command") or "",
        "timeoutSeconds": raw.get("timeoutSeconds") or 300,
        "continueOnError": bool(raw.get("continueOnError")),
        "workingDirectory": raw.get("workingDirectory"),
        "env": [{"name": e["name"], "value": e["value"]} for e in raw.get("env") or []],
        "expectedExitCodes": list(raw.get("expectedExitCodes") or [0]),
        "script": raw.get("script"),
        "transfer": raw.get("transfer"),
    }


def normalise_policy(raw: dict[str, Any] | None) -> dict[str, Any]:
    policy = dict(DEFAULT_POLICY)
    policy.update({k: v for k, v in (raw or {}).items() if v is not None or k in DEFAULT_POLICY})
    for key, value in DEFAULT_POLICY.items():
        if policy.get(key) is None and value is not None:
            policy[key] = value
    if policy["concurrency"] not in CONCURRENCY:
        policy["concurrency"] = "allow"
    return policy


def batches(target_ids: list[str], policy: dict[str, Any]) -> list[list[str]]:
    """Rolling batches as the engine runs them: batchSize, else batchPercent of all, else one."""
    return run_policy(policy).batches(target_ids)


def step_spec(step: dict[str, Any]) -> Step:
    """A stored (normalised, camelCase) step as the run plan's ``Step``."""
    script = transfer = None
    if step.get("script"):
        s = step["script"]
        script = Script(
            interpreter=s["interpreter"], body=s["body"], arguments=tuple(s.get("arguments") or ())
        )
    if step.get("transfer"):
        t = step["transfer"]
        transfer = Transfer(
            direction=t["direction"],
            destination=t["destination"],
            source=t.get("source"),
            content=t.get("content"),
            mode=t.get("mode"),
        )
    return Step(
        order=int(step.get("order") or 1),
        name=step["name"],
        type=step.get("type") or "command",
        command=step.get("command") or "",
        timeout_seconds=int(step.get("timeoutSeconds") or DEFAULT_STEP_TIMEOUT_SECONDS),
        continue_on_error=bool(step.get("continueOnError")),
        working_directory=step.get("workingDirectory"),
        env=tuple(EnvVar(name=e["name"], value=e["value"]) for e in step.get("env") or []),
        expected_exit_codes=tuple(step.get("expectedExitCodes") or (0,)),
        script=script,
        transfer=transfer,
    )


def run_policy(policy: dict[str, Any]) -> Policy:
    """A stored (normalised, camelCase) policy as the run plan's ``Policy``; a missing, null
    (or zero timeout) key takes the run plan's default."""
    values = {
        "maxParallel": max(1, int(policy["maxParallel"])) if policy.get("maxParallel") is not None else None,
        "batchSize": policy.get("batchSize"),
        "batchPercent": policy.get("batchPercent"),
        "failFastThreshold": policy.get("failFastThreshold"),
        "retries": policy.get("retries"),
        "retryBackoffSeconds": policy.get("retryBackoffSeconds"),
        "timeoutSeconds": int(policy["timeoutSeconds"]) if policy.get("timeoutSeconds") else None,
        "concurrency": policy.get("concurrency"),
        "allowHostOverlap": policy.get("allowHostOverlap"),
    }
    return Policy.model_validate({key: value for key, value in values.items() if value is not None})


def engine_truncates() -> bool:
    return "max_output_bytes" in _field_names(ExecutionPlan)


@dataclass
class Deps:
    settings: Settings
    engine: Any | None  # opsconductor_ray.client.EngineClient
    jobs: ServiceClient
    targets: ServiceClient
    broadcaster: Broadcaster
    followers: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    replica: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )
    sweeper: asyncio.Task[None] | None = None
    grant_clocks: dict[str, GrantClock] = field(default_factory=dict)
    """When the connection grant of a run this replica started must be renewed (M3)."""
    cancel_sent: set[str] = field(default_factory=set)
    """Runs whose coordinator got our cancel request (no need to send it again)."""

    def _timeout(self) -> float:
        return self.settings.engine_call_timeout_seconds

    def _retention(self) -> timedelta:
        return timedelta(hours=self.settings.idempotency_key_hours)

    # -- resolving the plan --------------------------------------------------------------------

    async def resolve_plan(
        self, job_id: str, parameters: dict[str, Any] | None, target_ids: list[str] | None
    ) -> dict[str, Any]:
        """The job's run plan from the jobs subgraph: `jobPlan`, or the plain job before it exists."""
        try:
            data = await self.jobs.execute(
                JOB_PLAN_QUERY, {"id": job_id, "parameters": parameters, "targetIds": target_ids}
            )
        except ServiceCallError as exc:
            if "jobPlan" not in str(exc) and "Cannot query" not in str(exc) and "Unknown" not in str(exc):
                raise DependencyUnavailableError(f"jobs service unavailable: {exc}", "jobs") from exc
            log.warning("jobs subgraph has no usable jobPlan; using the plain job", error=str(exc))
            return await self._plan_from_job(job_id, parameters, target_ids)
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
        return {
            "jobId": result["jobId"],
            "serial": result["serial"],
            "name": result["name"],
            "version": result["version"],
            "targetIds": list(result["targetIds"]),
            "parameters": result.get("parameters") or {},
            "steps": [normalise_step(s, i) for i, s in enumerate(sorted(result["steps"], key=_order))],
            "policy": normalise_policy(result.get("policy")),
            "dangerous": list(result.get("dangerous") or []),
        }

    async def _plan_from_job(
        self, job_id: str, parameters: dict[str, Any] | None, target_ids: list[str] | None
    ) -> dict[str, Any]:
        try:
            job = (await self.jobs.execute(JOB_QUERY, {"id": job_id}))["job"]
        except ServiceCallError as exc:
            raise DependencyUnavailableError(f"jobs service unavailable: {exc}", "jobs") from exc
        if job is None:
            raise NotFoundError(f"job {job_id} not found", id=job_id)
        chosen = list(dict.fromkeys(target_ids)) if target_ids else list(job["targetIds"])
        unknown = [t for t in chosen if t not in set(job["targetIds"])]
        if unknown:
            raise ValidationError(
                f"targets not part of job {job['serial']}: {', '.join(unknown)}", field="targetIds"
            )
        return {
            "jobId": job["id"],
            "serial": job.get("serial"),
            "name": job["name"],
            "version": job.get("version") or 1,
            "targetIds": chosen,
            "parameters": parameters or {},
            "steps": [normalise_step(s, i) for i, s in enumerate(sorted(job["steps"], key=_order))],
            "policy": normalise_policy(job.get("policy")),
            "dangerous": [],
        }

    async def _targets_info(self, ids: list[str]) -> list[dict[str, Any]]:
        """Name, host and method of each target (read only: for dry runs)."""
        try:
            rows = (await self.targets.execute(TARGETS_QUERY, {"ids": ids}))["targetsByIds"]
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

    async def _grant(self, ids: list[str]) -> dict[str, Any]:
        try:
            grant = (await self.targets.execute(GRANT_MUTATION, {"ids": ids}, retries=0))[
                "issueConnectionGrant"
            ]
        except ServiceCallError as exc:
            raise DependencyUnavailableError(f"targets service unavailable: {exc}", "targets") from exc
        if grant["__typename"] != "ConnectionGrant":
            raise ValidationError(grant.get("message", "targets unavailable"), field="targetIds")
        return grant

    # -- starting a run ------------------------------------------------------------------------

    async def dry_run(
        self, *, job_id: str, target_ids: list[str] | None, parameters: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The resolved plan and its batches; nothing is created or started."""
        plan = await self.resolve_plan(job_id, parameters, target_ids)
        if not plan["targetIds"]:
            raise ValidationError("the job has no targets to run on", field="targetIds")
        plan["targets"] = await self._targets_info(plan["targetIds"])
        plan["batches"] = batches([t["id"] for t in plan["targets"]], plan["policy"])
        return plan

    async def run_job(
        self,
        *,
        job_id: str,
        target_ids: list[str] | None,
        actor: str | None,
        notify: Any,
        parameters: dict[str, Any] | None = None,
        may_run_dangerous: bool = False,
        confirm_dangerous: bool = False,
        idempotency_key: str | None = None,
    ) -> Execution:
        if self.engine is None:
            raise DependencyUnavailableError("execution engine (Ray) is not available", "engine")
        key = check_idempotency_key(idempotency_key)
        if key is not None:
            # a retried request: the run the first one created, nothing runs twice (L10)
            known = await remembered_execution(actor, job_id, key, self._retention())
            if known is not None:
                return known
        plan = await self.resolve_plan(job_id, parameters, target_ids)
        return await self._launch(
            plan,
            actor=actor,
            notify=notify,
            may_run_dangerous=may_run_dangerous,
            confirm_dangerous=confirm_dangerous,
            idempotency_key=key,
        )

    async def retry(
        self,
        *,
        execution_id: str,
        only_failed: bool,
        actor: str | None,
        notify: Any,
        may_run_dangerous: bool = False,
        confirm_dangerous: bool = False,
    ) -> Execution:
        """A new run of the same job version (the steps exactly as run), on the targets that did
        not succeed (FAILED or CANCELLED) or, with ``only_failed`` false, on all of them."""
        if self.engine is None:
            raise DependencyUnavailableError("execution engine (Ray) is not available", "engine")
        original = await Execution.get_or_none(id=execution_id)
        if original is None:
            raise NotFoundError(f"execution {execution_id} not found", id=execution_id)
        if original.status not in TERMINAL:
            raise ValidationError(f"execution is still {original.status.lower()}", field="id")
        runs = await TargetRun.filter(execution_id=execution_id).order_by("id")
        chosen = [r.target_id for r in runs if not only_failed or r.status != "SUCCEEDED"]
        if not chosen:
            raise ValidationError("no failed targets to retry", field="onlyFailed")
        stored = original.plan or {}
        plan = {
            "jobId": original.job_id,
            "serial": original.job_serial,
            "name": original.job_name,
            "version": original.job_version,
            "targetIds": chosen,
            "parameters": original.parameters or {},
            "steps": [normalise_step(s, i) for i, s in enumerate(stored.get("steps", []))],
            "policy": normalise_policy(stored.get("policy")),
            "dangerous": list(stored.get("dangerous") or []),
        }
        return await self._launch(
            plan,
            actor=actor,
            notify=notify,
            may_run_dangerous=may_run_dangerous,
            confirm_dangerous=confirm_dangerous,
            retry_of=original.id,
        )

    async def _launch(
        self,
        plan: dict[str, Any],
        *,
        actor: str | None,
        notify: Any,
        may_run_dangerous: bool,
        confirm_dangerous: bool,
        retry_of: str | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        if not plan["targetIds"]:
            raise ValidationError("the job has no targets to run on", field="targetIds")
        if plan["dangerous"]:
            await self._dangerous_gate(plan, actor, may_run_dangerous, confirm_dangerous, notify)
        grant = await self._grant(plan["targetIds"])
        stored = {
            "steps": plan["steps"],
            "policy": plan["policy"],
            "targets": grant["targets"],
            "dangerous": plan["dangerous"],
        }
        execution_id = str(uuid.uuid4())
        engine_plan = self._engine_plan(execution_id, stored, grant)  # refuses what the engine cannot run
        execution = await self._create_rows(plan, stored, actor, retry_of, execution_id, idempotency_key)
        if execution.id != execution_id:
            return execution  # a concurrent request with the same idempotency key created it
        notify()
        if execution.waiting:
            return execution
        self.grant_clocks[execution.id] = GrantClock.of(grant, self.settings.grant_renew_fraction)
        # Handing the run to the coordinator takes Ray a moment: the caller gets the QUEUED run now,
        # and the follower starts it (EXECUTION_STARTED then streams to subscribers as usual).
        self.follow(execution.id, engine_plan)
        return execution

    async def _dangerous_gate(
        self,
        plan: dict[str, Any],
        actor: str | None,
        may_run_dangerous: bool,
        confirm_dangerous: bool,
        notify: Any,
    ) -> None:
        """Block dangerous steps unless the caller may run them and confirmed; record every decision."""
        allowed = may_run_dangerous and confirm_dangerous
        if allowed:
            reason = "confirmed by a holder of jobs:execute-dangerous"
        elif not may_run_dangerous:
            reason = "caller lacks jobs:execute-dangerous"
        else:
            reason = "not confirmed (confirmDangerous: true is required)"
        async with in_transaction():
            await record_event(
                Outbox,
                EventEnvelope(
                    type="executions.dangerous_command_decision",
                    source="executions",
                    subject=plan["jobId"],
                    actor=actor,
                    data={
                        "actor": actor,
                        "jobId": plan["jobId"],
                        "jobSerial": plan.get("serial"),
                        "jobVersion": plan.get("version"),
                        "findings": plan["dangerous"],
                        "decision": "allowed" if allowed else "blocked",
                        "reason": reason,
                    },
                ),
            )
        notify()
        if not allowed:
            rules = ", ".join(sorted({f.get("rule", "?") for f in plan["dangerous"]}))
            raise DangerousCommandBlockedError(
                f"the job has dangerous steps ({rules}): {reason}", plan["dangerous"]
            )

    def _engine_plan(self, execution_id: str, stored: dict[str, Any], grant: dict[str, Any]) -> ExecutionPlan:
        try:
            steps = tuple(step_spec(s) for s in stored["steps"])
            policy = run_policy(stored["policy"])
        except PydanticValidationError as exc:
            raise ValidationError(f"the execution engine cannot run this plan: {exc}", field="steps") from exc
        return ExecutionPlan(
            execution_id=execution_id,
            steps=steps,
            targets=tuple(
                TargetSpec(
                    target_id=t["id"],
                    name=t["name"],
                    host=t["host"],
                    port=int(t["port"]),
                    method=str(t["method"]).lower(),
                )
                for t in grant["targets"]
            ),
            credentials=CredentialRef(resolver_url=grant["resolverUrl"], grant=grant["grant"]),
            policy=policy,
            connect_timeout_s=self.settings.connect_timeout_seconds,
            max_output_bytes=self.settings.max_output_bytes_per_step,
        )

    async def _create_rows(
        self,
        plan: dict[str, Any],
        stored: dict[str, Any],
        actor: str | None,
        retry_of: str | None,
        execution_id: str,
        idempotency_key: str | None = None,
    ) -> Execution:
        concurrency = plan["policy"].get("concurrency", "allow")
        for attempt in range(5):
            try:
                async with in_transaction() as conn:
                    await _advisory_lock(conn, plan["jobId"])
                    if idempotency_key is not None:
                        known = await remembered_execution(
                            actor, plan["jobId"], idempotency_key, self._retention()
                        )
                        if known is not None:
                            return known
                        await remember_key(
                            actor, plan["jobId"], idempotency_key, execution_id, self._retention()
                        )
                    waiting = False
                    message = None
                    if concurrency in ("skip", "queue"):
                        active = (
                            await Execution.filter(job_id=plan["jobId"], status__in=ACTIVE)
                            .order_by("number")
                            .first()
                        )
                        if active is not None and concurrency == "skip":
                            raise JobAlreadyRunningError(
                                f"job {plan.get('serial') or plan['jobId']} already has execution "
                                f"#{active.number} {active.status.lower()} (concurrency: skip)",
                                active.id,
                            )
                        if active is not None:
                            waiting = True
                            message = f"queued behind execution #{active.number}"
                    latest = (
                        await Execution.filter(job_id=plan["jobId"])
                        .annotate(m=Max("number"))
                        .values_list("m", flat=True)
                    )
                    number = (latest[0] or 0) + 1 if latest else 1
                    execution = await Execution.create(
                        id=execution_id,
                        job_id=plan["jobId"],
                        job_serial=plan.get("serial"),
                        job_name=plan["name"],
                        job_version=plan.get("version") or 1,
                        number=number,
                        status="QUEUED",
                        message=message,
                        waiting=waiting,
                        requested_by=actor,
                        plan=stored,
                        parameters=plan.get("parameters") or {},
                        retry_of=retry_of,
                        total_targets=len(stored["targets"]),
                        lease_owner=None if waiting else self.replica,
                        lease_until=None if waiting else now() + self._lease(),
                    )
                    await TargetRun.bulk_create(
                        [
                            TargetRun(
                                execution=execution,
                                target_id=t["id"],
                                target_name=t["name"],
                                host=t["host"],
                                port=int(t["port"]),
                            )
                            for t in stored["targets"]
                        ]
                    )
                    await record_event(
                        Outbox,
                        EventEnvelope(
                            type="executions.execution_started",
                            source="executions",
                            subject=execution.id,
                            actor=actor,
                            data={
                                "executionId": execution.id,
                                "jobId": plan["jobId"],
                                "jobVersion": execution.job_version,
                                "number": number,
                                "targetIds": [t["id"] for t in stored["targets"]],
                                "queued": waiting,
                                "retryOf": retry_of,
                            },
                        ),
                    )
                return execution
            except IntegrityError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))  # another run took this number: take the next
        raise RuntimeError("unreachable")

    async def _start_next(self, job_id: str) -> None:
        """Start the oldest run queued behind others of this job, when none is active any more."""
        async with in_transaction() as conn:
            await _advisory_lock(conn, job_id)
            if await Execution.filter(job_id=job_id, status__in=ACTIVE, waiting=False).exists():
                return
            # locked and re-checked: a cancel of this queued run either wins or sees it started
            nxt = (
                await Execution.select_for_update()
                .filter(job_id=job_id, status="QUEUED", waiting=True)
                .order_by("number")
                .first()
            )
            if nxt is None:
                return
            nxt.waiting = False
            nxt.message = None
            nxt.lease_owner = self.replica
            nxt.lease_until = now() + self._lease()
            await nxt.save(update_fields=["waiting", "message", "lease_owner", "lease_until"])
        try:
            grant = await self._grant([t["id"] for t in nxt.plan.get("targets", [])])
            plan = self._engine_plan(nxt.id, nxt.plan, grant)
        except DomainError as exc:
            await self._finish_without_engine(nxt.id, f"could not start the queued run: {exc.message}")
            return
        log.info("starting queued execution", execution_id=nxt.id, job_id=job_id)
        self.grant_clocks[nxt.id] = GrantClock.of(grant, self.settings.grant_renew_fraction)
        self.follow(nxt.id, plan)

    async def _finish_without_engine(
        self, execution_id: str, message: str, *, status: str = "FAILED", only_waiting: bool = False
    ) -> bool:
        """End a run the engine settled it does not run (it never started and never will, or its
        coordinator is gone). ``only_waiting``: only if it still waits behind another run (never
        handed to the engine). False: nothing done (already ended, or no longer waiting)."""
        async with in_transaction():
            execution = await Execution.select_for_update().get(id=execution_id)
            if execution.status in TERMINAL or (only_waiting and not execution.waiting):
                return False
            execution.status = status
            execution.message = message
            execution.finished_at = now()
            execution.waiting = False
            pending = await TargetRun.filter(execution_id=execution_id).exclude(status__in=TERMINAL).count()
            if status == "CANCELLED":
                execution.cancelled_targets += pending
            else:
                execution.failed_targets += pending
            await (
                TargetRun.filter(execution_id=execution_id)
                .exclude(status__in=TERMINAL)
                .update(status=status, message=message, finished_at=now())
            )
            seq = execution.last_seq + 1
            row = await ExecutionEvent.create(
                execution=execution,
                seq=seq,
                type="EXECUTION_FINISHED",
                status=status,
                data=json.dumps({"message": message}),
                at=now(),
            )
            execution.last_seq = seq
            execution.lease_owner = None
            execution.lease_until = None
            await execution.save()
            await record_event(
                Outbox,
                EventEnvelope(
                    type="executions.execution_finished",
                    source="executions",
                    subject=execution.id,
                    data={
                        "executionId": execution.id,
                        "jobId": execution.job_id,
                        "status": execution.status,
                        "succeeded": execution.succeeded_targets,
                        "failed": execution.failed_targets,
                    },
                ),
            )
        self.grant_clocks.pop(execution_id, None)
        self.cancel_sent.discard(execution_id)
        await publish_events(self.broadcaster, execution_id, [event_payload(row)])
        with contextlib.suppress(Exception):
            await self._start_next(execution.job_id)
        return True

    # -- leases --------------------------------------------------------------------------------

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    async def _claim(self, execution_id: str) -> bool:
        """Take the run's lease if it expired (or is ours already)."""
        t = now()
        claimed = (
            await Execution.filter(id=execution_id, status__in=ACTIVE)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=t) | Q(lease_owner=self.replica))
            .update(lease_owner=self.replica, lease_until=t + self._lease())
        )
        return bool(claimed)

    async def _renew(self, execution_id: str) -> bool:
        renewed = await Execution.filter(id=execution_id, lease_owner=self.replica).update(
            lease_until=now() + self._lease()
        )
        return bool(renewed)

    async def release_leases(self) -> None:
        """On shutdown: stop following and let another replica (or our successor) adopt at once."""
        tasks = list(self.followers.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await Execution.filter(lease_owner=self.replica, status__in=ACTIVE).update(
                lease_owner=None, lease_until=None
            )

    # -- following a run -----------------------------------------------------------------------

    def follow(self, execution_id: str, plan: ExecutionPlan | None = None) -> None:
        """Follow a run in the background; with ``plan``, start it on the engine first."""
        if execution_id in self.followers and not self.followers[execution_id].done():
            return
        task = asyncio.create_task(self._follow(execution_id, plan), name=f"follow-{execution_id}")
        self.followers[execution_id] = task
        task.add_done_callback(lambda _t: self.followers.pop(execution_id, None))

    async def _follow(self, execution_id: str, plan: ExecutionPlan | None = None) -> None:
        assert self.engine is not None
        if plan is not None and not await self._start(execution_id, plan):
            return
        execution = await Execution.get(id=execution_id)
        limit = self.settings.max_output_bytes_per_step
        # The engine cuts output itself (ExecutionPlan.max_output_bytes): ours is the safety net,
        # with room for the engine's marker line so that one is never cut in half.
        follower = _Follower(
            execution,
            limit,
            slack=ENGINE_MARKER_SLACK if engine_truncates() else 0,
            buffer_budget=self.settings.follower_buffer_bytes,
        )
        await follower.load_partial_output()
        failures = 0
        renew_every = max(self.settings.lease_seconds / 3, 0.5)
        renewed_at = asyncio.get_running_loop().time()
        engine = self.engine
        timeout = self._timeout()
        # A rolling run (several batches) fetches credentials per batch: its grant is renewed
        # before it expires (M3). A run adopted from another replica gets a fresh one at once.
        rolling = (
            len(
                batches(
                    [t["id"] for t in execution.plan.get("targets", [])], execution.plan.get("policy") or {}
                )
            )
            > 1
        )
        clock = self.grant_clocks.get(execution_id) or GrantClock(renew_at=0.0)

        def fetch(after_seq: int) -> asyncio.Task[list[EngineEvent]]:
            # The coordinator collects for event_batch_wait_seconds after the first new event
            # and answers at once when the run ends.
            gather = self.settings.event_batch_wait_seconds
            return asyncio.ensure_future(
                engine_call(
                    engine.events(execution_id, after_seq, wait_s=1.0, gather_s=gather),
                    timeout + 1.0 + gather,
                    "events",
                )
            )

        ahead: asyncio.Task[list[EngineEvent]] | None = None
        """The next batch, asked for while this one is stored (no round trip between batches)."""
        try:
            while True:
                loop_time = asyncio.get_running_loop().time()
                if loop_time - renewed_at >= renew_every:
                    if not await self._renew(execution_id):
                        log.warning("another replica took over the execution", execution_id=execution_id)
                        return
                    renewed_at = loop_time
                    await self._forward_cancel(execution_id)
                if rolling and not follower.finished and clock.due():
                    clock = await renew_grant(self, follower.execution, clock)
                    self.grant_clocks[execution_id] = clock
                pending, ahead = ahead or fetch(follower.last_seq), None
                try:
                    batch = await pending
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    exists = await engine_has(engine, execution_id, timeout)
                    if exists is False:
                        # settled: no coordinator has the run (it restarted): nothing runs it any more
                        log.error("lost the execution coordinator", execution_id=execution_id, error=str(exc))
                        await self._finish_without_engine(execution_id, f"execution coordinator lost: {exc}")
                        return
                    # unknown (timeout, Ray error) or a passing failure: never a guess, ask again
                    log.warning(
                        "could not read the run's events; retrying",
                        execution_id=execution_id,
                        error=str(exc),
                        failures=failures,
                    )
                    await asyncio.sleep(min(0.5 * failures, 5.0))
                    continue
                if not batch:
                    continue
                if batch[-1].type != "EXECUTION_FINISHED":
                    ahead = fetch(batch[-1].seq)
                rows = await follower.persist(batch)
                await publish_events(self.broadcaster, execution_id, rows)
                if follower.finished:
                    self.grant_clocks.pop(execution_id, None)
                    self.cancel_sent.discard(execution_id)
                    with contextlib.suppress(Exception):
                        await engine_call(engine.release(execution_id), timeout + 30, "release")
                    with contextlib.suppress(Exception):
                        await self._start_next(follower.execution.job_id)
                    return
        finally:
            if ahead is not None:
                ahead.cancel()
                ahead.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, not logged

    async def _start(self, execution_id: str, plan: ExecutionPlan) -> bool:
        """Hand the run to the engine. True: follow it. A start whose outcome is unknown (timeout,
        Ray error) is settled with the engine (`forbid`): either it runs (follow it) or it never
        will (end it) — never recorded as ended while it might run (L9, M2)."""
        assert self.engine is not None
        error: str | None = None
        try:
            started = await engine_call(
                self.engine.start(plan), self.settings.engine_start_timeout_seconds, "start"
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "the engine start did not answer cleanly; settling", execution_id=execution_id, error=str(exc)
            )
            started, error = False, str(exc)
        if started:
            await self._forward_cancel(execution_id)
            return True
        # Not started by this call (a repeat, a forbidden id, or an unknown outcome): ask the engine.
        for attempt in range(5):
            settled = await settle(self.engine, execution_id, self._timeout())
            if settled == "known":
                await self._forward_cancel(execution_id)
                return True
            if settled in ("forbidden", "released"):
                cancelled = await Execution.filter(id=execution_id, cancel_requested=True).exists()
                if cancelled:
                    await self._finish_without_engine(
                        execution_id, "cancelled before it ran", status="CANCELLED"
                    )
                else:
                    reason = error or "the engine did not take the run"
                    await self._finish_without_engine(
                        execution_id, f"execution engine failed to start the run: {reason}"
                    )
                return False
            await asyncio.sleep(min(1.0 * (attempt + 1), 5.0))
        # Still unknown: stop renewing the lease; the sweep settles the run once it is stale.
        log.error("could not settle the run's start with the engine", execution_id=execution_id)
        return False

    async def _forward_cancel(self, execution_id: str) -> None:
        """Send a recorded cancel request to the engine (again) until its coordinator got it."""
        if execution_id in self.cancel_sent or self.engine is None:
            return
        if await Execution.filter(id=execution_id, cancel_requested=True).exists():
            await self._send_cancel(execution_id)

    async def _send_cancel(self, execution_id: str) -> str | None:
        """Ask the engine to cancel the run. "cancelling": its coordinator ends it (the follower
        persists CANCELLED); "never-started": settled that it never ran and never will, so it ends
        CANCELLED now; None: the engine could not be asked — the request stays recorded and the
        follower (or the sweep's adoption) sends it again."""
        assert self.engine is not None
        try:
            outcome = str(
                await engine_call(self.engine.cancel_run(execution_id), self._timeout() * 2, "cancel")
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "cancel request not delivered to the engine yet", execution_id=execution_id, error=str(exc)
            )
            return None
        if outcome == "never-started":
            task = self.followers.get(execution_id)
            if task is not None and task is not asyncio.current_task():
                task.cancel()  # its start can no longer run anything
            await self._finish_without_engine(execution_id, "cancelled before it ran", status="CANCELLED")
        else:
            self.cancel_sent.add(execution_id)
        return outcome

    async def reattach(self) -> None:
        """On start-up: adopt what no live replica follows, end what is stale."""
        await self.sweep()

    async def sweep(self) -> None:
        """Adopt active runs whose lease expired while their coordinator lives; end runs whose
        coordinator is gone (beyond ``stale_after_seconds``, and only once the engine settled that
        none has or will start them) as FAILED "stale: ..."; start queued runs whose predecessors
        ended; forget expired idempotency keys."""
        t = now()
        orphans = await Execution.filter(status__in=ACTIVE, waiting=False).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=t) | Q(lease_owner=self.replica)
        )
        for execution in orphans:
            task = self.followers.get(execution.id)
            if task is not None and not task.done():
                continue
            if self.engine is None:
                continue
            exists = await engine_has(self.engine, execution.id, self._timeout())
            if exists is None:
                continue  # the engine cannot be asked: next sweep
            if exists:
                if await self._claim(execution.id):
                    log.info(
                        "re-attaching to running execution",
                        execution_id=execution.id,
                        after_seq=execution.last_seq,
                    )
                    self.follow(execution.id)
                continue
            since = execution.lease_until or execution.started_at or execution.created_at
            idle = (t - since).total_seconds()
            if idle >= self.settings.stale_after_seconds and await self._claim(execution.id):
                # a start may still be on its way to the engine: settle it before judging (L9)
                settled = await settle(self.engine, execution.id, self._timeout())
                if settled == "known":
                    self.follow(execution.id)
                elif settled is not None:
                    await self._finish_without_engine(
                        execution.id,
                        f"stale: no live execution coordinator for {int(idle)}s (service or cluster restarted)",
                    )
        waiting_jobs = (
            await Execution.filter(status="QUEUED", waiting=True).distinct().values_list("job_id", flat=True)
        )
        for job_id in set(waiting_jobs):
            with contextlib.suppress(Exception):
                await self._start_next(job_id)
        with contextlib.suppress(Exception):
            await prune_keys(self._retention())
        # bookkeeping of runs this replica no longer follows (another one finished them)
        for eid in [e for e in self.grant_clocks if e not in self.followers]:
            self.grant_clocks.pop(eid, None)
        self.cancel_sent &= set(self.followers)

    async def run_sweeper(self) -> None:
        """Periodic sweep; errors are logged, never fatal."""
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("execution sweep failed")

    async def cancel(self, execution_id: str) -> Execution:
        """Cancel a run (M2). A run waiting behind another (never handed to the engine) ends
        CANCELLED at once. Otherwise the request is recorded (``cancel_requested``: CANCELLING)
        and sent to the engine; the run ends CANCELLED only when the engine ends it so, or settles
        that it never started (and never will). If the engine cannot be asked now, the run stays
        CANCELLING and the follower sends the request again: never a guess."""
        async with in_transaction():
            execution = await Execution.select_for_update().get_or_none(id=execution_id)
            if execution is None:
                raise NotFoundError(f"execution {execution_id} not found", id=execution_id)
            if execution.status in TERMINAL:
                raise ValidationError(f"execution already {execution.status.lower()}", field="id")
            if not execution.cancel_requested:
                execution.cancel_requested = True
                await execution.save(update_fields=["cancel_requested"])
        if execution.waiting and await self._finish_without_engine(
            execution_id, "cancelled while queued", status="CANCELLED", only_waiting=True
        ):
            return await Execution.get(id=execution_id)
        if self.engine is not None:
            await self._send_cancel(execution_id)
        return await Execution.get(id=execution_id)


RUN_FIELDS = ("status", "exit_code", "message", "connection_reused", "started_at", "finished_at")
"""The TargetRun columns events change."""


EXECUTION_FIELDS = (
    "status",
    "started_at",
    "finished_at",
    "succeeded_targets",
    "failed_targets",
    "cancelled_targets",
    "last_seq",
)
"""The Execution columns a batch of events changes."""
EVENT_COLUMNS = (
    "execution_id",
    "seq",
    "type",
    "target_id",
    "step_index",
    "step_name",
    "data",
    "exit_code",
    "status",
    "at",
)


def _marks(db: Any, count: int) -> list[str]:
    """Parameter placeholders of the connection's dialect."""
    if db.capabilities.dialect == "postgres":
        return [f"${i}" for i in range(1, count + 1)]
    return ["?"] * count


async def _insert_events(execution_id: str, rows: list[dict[str, Any]]) -> None:
    """The batch's events in one prepared INSERT executed per row (no model objects)."""
    if not rows:
        return
    db = ExecutionEvent._choose_db(True)
    columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    marks = ", ".join(_marks(db, len(EVENT_COLUMNS)))
    # only constant column names and placeholders go into the text; every value is a parameter
    sql = f'INSERT INTO "{ExecutionEvent._meta.db_table}" ({columns}) VALUES ({marks})'  # noqa: S608
    await db.execute_many(
        sql,
        [
            [
                execution_id,
                r["seq"],
                r["type"],
                r["targetId"],
                r["stepIndex"],
                r["stepName"],
                r["data"],
                r["exitCode"],
                r["status"],
                r["at"],
            ]
            for r in rows
        ],
    )


async def _update_runs(runs: list[TargetRun]) -> None:
    """One prepared UPDATE executed for every changed target run (what ``bulk_update`` does with
    a CASE per column, at a fraction of its cost for hundreds of rows)."""
    if not runs:
        return
    db = TargetRun._choose_db(True)
    fields = TargetRun._meta.fields_map
    marks = _marks(db, len(RUN_FIELDS) + 1)
    assignments = ", ".join(f'"{column}" = {mark}' for column, mark in zip(RUN_FIELDS, marks, strict=False))
    # only constant column names and placeholders go into the text; every value is a parameter
    sql = f'UPDATE "{TargetRun._meta.db_table}" SET {assignments} WHERE "id" = {marks[-1]}'  # noqa: S608
    await db.execute_many(
        sql,
        [
            [fields[column].to_db_value(getattr(run, column), run) for column in RUN_FIELDS] + [run.id]
            for run in runs
        ],
    )


async def _save_step_results(results: dict[tuple[int, int], dict[str, Any]]) -> None:
    """Store finished steps, keyed (target run id, step index): new ones in one INSERT; one the
    engine reported again replaces the stored row (never expected, but never a failed batch)."""
    if not results:
        return
    run_ids = sorted({run_id for run_id, _ in results})
    existing = {
        (r.target_run_id, r.step_index): r  # type: ignore[attr-defined]
        for r in await StepResult.filter(
            target_run_id__in=run_ids, step_index__in=sorted({i for _, i in results})
        )
    }
    fresh = []
    for (run_id, index), values in results.items():
        row = existing.get((run_id, index))
        if row is None:
            fresh.append(StepResult(target_run_id=run_id, step_index=index, **values))
        else:
            await row.update_from_dict(values).save()
    await StepResult.bulk_create(fresh, batch_size=500)


def _order(step: dict[str, Any]) -> int:
    return int(step.get("order") or 0)


async def _advisory_lock(conn: Any, key: str) -> None:
    """A PostgreSQL transaction-scoped lock per job (other databases: none, tests only)."""
    if getattr(conn.capabilities, "dialect", "") == "postgres":
        await conn.execute_query("SELECT pg_advisory_xact_lock(hashtext($1))", [key])


class _Follower:
    """Applies engine events to the run's rows; one instance per followed execution.

    Output beyond ``max_output`` bytes per step and stream is cut with a marker in the event
    itself, so what is stored, streamed and replayed agree; later chunks of that step keep their
    (empty) event so the sequence numbers stay gapless.
    """

    def __init__(
        self, execution: Execution, max_output: int, slack: int = 0, buffer_budget: int | None = None
    ) -> None:
        self.execution = execution
        self.limit = max_output  # what the marker reports
        self.max_output = max_output + slack
        self.last_seq = execution.last_seq
        self.finished = execution.status in TERMINAL
        self.output: dict[tuple[str, int, str], list[str]] = defaultdict(list)
        self.sizes: dict[tuple[str, int, str], int] = defaultdict(int)
        self.cut: set[tuple[str, int]] = set()
        # M12: all unfinished steps' buffers together stay under this; a step whose output did
        # not fit keeps what it had plus a marker in its result (its events keep every chunk).
        self.buffer_budget = buffer_budget if buffer_budget is not None else 32 * 1024 * 1024
        self.buffered = 0
        self.spilled: set[tuple[str, int, str]] = set()
        self.runs: dict[str, TargetRun] | None = None
        """The run's target rows, read once and kept while only this follower writes them."""

    async def load_partial_output(self) -> None:
        """After a restart, rebuild the output of steps that had not finished yet."""
        finished = {
            (r.target_id, r.step_index)
            for r in await ExecutionEvent.filter(execution_id=self.execution.id, type="STEP_FINISHED")
        }
        async for row in ExecutionEvent.filter(
            execution_id=self.execution.id, type__in=["STDOUT", "STDERR"]
        ).order_by("seq"):
            if (
                (row.target_id, row.step_index) not in finished
                and row.target_id
                and row.step_index is not None
            ):
                key = (row.target_id, row.step_index, row.type)
                text = row.data or ""
                self._buffer(key, text)
                self.sizes[key] += len(text.encode())
                if TRUNCATED_MARKER.format(limit=self.limit) in text:
                    self.sizes[key] = self.max_output
                    self.cut.add((row.target_id, row.step_index))

    def _buffer(self, key: tuple[str, int, str], text: str) -> None:
        """Keep ``text`` for the step's result, within the follower's budget (M12)."""
        if key in self.spilled:
            return
        cost = len(text)
        if self.buffered + cost > self.buffer_budget:
            self.spilled.add(key)
            self.cut.add((key[0], key[1]))
            return
        self.output[key].append(text)
        self.buffered += cost

    def _take(self, key: tuple[str, int, str]) -> str:
        """The step's buffered output (released from the budget), with a marker if it spilled."""
        parts = self.output.pop(key, [])
        self.buffered -= sum(len(p) for p in parts)
        text = "".join(parts)
        if key in self.spilled:
            self.spilled.discard(key)
            text += SPILLED_MARKER
        return text

    def _drop_target(self, target_id: str) -> None:
        """A finished target's leftover buffers (steps that never reported) are released."""
        for key in [k for k in self.output if k[0] == target_id]:
            self._take(key)
        for key in [k for k in self.sizes if k[0] == target_id]:
            del self.sizes[key]
        self.spilled = {k for k in self.spilled if k[0] != target_id}

    def _append(self, target_id: str, step_index: int, kind: str, text: str) -> str:
        """Keep ``text`` within the step's limit; returns what is stored and streamed."""
        key = (target_id, step_index, kind)
        room = self.max_output - self.sizes[key]
        if room <= 0:
            return ""
        raw = text.encode()
        if len(raw) > room:
            text = raw[:room].decode(errors="ignore") + TRUNCATED_MARKER.format(limit=self.limit)
            self.sizes[key] = self.max_output
            self.cut.add((target_id, step_index))
        else:
            self.sizes[key] += len(raw)
        self._buffer(key, text)
        return text

    async def persist(self, batch: list[EngineEvent]) -> list[dict[str, Any]]:
        batch = [e for e in batch if e.seq > self.last_seq]
        if not batch:
            return []
        try:
            return await self._persist(batch)
        except BaseException:
            self.runs = None  # rolled back: the cached rows hold changes that were not stored
            raise

    async def _persist(self, batch: list[EngineEvent]) -> list[dict[str, Any]]:
        payloads: list[dict[str, Any]] = []
        async with in_transaction():
            # Row lock: two replicas following one run (a lease taken over) never write a seq twice.
            # Only the columns that tell whether someone else wrote; not the plan (every target).
            locked = (
                await Execution.select_for_update().only("id", "last_seq", "status").get(id=self.execution.id)
            )
            batch = [e for e in batch if e.seq > locked.last_seq]
            if not batch:
                # another replica persisted these: its target-run writes are not in our cache
                self.last_seq = locked.last_seq
                self.finished = locked.status in TERMINAL
                self.runs = None
                return []
            if (
                self.runs is None
                or locked.last_seq != self.last_seq
                or locked.status != self.execution.status
            ):
                # first batch, after a rollback, or another replica wrote since ours: read afresh
                execution = await Execution.get(id=self.execution.id)
                self.runs = {r.target_id: r for r in await TargetRun.filter(execution_id=execution.id)}
            else:
                execution = self.execution  # only we wrote since: what we hold is what is stored
            runs = self.runs
            steps_by_index = {i: s for i, s in enumerate(execution.plan.get("steps", []))}
            rows = []
            dirty: set[str] = set()
            results: dict[tuple[int, int], dict[str, Any]] = {}
            for e in batch:
                at = datetime.fromtimestamp(e.at, UTC)
                data = e.data
                if e.type in ("STDOUT", "STDERR") and e.target_id and e.step_index is not None:
                    data = self._append(e.target_id, e.step_index, e.type, e.data or "")
                rows.append(
                    {
                        "seq": e.seq,
                        "type": str(e.type),
                        "targetId": e.target_id,
                        "stepIndex": e.step_index,
                        "stepName": e.step_name,
                        "data": data,
                        "exitCode": e.exit_code,
                        "status": None if e.status is None else str(e.status),
                        "at": at,
                    }
                )
                await self._apply(execution, runs, steps_by_index, e, at, dirty, results)
            # A few statements per batch, not per target: hundreds of targets finish together.
            await _insert_events(execution.id, rows)
            await _save_step_results(results)
            await _update_runs([runs[t] for t in sorted(dirty)])
            self.last_seq = batch[-1].seq
            execution.last_seq = self.last_seq
            # not the whole row: its plan (every target) need not be written again per batch
            await execution.save(update_fields=EXECUTION_FIELDS)
            for row in rows:
                payloads.append({**row, "at": row["at"].isoformat()})
        self.execution = execution
        return payloads

    async def _apply(
        self,
        execution: Execution,
        runs: dict[str, TargetRun],
        steps: dict[int, Any],
        e: EngineEvent,
        at: datetime,
        dirty: set[str],
        results: dict[tuple[int, int], dict[str, Any]],
    ) -> None:
        run = runs.get(e.target_id) if e.target_id else None
        if e.type == "EXECUTION_STARTED":
            execution.status = "RUNNING"
            execution.started_at = at
        elif e.type == "TARGET_STARTED" and run is not None:
            run.status = "RUNNING"
            run.started_at = at
            run.connection_reused = e.reused_connection
            dirty.add(run.target_id)
        elif e.type == "STEP_FINISHED" and run is not None and e.step_index is not None:
            spec = steps.get(e.step_index, {})
            out = self._take((run.target_id, e.step_index, "STDOUT"))
            err = self._take((run.target_id, e.step_index, "STDERR"))
            results[(run.id, e.step_index)] = {
                "name": e.step_name or spec.get("name", ""),
                "command": spec.get("command", ""),
                "status": e.status or "FAILED",
                "exit_code": e.exit_code,
                "stdout": out,
                "stderr": err,
                "duration_ms": e.duration_ms,
                "truncated": (run.target_id, e.step_index) in self.cut
                or "truncated" in (out[-200:] + err[-200:]),
                "finished_at": at,
            }
            if e.exit_code is not None:
                run.exit_code = e.exit_code
                dirty.add(run.target_id)
        elif e.type == "TARGET_FINISHED" and run is not None:
            self._drop_target(run.target_id)
            run.status = e.status or "FAILED"
            run.finished_at = at
            if e.status != "SUCCEEDED" and e.data:
                run.message = e.data
            dirty.add(run.target_id)
            if run.status == "SUCCEEDED":
                execution.succeeded_targets += 1
            elif run.status == "CANCELLED":
                execution.cancelled_targets += 1
            else:
                execution.failed_targets += 1
        elif e.type == "EXECUTION_FINISHED":
            execution.status = e.status or "FAILED"
            execution.finished_at = at
            if execution.started_at is None:
                execution.started_at = at
            self.finished = True
            await record_event(
                Outbox,
                EventEnvelope(
                    type="executions.execution_finished",
                    source="executions",
                    subject=execution.id,
                    data={
                        "executionId": execution.id,
                        "jobId": execution.job_id,
                        "status": execution.status,
                        "succeeded": execution.succeeded_targets,
                        "failed": execution.failed_targets,
                    },
                ),
            )
