"""runJob with jobPlan (parameters, dry run, dangerous gate, concurrency), retryExecution, filters,
Target.runs and targetOutput, against the real platform (PostgreSQL, Redis, Ray, sshd)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from subgraphs.executions.tests.factories import (
    create_job,
    create_target,
    pg_dsn,
    wait_seq,
    wait_terminal,
)
from tests.support.access import create_user, role_login
from tests.support.platform import gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

RUN = """mutation($job: ID!, $targets: [ID!], $params: JSON, $dry: Boolean, $confirm: Boolean) {
  runJob(jobId: $job, targetIds: $targets, parameters: $params, dryRun: $dry, confirmDangerous: $confirm) {
  __typename
  ... on ExecutionStarted { execution { id number status jobVersion parameters queued } }
  ... on ExecutionQueued { execution { id number status queued message } }
  ... on ExecutionPlanned { plan { jobId version name parameters policy batches
      targets { id name host port method } steps { name type command } dangerous { rule stepName } } }
  ... on DangerousCommandBlocked { message findings { rule stepName match } }
  ... on JobAlreadyRunning { message executionId }
  ... on Error { message } } }"""
RETRY = """mutation($id: ID!, $only: Boolean) { retryExecution(id: $id, onlyFailed: $only) { __typename
  ... on ExecutionStarted { execution { id jobVersion retryOf totalTargets } } ... on Error { message } } }"""
CANCEL = """mutation($id: ID!) { cancelExecution(id: $id) { __typename ... on Error { message } } }"""
OUTPUT = """query($e: ID!, $t: ID!, $first: Int, $after: String) {
  targetOutput(executionId: $e, targetId: $t, first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { seq stream stepIndex text } } } }"""


async def run(platform: Any, token: str, job: str, **variables: Any) -> dict[str, Any]:
    body = await gql(platform.url("executions"), RUN, {"job": job, **variables}, token=token)
    assert "errors" not in body, body
    return body["data"]["runJob"]


@pytest.fixture(scope="module")
async def targets(platform: Any, admin_token: str, sshd: Any) -> list[str]:
    return [await create_target(platform, admin_token, sshd, h) for h in sshd.hosts[11:14]]


@pytest.fixture(scope="module")
async def operator_token(platform: Any, admin_token: str) -> str:
    name = f"op{uuid.uuid4().hex[:6]}"
    await create_user(platform, admin_token, name, ["operator"])
    return await role_login(platform, name)


async def test_dry_run_shows_the_resolved_plan_and_starts_nothing(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(
        platform,
        admin_token,
        targets,
        "echo {{ greeting }}",
        policy={"batchSize": 2, "maxParallel": 5},
        parameters=[{"name": "greeting", "type": "string", "default": "hello"}],
    )
    result = await run(platform, admin_token, job, dry=True, params={"greeting": "hi there; id"})
    assert result["__typename"] == "ExecutionPlanned", result
    plan = result["plan"]
    assert plan["jobId"] == job and plan["version"] >= 1
    assert [t["id"] for t in plan["targets"]] == targets
    assert all(t["host"].startswith("127.") and t["method"] == "ssh" for t in plan["targets"])
    assert plan["batches"] == [targets[:2], targets[2:]]
    assert plan["parameters"]["greeting"] == "hi there; id"
    # the value is one quoted shell word, never a second command
    assert plan["steps"][0]["command"] == "echo 'hi there; id'", plan["steps"]
    assert plan["policy"]["batchSize"] == 2 and plan["dangerous"] == []
    subset = await run(platform, admin_token, job, dry=True, targets=targets[1:2])
    assert [t["id"] for t in subset["plan"]["targets"]] == targets[1:2]
    listed = await gql(
        platform.url("executions"),
        """query($job: ID!) { executions(filter: {jobId: $job}) { totalCount } }""",
        {"job": job},
        token=admin_token,
    )
    assert listed["data"]["executions"]["totalCount"] == 0, "a dry run must not create a run"


async def test_run_records_parameters_version_and_command_as_run(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(
        platform,
        admin_token,
        targets[:1],
        "echo value={{ greeting }}",
        parameters=[{"name": "greeting", "type": "string", "default": "hello"}],
    )
    started = await run(platform, admin_token, job, params={"greeting": "a b"})
    assert started["__typename"] == "ExecutionStarted", started
    done = await wait_terminal(platform.url("executions"), admin_token, started["execution"]["id"])
    assert done["status"] == "SUCCEEDED", done
    assert done["parameters"]["greeting"] == "a b" and done["jobVersion"] >= 1
    step = done["targetRuns"][0]["steps"][0]
    assert step["command"] == "echo value='a b'" and "value=a b" in step["stdout"]
    assert step["exitCode"] == 0 and step["durationMs"] is not None
    assert step["startedAt"] <= step["finishedAt"] and step["truncated"] is False
    assert done["steps"][0]["command"] == "echo value='a b'"


async def test_output_ending_with_the_word_truncated_is_not_flagged(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    """Item 3: `truncated` is the engine's field, not a search of the output: a command that
    prints the word (even the marker's text) under the limit is not flagged."""
    from opsconductor_ray.protocol import truncation_marker

    marker = truncation_marker(1000).strip()
    job = await create_job(platform, admin_token, targets[:1], f"echo '{marker}'; echo the log was truncated")
    started = await run(platform, admin_token, job)
    assert started["__typename"] == "ExecutionStarted", started
    done = await wait_terminal(platform.url("executions"), admin_token, started["execution"]["id"])
    assert done["status"] == "SUCCEEDED", done
    step = done["targetRuns"][0]["steps"][0]
    assert step["stdout"].endswith("the log was truncated\n") and marker in step["stdout"]
    assert step["truncated"] is False, step


async def _decisions(platform: Any, job: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(pg_dsn(platform))
    try:
        rows = await conn.fetch("SELECT envelope FROM outbox ORDER BY created_at")
    finally:
        await conn.close()
    out = []
    for row in rows:
        envelope = row["envelope"]
        envelope = json.loads(envelope) if isinstance(envelope, str) else envelope
        if envelope["type"] == "executions.dangerous_command_decision" and envelope["data"]["jobId"] == job:
            out.append(envelope["data"])
    return out


async def test_dangerous_steps_need_the_permission_and_a_confirmation(
    platform: Any, admin_token: str, operator_token: str, targets: list[str]
) -> None:
    # Matches the "--no-preserve-root" rule, yet only echoes: safe to really run.
    job = await create_job(platform, admin_token, targets[:1], "echo --no-preserve-root")
    dry = await run(platform, admin_token, job, dry=True)
    assert [f["rule"] for f in dry["plan"]["dangerous"]] == ["fs.no-preserve-root"]
    by_operator = await run(platform, operator_token, job, confirm=True)
    assert by_operator["__typename"] == "DangerousCommandBlocked", by_operator
    assert by_operator["findings"][0]["rule"] == "fs.no-preserve-root"
    assert "jobs:execute-dangerous" in by_operator["message"]
    unconfirmed = await run(platform, admin_token, job)
    assert unconfirmed["__typename"] == "DangerousCommandBlocked", unconfirmed
    confirmed = await run(platform, admin_token, job, confirm=True)
    assert confirmed["__typename"] == "ExecutionStarted", confirmed
    done = await wait_terminal(platform.url("executions"), admin_token, confirmed["execution"]["id"])
    assert done["status"] == "SUCCEEDED"
    assert "--no-preserve-root" in done["targetRuns"][0]["steps"][0]["stdout"]
    decisions = await _decisions(platform, job)
    assert [d["decision"] for d in decisions] == ["blocked", "blocked", "allowed"], decisions
    assert all(d["findings"][0]["rule"] == "fs.no-preserve-root" and d["actor"] for d in decisions)


async def test_concurrency_skip_refuses_a_second_run(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(
        platform, admin_token, targets[:1], "echo started; sleep 30", policy={"concurrency": "skip"}
    )
    first = await run(platform, admin_token, job)
    assert first["__typename"] == "ExecutionStarted", first
    first_id = first["execution"]["id"]
    second = await run(platform, admin_token, job)
    assert second["__typename"] == "JobAlreadyRunning", second
    assert second["executionId"] == first_id
    await wait_seq(platform.url("executions"), admin_token, first_id, 2)
    await gql(platform.url("executions"), CANCEL, {"id": first_id}, token=admin_token)
    assert (await wait_terminal(platform.url("executions"), admin_token, first_id))["status"] == "CANCELLED"
    third = await run(platform, admin_token, job)
    assert third["__typename"] == "ExecutionStarted", "skip applies only while a run is active"
    await gql(platform.url("executions"), CANCEL, {"id": third["execution"]["id"]}, token=admin_token)
    await wait_terminal(platform.url("executions"), admin_token, third["execution"]["id"])


async def test_concurrency_queue_starts_the_next_run_when_the_previous_ends(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(
        platform, admin_token, targets[1:2], "echo run; sleep 2", policy={"concurrency": "queue"}
    )
    first = await run(platform, admin_token, job)
    assert first["__typename"] == "ExecutionStarted", first
    second = await run(platform, admin_token, job)
    assert second["__typename"] == "ExecutionQueued", second
    assert second["execution"]["queued"] is True and second["execution"]["status"] == "QUEUED"
    assert "#1" in second["execution"]["message"]
    url = platform.url("executions")
    done1 = await wait_terminal(url, admin_token, first["execution"]["id"])
    done2 = await wait_terminal(url, admin_token, second["execution"]["id"])
    assert done1["status"] == "SUCCEEDED" and done2["status"] == "SUCCEEDED", (done1, done2)
    assert done2["startedAt"] >= done1["finishedAt"], "the queued run started only after the first ended"


async def test_retry_only_failed_targets_runs_the_same_version(
    platform: Any, admin_token: str, targets: list[str], sshd: Any
) -> None:
    failing_host = sshd.hosts[12]  # targets[1]
    command = f'case " $SSH_CONNECTION " in *" {failing_host} "*) echo no >&2; exit 3;; esac; echo ok'
    job = await create_job(platform, admin_token, targets, command)
    started = await run(platform, admin_token, job)
    url = platform.url("executions")
    done = await wait_terminal(url, admin_token, started["execution"]["id"])
    assert done["status"] == "FAILED" and done["failedTargets"] == 1 and done["succeededTargets"] == 2, done
    failed = [r for r in done["targetRuns"] if r["status"] == "FAILED"]
    assert [r["targetId"] for r in failed] == [targets[1]]
    assert failed[0]["steps"][0]["exitCode"] == 3 and "no" in failed[0]["steps"][0]["stderr"]
    retried = await gql(url, RETRY, {"id": done["id"], "only": True}, token=admin_token)
    result = retried["data"]["retryExecution"]
    assert result["__typename"] == "ExecutionStarted", retried
    assert result["execution"]["retryOf"] == done["id"] and result["execution"]["totalTargets"] == 1
    assert result["execution"]["jobVersion"] == done["jobVersion"]
    again = await wait_terminal(url, admin_token, result["execution"]["id"])
    assert [r["targetId"] for r in again["targetRuns"]] == [targets[1]]
    assert again["steps"][0]["command"] == command
    everything = await gql(url, RETRY, {"id": done["id"], "only": False}, token=admin_token)
    assert everything["data"]["retryExecution"]["execution"]["totalTargets"] == 3
    await wait_terminal(url, admin_token, everything["data"]["retryExecution"]["execution"]["id"])
    # filters: this target's runs, failed only, created after the first run
    listed = await gql(
        url,
        """query($t: ID!, $after: DateTime) { executions(filter: {targetId: $t, statuses: [FAILED],
        createdAfter: $after}, first: 1) { totalCount pageInfo { hasNextPage endCursor }
        edges { node { id retryOf } } } }""",
        {"t": targets[1], "after": done["finishedAt"]},
        token=admin_token,
    )
    page = listed["data"]["executions"]
    assert page["totalCount"] == 2 and page["pageInfo"]["hasNextPage"] is True, listed
    assert page["edges"][0]["node"]["retryOf"] == done["id"]
    none_for_ok_target = await gql(
        url,
        """query($t: ID!, $job: ID!) { executions(filter: {targetId: $t, jobId: $job, status: FAILED}) {
        totalCount } }""",
        {"t": targets[0], "job": job},
        token=admin_token,
    )
    assert none_for_ok_target["data"]["executions"]["totalCount"] == 2  # runs that failed elsewhere
    runs = await gql(
        url,
        """query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Target {
        runs(first: 10, filter: {status: "FAILED"}) { totalCount edges { node { status executionId
        execution { id } steps { exitCode } } } } } } }""",
        {"reps": [{"__typename": "Target", "id": targets[1]}]},
        token=admin_token,
    )
    target_runs = runs["data"]["_entities"][0]["runs"]
    assert target_runs["totalCount"] == 3, runs
    assert all(e["node"]["steps"][0]["exitCode"] == 3 for e in target_runs["edges"])
    job_runs = await gql(
        url,
        """query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Job {
        executions(filter: {statuses: [FAILED]}) { totalCount edges { node { number } } } } } }""",
        {"reps": [{"__typename": "Job", "id": job}]},
        token=admin_token,
    )
    assert [e["node"]["number"] for e in job_runs["data"]["_entities"][0]["executions"]["edges"]] == [
        3,
        2,
        1,
    ]


async def test_target_output_pages_through_a_long_log(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(
        platform,
        admin_token,
        targets[2:3],
        "for i in $(seq 1 40); do echo line-$i; sleep 0.02; done; echo err-line >&2",
    )
    started = await run(platform, admin_token, job)
    url = platform.url("executions")
    done = await wait_terminal(url, admin_token, started["execution"]["id"])
    assert done["status"] == "SUCCEEDED"
    chunks: list[dict[str, Any]] = []
    after = None
    for _ in range(200):
        body = await gql(
            url, OUTPUT, {"e": done["id"], "t": targets[2], "first": 3, "after": after}, token=admin_token
        )
        page = body["data"]["targetOutput"]
        chunks.extend(e["node"] for e in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(chunks) == page["totalCount"] and len(chunks) > 3
    seqs = [c["seq"] for c in chunks]
    assert seqs == sorted(set(seqs))
    stdout = "".join(c["text"] for c in chunks if c["stream"] == "STDOUT")
    assert stdout == done["targetRuns"][0]["steps"][0]["stdout"]
    assert "line-1\n" in stdout and "line-40\n" in stdout
    assert "err-line" in "".join(c["text"] for c in chunks if c["stream"] == "STDERR")
    bad = await gql(url, OUTPUT, {"e": done["id"], "t": targets[2], "after": "nope"}, token=admin_token)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_viewer_cannot_retry(platform: Any, admin_token: str) -> None:
    name = f"viewer{uuid.uuid4().hex[:6]}"
    await create_user(platform, admin_token, name, ["viewer"])
    token = await role_login(platform, name)
    body = await gql(platform.url("executions"), RETRY, {"id": str(uuid.uuid4())}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    body = await gql(
        platform.url("executions"), OUTPUT, {"e": str(uuid.uuid4()), "t": str(uuid.uuid4())}, token=token
    )
    assert "errors" not in body and body["data"]["targetOutput"]["totalCount"] == 0


async def test_step_types_env_workdir_and_expected_exit_codes_reach_the_engine(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    remote = f"/tmp/opsc-exec-{uuid.uuid4().hex[:8]}.txt"
    steps = [
        {
            "name": "script",
            "type": "script",
            "script": {
                "interpreter": "bash",
                "body": 'echo "arg=$1 env=$GREETING pwd=$(pwd)"; exit 3',
                "arguments": ["x y"],
            },
            "env": [{"name": "GREETING", "value": "hola"}],
            "workingDirectory": "/tmp",
            "expectedExitCodes": [0, 3],
        },
        {
            "name": "upload",
            "type": "file_transfer",
            "transfer": {
                "direction": "upload",
                "destination": remote,
                "content": "uploaded-text\n",
                "mode": "0600",
            },
        },
        {
            "name": "download",
            "type": "file_transfer",
            "transfer": {"direction": "download", "source": remote, "destination": "copy"},
        },
        {"name": "cleanup", "command": f"rm -f {remote}"},
    ]
    body = await gql(
        platform.url("jobs"),
        """mutation($input: CreateJobInput!) { createJob(input: $input) {
        __typename ... on JobCreated { job { id } } ... on Error { message } } }""",
        {"input": {"name": f"types-{uuid.uuid4().hex[:6]}", "targetIds": targets[:1], "steps": steps}},
        token=admin_token,
    )
    assert body["data"]["createJob"]["__typename"] == "JobCreated", body
    job = body["data"]["createJob"]["job"]["id"]
    started = await run(platform, admin_token, job)
    assert started["__typename"] == "ExecutionStarted", started
    done = await wait_terminal(platform.url("executions"), admin_token, started["execution"]["id"])
    results = done["targetRuns"][0]["steps"]
    assert done["status"] == "SUCCEEDED", done
    assert results[0]["exitCode"] == 3 and results[0]["status"] == "SUCCEEDED"
    assert "arg=x y env=hola pwd=/tmp" in results[0]["stdout"], results[0]
    assert results[2]["stdout"] == "uploaded-text\n", results[2]
    assert [s["name"] for s in done["steps"]] == ["script", "upload", "download", "cleanup"]
