"""Schema-driven fuzzing through the router (security review 2026-12, issue item 9).

hypothesis-graphql builds valid queries and mutations from the router's public schema (fetched by
introspection) and sends them with an admin token. Any answer must be a clear one: no HTTP 5xx, no
masked internal error ("Internal server error", "Unexpected error"), no exception text leaking
(Traceback, ORM or driver error names). Deterministic (derandomize) and bounded: a fixed number of
examples per operation and a time budget for the whole run.

Not fuzzed (see EXCLUDED): operations that connect to hosts, run jobs, or would end the admin's own
session or change its password/profile (the session's other tests log in as admin).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from typing import Any

import httpx
import pytest

from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Overridable for a longer local run, e.g. OPSC_FUZZ_EXAMPLES=500 OPSC_FUZZ_ONLY=validateJob,createJob.
EXAMPLES_PER_OPERATION = int(os.environ.get("OPSC_FUZZ_EXAMPLES", "40"))
TIME_BUDGET_SECONDS = float(os.environ.get("OPSC_FUZZ_SECONDS", "80"))
ONLY = {name for name in os.environ.get("OPSC_FUZZ_ONLY", "").split(",") if name}

EXCLUDED: dict[str, str] = {
    # Connect to hosts (SSH/WinRM/probes) or start runs on the engine.
    "testConnection": "connects to the target",
    "testMethodConfig": "connects to the planned host",
    "bulkTestConnections": "connects to targets",
    "checkTargetHealth": "connects to the target",
    "runDueHealthChecks": "connects to targets",
    "acceptHostKey": "may fetch a host key over the network",
    "runJob": "starts a run on the engine (connects to targets)",
    "retryExecution": "starts a run on the engine (connects to targets)",
    # Service-only (L14): would plant claims / issue grants; routed to the auth/targets areas.
    "issueConnectionGrant": "service-only (review L14)",
    "setUserCredential": "service-only (review L14)",
    # Would end or change the admin's own session or account, which the session's other tests use.
    "logout": "ends the fuzzer's session",
    "revokeAllSessions": "ends the fuzzer's sessions",
    "changePassword": "changes the admin's password",
    "updateMyProfile": "changes the admin's profile",
    # Each try is an argon2 verification and counts toward lockouts (M1, L1).
    "login": "argon2 per try; lockout (L1)",
    # Its findings of 2026-12-07 (FUZZ-1..3 in targets, FUZZ-4 in jobs/shared) are fixed and covered
    # again; a new finding is fixed, not excluded.
}

FORBIDDEN_TEXT = (
    "Internal server error",
    "Unexpected error",
    "Traceback",
    'File "',
    "tortoise.",
    "asyncpg",
    "IntegrityError",
    "OperationalError",
    "DBConnectionError",
    "TransactionManagementError",
)


def _custom_scalars() -> dict[str, Any]:
    from graphql import NameNode, ObjectFieldNode
    from hypothesis import strategies as st
    from hypothesis_graphql import nodes

    moments = st.datetimes(
        min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
    )
    json_values = st.one_of(
        st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3).map(
            lambda d: nodes.Object(
                [
                    ObjectFieldNode(name=NameNode(value=_name(k)), value=nodes.String(v))
                    for k, v in d.items()
                    if _name(k)
                ]
            )
        ),
        st.text(max_size=20).map(nodes.String),
        st.integers(-(2**31), 2**31 - 1).map(nodes.Int),
    )
    return {"DateTime": moments.map(lambda d: nodes.String(d.isoformat())), "JSON": json_values}


def _name(key: str) -> str:
    """A GraphQL-safe object field name from arbitrary text ('' when nothing is left)."""
    cleaned = "".join(c for c in key if c.isascii() and (c.isalnum() or c == "_"))
    return cleaned if cleaned and not cleaned[0].isdigit() else ""


def _problems(resp: httpx.Response) -> str | None:
    if resp.status_code >= 500:
        return f"HTTP {resp.status_code}"
    text = resp.text
    for needle in FORBIDDEN_TEXT:
        if needle in text:
            return f"answer contains {needle!r}"
    return None


async def test_fuzz_every_operation_through_the_router(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """Item 9: no operation answers fuzzed valid input with a 5xx, a masked error or leaked exception."""
    from graphql import build_client_schema, get_introspection_query

    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(
            router.url,
            json={"query": get_introspection_query()},
            headers={"authorization": f"Bearer {admin_token}"},
        )
    schema = build_client_schema(resp.json()["data"])
    findings: list[dict[str, Any]] = []
    stats = await asyncio.to_thread(_fuzz, router.url, admin_token, schema, findings)
    print("fuzz:", stats)
    report = json.dumps(findings, indent=1, default=str)
    assert stats["operations"] >= (1 if ONLY else 40), stats
    assert not findings, f"{len(findings)} finding(s) in {stats}:\n{report}"


def _fuzz(url: str, token: str, schema: Any, findings: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs in a worker thread: the subgraphs serve on the test's event loop. Each operation gets
    EXAMPLES_PER_OPERATION examples, within an equal share of what is left of the time budget."""
    from hypothesis_graphql import strategies as gql_st

    started = time.monotonic()
    stats: dict[str, Any] = {"operations": 0, "requests": 0, "cut_short": []}
    scalars = _custom_scalars()
    roots = [("query", name) for name in sorted(schema.query_type.fields)]
    roots += [("mutation", name) for name in sorted(schema.mutation_type.fields)]
    roots = [(k, n) for k, n in roots if n not in EXCLUDED and (not ONLY or n in ONLY)]
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30, headers=headers) as http:
        for index, (kind, field) in enumerate(roots):
            left = TIME_BUDGET_SECONDS - (time.monotonic() - started)
            until = time.monotonic() + max(0.0, left) / (len(roots) - index)
            maker = gql_st.queries if kind == "query" else gql_st.mutations
            strategy = maker(schema, fields=[field], custom_scalars=scalars, allow_x00=False)
            found: list[dict[str, Any]] = []
            sent = stats["requests"]
            _make_run(http, url, field, strategy, found, stats, until)()
            stats["operations"] += 1
            if stats["requests"] - sent < EXAMPLES_PER_OPERATION and not found:
                stats["cut_short"].append(f"{field}:{stats['requests'] - sent}")
            findings.extend(found)
    stats["seconds"] = round(time.monotonic() - started, 1)
    return stats


def _make_run(
    http: httpx.Client,
    url: str,
    field: str,
    strategy: Any,
    found: list[dict[str, Any]],
    stats: dict[str, Any],
    until: float,
) -> Any:
    """One hypothesis run for one root field; records the first problem it sees."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(document=strategy)
    def run(document: str) -> None:
        if found or time.monotonic() > until:
            return
        stats["requests"] += 1
        answer = http.post(url, json={"query": document})
        problem = _problems(answer)
        if problem:
            found.append(
                {"operation": field, "problem": problem, "query": document, "answer": answer.text[:800]}
            )

    return run
