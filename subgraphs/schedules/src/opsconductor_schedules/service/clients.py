"""The other subgraphs a schedule needs, called with this service's token (no database sharing).

* jobs: does the job exist (createSchedule, updateSchedule);
* users: is the owner active and does the owner hold ``jobs:execute`` (every fire);
* executions: is a run of the job active (overlap policy), and ``runJob`` itself, with an
  idempotency key per fire so a retried start never starts a second run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from opsconductor_shared.client import ServiceCallError
from opsconductor_shared.errors import DependencyUnavailableError

__all__ = ["GraphQLCaller", "JobDirectory", "OwnerCheck", "RunOutcome", "RunStarter"]

JOB_EXISTS = "query($id: ID!) { job(id: $id) { id } }"
OWNER = "query($id: ID!) { user(id: $id) { id isActive permissions } }"
ACTIVE_RUNS = """query($jobId: ID!) {
  executions(first: 1, filter: {jobId: $jobId, statuses: [QUEUED, RUNNING]}) { edges { node { id } } }
}"""
RUN_JOB = """mutation($jobId: ID!, $targetIds: [ID!], $parameters: JSON, $key: String) {
  runJob(jobId: $jobId, targetIds: $targetIds, parameters: $parameters, idempotencyKey: $key) {
    __typename
    ... on ExecutionStarted { execution { id } }
    ... on ExecutionQueued { execution { id } }
    ... on JobAlreadyRunning { executionId }
    ... on Error { message }
  }
}"""


class GraphQLCaller(Protocol):
    """What :class:`opsconductor_shared.client.ServiceClient` offers."""

    async def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, retries: int | None = None
    ) -> dict[str, Any]: ...


def _has(permissions: list[str], permission: str) -> bool:
    resource = permission.split(":", 1)[0]
    return "*" in permissions or permission in permissions or f"{resource}:*" in permissions


class JobDirectory:
    def __init__(self, jobs: GraphQLCaller) -> None:
        self.jobs = jobs

    async def exists(self, job_id: str) -> bool:
        try:
            data = await self.jobs.execute(JOB_EXISTS, {"id": job_id})
        except ServiceCallError as exc:
            raise DependencyUnavailableError(f"the jobs service did not answer: {exc}", "jobs") from exc
        return data.get("job") is not None


class OwnerCheck:
    def __init__(self, users: GraphQLCaller) -> None:
        self.users = users

    async def problem(self, owner_id: str | None) -> str | None:
        """Why the owner may not run the job now (None: they may). Raises ServiceCallError."""
        if not owner_id:
            return "the schedule has no owner"
        data = await self.users.execute(OWNER, {"id": owner_id})
        user = data.get("user")
        if user is None:
            return f"the owner {owner_id} no longer exists"
        if not user.get("isActive"):
            return f"the owner {owner_id} is deactivated"
        if not _has(list(user.get("permissions") or []), "jobs:execute"):
            return f"the owner {owner_id} lacks jobs:execute"
        return None


@dataclass(frozen=True)
class RunOutcome:
    execution_id: str | None
    error: str | None = None
    already_running: bool = False


class RunStarter:
    def __init__(self, executions: GraphQLCaller) -> None:
        self.executions = executions

    async def active_run(self, job_id: str) -> str | None:
        data = await self.executions.execute(ACTIVE_RUNS, {"jobId": job_id})
        edges = data["executions"]["edges"]
        return str(edges[0]["node"]["id"]) if edges else None

    async def run_job(
        self, *, job_id: str, target_ids: list[str] | None, parameters: dict[str, Any] | None, key: str
    ) -> RunOutcome:
        """Start the run; the same ``key`` again returns the run the first call created."""
        data = await self.executions.execute(
            RUN_JOB,
            {"jobId": job_id, "targetIds": target_ids or None, "parameters": parameters, "key": key},
            retries=2,  # safe: the idempotency key makes a repeat return the same run
        )
        result = data["runJob"]
        kind = result.get("__typename")
        if kind in ("ExecutionStarted", "ExecutionQueued"):
            return RunOutcome(str(result["execution"]["id"]))
        if kind == "JobAlreadyRunning":
            return RunOutcome(
                None, f"the job is already running ({result.get('executionId')})", already_running=True
            )
        return RunOutcome(None, f"{kind}: {result.get('message', 'refused')}")
