"""What an attacker would try, each asserting the rejection: through the real router and, where a
subgraph could be reached directly, at the subgraphs too (every subgraph verifies on its own).

Covered elsewhere, not repeated here: alg none / HS256 with the public key / tampered payload /
unknown kid at the router (tests/test_router_security.py, whose forgeries are replayed here against
the subgraphs), and "a viewer calling each mutation" (tests/test_access_matrix.py,
test_a_viewer_is_denied_every_mutation_that_needs_a_permission, plus the whole role matrix).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from tests.support.access import ROLE_PASSWORD, create_user, supergraph
from tests.support.platform import LOGIN, RunningPlatform, gql, login
from tests.support.tokens import bad_claim_variants, claims_of, fresh_claims, real_signer, unsigned

pytestmark = pytest.mark.asyncio(loop_scope="session")

DENIAL_CODES = {"UNAUTHENTICATED", "FORBIDDEN"}

# One query per subgraph that an admin-like caller may run (so a refusal is the token's fault).
SUBGRAPH_PROBES = {
    "auth": "{ me { id } }",
    "users": "{ roles { name } }",
    "targets": "{ targets(first: 1) { edges { cursor } } }",
    "jobs": "{ jobs(first: 1) { edges { cursor } } }",
    "executions": "{ executions(first: 1) { edges { cursor } } }",
}
ROUTER_PROBE = "{ me { id } roles { name } }"


async def post(
    url: str, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(url, json={"query": query, "variables": variables or {}}, headers=headers)
    try:
        body = resp.json()
    except ValueError:
        body = {"errors": [{"message": resp.text, "extensions": {"code": f"HTTP {resp.status_code}"}}]}
    return resp.status_code, body


def refused(status: int, body: dict[str, Any]) -> bool:
    """Refused for identity: HTTP 401/403, or a denial code, and no data leaked."""
    codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or []}
    data = body.get("data") or {}
    leaked = any(v not in (None, [], {}) for v in data.values())
    return (status in (401, 403) or bool(codes & DENIAL_CODES)) and not leaked


def accepted(status: int, body: dict[str, Any]) -> bool:
    return status == 200 and not body.get("errors") and bool(body.get("data"))


async def probe_everywhere(router: Any, platform: RunningPlatform, token: str) -> dict[str, tuple[int, Any]]:
    answers = {"router": await post(router.url, ROUTER_PROBE, token=token)}
    for name, query in running_probes(platform).items():
        answers[name] = await post(platform.url(name), query, token=token)
    return answers


def running_probes(platform: RunningPlatform) -> dict[str, str]:
    """The probes of the services this session started (OPSC_TEST_SERVICES may limit them)."""
    return {name: q for name, q in SUBGRAPH_PROBES.items() if name in platform.databases}


def needs(platform: RunningPlatform, *services: str) -> None:
    missing = [s for s in services if s not in platform.databases]
    if missing:
        # Only when a developer narrows the platform with OPSC_TEST_SERVICES; `make test` starts all.
        pytest.skip(f"OPSC_TEST_SERVICES leaves out {missing}")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def admin_user(platform: RunningPlatform, admin_token: str) -> str:
    """A user with the admin role (not the bootstrap admin, whose sessions other tests share)."""
    name = f"sa{uuid.uuid4().hex[:8]}"
    await create_user(platform, admin_token, name, ["admin"])
    return name


# ---- crafted tokens -----------------------------------------------------------------------------


async def test_valid_signature_with_bad_claims_is_refused_everywhere(
    router: Any, platform: RunningPlatform, admin_user: str
) -> None:
    """Signed with auth's real private key, so only the claim checks can refuse them."""
    signer = await real_signer(platform)
    template = claims_of(await login(platform.url("auth"), admin_user, ROLE_PASSWORD))

    control = await probe_everywhere(router, platform, signer.sign(fresh_claims(template)))
    assert all(accepted(*a) for a in control.values()), f"the control token must pass: {control}"

    failures = []
    for variant, claims in bad_claim_variants(template).items():
        for where, answer in (await probe_everywhere(router, platform, signer.sign(claims))).items():
            if not refused(*answer):
                failures.append(f"{variant} accepted at {where}: {answer}")
    assert not failures, "\n".join(failures)


async def test_forged_tokens_are_refused_at_every_subgraph(router: Any, platform: RunningPlatform) -> None:
    """The router refuses them (test_router_security); a caller reaching a subgraph directly must
    meet the same wall."""
    from tests.test_router_security import _forgeries

    forgeries = await _forgeries(router, platform)
    signer = await real_signer(platform)
    template = claims_of(await login(platform.url("auth"), "admin", platform.admin_password))
    # A real signature under a made-up kid, and alg none with the real kid in the header.
    forgeries["real key, unknown kid"] = signer.sign(fresh_claims(template), kid="k-unknown")
    forgeries["alg none, real kid"] = unsigned(dict(fresh_claims(template), permissions=["*"]))
    failures = []
    for name, token in forgeries.items():
        for service, query in running_probes(platform).items():
            answer = await post(platform.url(service), query, token=token)
            if not refused(*answer):
                failures.append(f"{name} accepted by {service}: {answer}")
        if name == "real key, unknown kid":
            answer = await post(router.url, ROUTER_PROBE, token=token)
            if not refused(*answer):
                failures.append(f"{name} accepted by the router: {answer}")
    assert not failures, "\n".join(failures)


# ---- sessions and refresh tokens ----------------------------------------------------------------

LOGOUT = "mutation { logout { __typename } }"
REFRESH = """mutation($t: String!) { refreshSession(refreshToken: $t) {
  __typename ... on LoginSuccess { accessToken refreshToken } ... on Error { message } } }"""


async def login_full(url: str, username: str, password: str) -> dict[str, Any]:
    body = await gql(
        url, LOGIN.replace("user { id }", "sessionId user { id }"), {"u": username, "p": password}
    )
    result = body["data"]["login"]
    assert result["__typename"] == "LoginSuccess", body
    return result


async def test_a_logged_out_sessions_token_is_refused_at_router_and_subgraphs(
    router: Any, platform: RunningPlatform, admin_user: str
) -> None:
    token = await login(router.url, admin_user, ROLE_PASSWORD)
    before = await probe_everywhere(router, platform, token)
    assert all(accepted(*a) for a in before.values()), before
    out = await gql(router.url, LOGOUT, token=token)
    assert out["data"]["logout"]["__typename"] == "LoggedOut", out
    after = await probe_everywhere(router, platform, token)
    assert all(refused(*a) for a in after.values()), after


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_session(
    router: Any, platform: RunningPlatform, admin_user: str
) -> None:
    first = await login_full(router.url, admin_user, ROLE_PASSWORD)
    rotated = (await gql(router.url, REFRESH, {"t": first["refreshToken"]}))["data"]["refreshSession"]
    assert rotated["__typename"] == "LoginSuccess", rotated
    assert rotated["refreshToken"] != first["refreshToken"]
    assert accepted(*await post(router.url, ROUTER_PROBE, token=rotated["accessToken"]))

    # The thief (or the victim) presents the used one: refused, and the session is over.
    reuse = (await gql(router.url, REFRESH, {"t": first["refreshToken"]}))["data"]["refreshSession"]
    assert reuse["__typename"] == "InvalidRefreshToken", reuse
    for token in (first["accessToken"], rotated["accessToken"]):
        answers = await probe_everywhere(router, platform, token)
        assert all(refused(*a) for a in answers.values()), answers
    again = (await gql(router.url, REFRESH, {"t": rotated["refreshToken"]}))["data"]["refreshSession"]
    assert again["__typename"] == "InvalidRefreshToken", again


# ---- brute force --------------------------------------------------------------------------------


def _threshold() -> int:
    from opsconductor_auth.settings import Settings

    return int(Settings().lockout_threshold)


async def _login_answer(url: str, username: str, password: str) -> tuple[str, str | None]:
    body = await gql(url, LOGIN, {"u": username, "p": password})
    result = body["data"]["login"]
    return result["__typename"], result.get("message")


async def test_brute_force_locks_the_account(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    name = f"bf{uuid.uuid4().hex[:8]}"
    await create_user(platform, admin_token, name, ["viewer"])
    ghost = f"ghost{uuid.uuid4().hex[:8]}"
    threshold = _threshold()

    real = [await _login_answer(router.url, name, f"Wrong-guess-{i}") for i in range(threshold)]
    unknown = [await _login_answer(router.url, ghost, f"Wrong-guess-{i}") for i in range(threshold)]
    assert all(t == "InvalidCredentials" for t, _ in real), real
    assert real == unknown, "wrong passwords must not tell an existing user from an unknown one"

    # Locked: even the right password is refused now.
    kind, _ = await _login_answer(router.url, name, ROLE_PASSWORD)
    assert kind == "AccountLocked", kind
    kind, _ = await _login_answer(platform.url("auth"), name, ROLE_PASSWORD)
    assert kind == "AccountLocked", kind


async def test_lockout_answer_does_not_reveal_whether_the_user_exists(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    name = f"bf{uuid.uuid4().hex[:8]}"
    await create_user(platform, admin_token, name, ["viewer"])
    ghost = f"ghost{uuid.uuid4().hex[:8]}"
    for i in range(_threshold()):
        await _login_answer(router.url, name, f"Wrong-guess-{i}")
        await _login_answer(router.url, ghost, f"Wrong-guess-{i}")
    locked = await _login_answer(router.url, name, "Another-guess-1")
    ghosted = await _login_answer(router.url, ghost, "Another-guess-1")
    assert locked[0] == ghosted[0], (locked, ghosted)


# ---- privilege escalation -----------------------------------------------------------------------

ROLE_CHANGING = ("setUserRoles", "assignRoles", "updateUserRoles", "createRole", "updateRole", "deleteRole")


async def test_an_operator_cannot_change_roles_or_grant_admin(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    from tests.support.access import denial, operation_document

    name = f"op{uuid.uuid4().hex[:8]}"
    await create_user(platform, admin_token, name, ["operator"])
    token = await login(router.url, name, ROLE_PASSWORD)

    escalate = await gql(
        router.url,
        """mutation($i: CreateUserInput!) { createUser(input: $i) { __typename } }""",
        {
            "i": {
                "username": f"x{name}",
                "email": f"x{name}@example.com",
                "password": ROLE_PASSWORD,
                "roles": ["admin"],
            }
        },
        token=token,
    )
    assert denial(escalate, "createUser"), escalate

    # Every role-changing mutation the supergraph has (whatever the IAM work named them).
    mutations = supergraph().mutation_type.fields
    present = [m for m in ROLE_CHANGING if m in mutations]
    for mutation in present:
        doc, variables = operation_document("Mutation", mutation, mutations[mutation])
        body = await gql(router.url, doc, variables, token=token)
        assert denial(body, mutation), (mutation, body)

    # An API key cannot carry more than its owner holds.
    key = await gql(
        router.url,
        """mutation { createApiKey(name: "esc", permissions: ["users:write"], expiresInDays: 1) {
          __typename ... on ApiKeyCreated { secret } } }""",
        token=token,
    )
    assert key["data"]["createApiKey"]["__typename"] != "ApiKeyCreated", key
    me = await gql(router.url, "{ me { roles } }", token=token)
    assert me["data"]["me"]["roles"] == ["operator"], me


async def test_a_user_cannot_read_or_end_another_users_sessions(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    victim_name, thief_name = f"v{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    await create_user(platform, admin_token, victim_name, ["operator"])
    await create_user(platform, admin_token, thief_name, ["operator"])
    victim = await login_full(router.url, victim_name, ROLE_PASSWORD)
    victim_id = victim["user"]["id"]
    thief = await login(router.url, thief_name, ROLE_PASSWORD)

    sessions = await gql(
        router.url,
        "query($u: ID!) { userSessions(userId: $u, includeEnded: true) { id ipAddress } }",
        {"u": victim_id},
        token=thief,
    )
    assert sessions.get("errors") and not (sessions.get("data") or {}).get("userSessions"), sessions
    assert sessions["errors"][0]["extensions"]["code"] == "FORBIDDEN", sessions

    revoke_all = await gql(
        router.url,
        "mutation($u: ID) { revokeAllSessions(userId: $u) { __typename } }",
        {"u": victim_id},
        token=thief,
    )
    revoke_one = await gql(
        router.url,
        "mutation($s: ID!) { revokeSession(id: $s) { __typename } }",
        {"s": victim["sessionId"]},
        token=thief,
    )
    assert revoke_all["data"]["revokeAllSessions"]["__typename"] == "PermissionDenied", revoke_all
    assert revoke_one["data"]["revokeSession"]["__typename"] in ("PermissionDenied", "NotFound"), revoke_one
    still = await gql(router.url, "{ me { id } }", token=victim["accessToken"])
    assert still["data"]["me"]["id"] == victim_id, "the victim's session must survive: " + str(still)
    # The admin may (sessions:manage).
    as_admin = await gql(
        router.url,
        "query($u: ID!) { userSessions(userId: $u, includeEnded: false) { id } }",
        {"u": victim_id},
        token=admin_token,
    )
    assert victim["sessionId"] in [s["id"] for s in as_admin["data"]["userSessions"]], as_admin


# ---- subscriptions ------------------------------------------------------------------------------

EVENTS = """subscription($id: ID!) { executionEvents(executionId: $id, afterSeq: 0) { seq type } }"""


async def _ws_open(ws_url: str, token: str | None) -> Any:
    ws = await websockets.connect(
        ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], open_timeout=10
    )
    params = {"authorization": f"Bearer {token}"} if token else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": params}))
    return ws


async def _refusal(ws_url: str, token: str | None) -> str:
    """What a subscription attempt gets: the close code, an error code, or 'ACCEPTED'."""
    try:
        ws = await _ws_open(ws_url, token)
    except websockets.InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    try:
        async with asyncio.timeout(15):
            ack = json.loads(await ws.recv())
            if ack["type"] != "connection_ack":
                return f"init answer {ack['type']}"
            await ws.send(
                json.dumps(
                    {"id": "1", "type": "subscribe", "payload": {"query": EVENTS, "variables": {"id": "x"}}}
                )
            )
            while True:
                msg = json.loads(await ws.recv())
                errors = (
                    msg["payload"] if msg["type"] == "error" else (msg.get("payload") or {}).get("errors")
                )
                codes = {(e.get("extensions") or {}).get("code") for e in errors or []}
                if codes & DENIAL_CODES:
                    return str(sorted(c for c in codes if c))
                statuses = {
                    ((e.get("extensions") or {}).get("http") or {}).get("status") for e in errors or []
                }
                token_refused = any("token" in str(e.get("message", "")).lower() for e in errors or [])
                if statuses & {401, 403} or (statuses & {400} and token_refused):
                    return f"HTTP {sorted(s for s in statuses if s)}"
                if msg["type"] in ("next", "error", "complete"):
                    return f"ACCEPTED {msg}"
    except websockets.ConnectionClosed as closed:
        return f"closed {closed.rcvd.code if closed.rcvd else None}"
    finally:
        await ws.close()


async def test_subscriptions_without_a_valid_token_are_refused(
    router: Any, platform: RunningPlatform
) -> None:
    needs(platform, "executions")
    subgraph_ws = platform.url("executions").replace("http://", "ws://")
    for where, url in (("router", router.ws_url), ("executions subgraph", subgraph_ws)):
        for label, token in (("no token", None), ("garbage token", "not.a.token")):
            answer = await _refusal(url, token)
            assert not answer.startswith("ACCEPTED"), f"{label} at the {where}: {answer}"


async def _slow_execution(router: Any, sshd: Any, admin_token: str) -> str:
    from tests.test_e2e_newcomer import RUN_JOB, create_job, create_ssh_target

    target = await create_ssh_target(
        router.url,
        admin_token,
        name=f"sshd-sec-{uuid.uuid4().hex[:6]}",
        host=sshd.hosts[5],  # its own address: active targets never share a host
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.private_key_pem,
    )
    job = await create_job(
        router.url,
        admin_token,
        [target],
        [{"name": "slow", "command": "for i in $(seq 1 120); do echo tick $i; sleep 0.5; done"}],
        name=f"slow-{uuid.uuid4().hex[:6]}",
    )
    body = await gql(router.url, RUN_JOB, {"id": job}, token=admin_token)
    assert body["data"]["runJob"]["__typename"] == "ExecutionStarted", body
    return str(body["data"]["runJob"]["execution"]["id"])


async def _stream_until_closed(ws: Any, execution_id: str, on_first: Any) -> list[dict[str, Any]]:
    """Subscribe, call ``on_first`` after the first event, return every message until complete/close."""
    ack = json.loads(await asyncio.wait_for(ws.recv(), 15))
    assert ack["type"] == "connection_ack", ack
    await ws.send(
        json.dumps(
            {"id": "1", "type": "subscribe", "payload": {"query": EVENTS, "variables": {"id": execution_id}}}
        )
    )
    seen: list[dict[str, Any]] = []
    fired = False
    try:
        async with asyncio.timeout(45):
            while True:
                msg = json.loads(await ws.recv())
                if msg["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                seen.append(msg)
                if msg["type"] in ("complete", "error"):
                    return seen
                if not fired and msg["type"] == "next" and not msg["payload"].get("errors"):
                    fired = True
                    await on_first()
    except websockets.ConnectionClosed as closed:
        seen.append({"type": "closed", "code": closed.rcvd.code if closed.rcvd else None})
    return seen


async def test_a_subscription_is_closed_when_its_session_is_revoked(
    router: Any, platform: RunningPlatform, sshd: Any, admin_token: str, admin_user: str
) -> None:
    """Revocation mid-stream ends the stream with UNAUTHENTICATED, at the router and at the subgraph,
    long before the slow job (60 s) would have finished it."""
    needs(platform, "targets", "jobs", "executions")
    execution_id = await _slow_execution(router, sshd, admin_token)
    subgraph_ws = platform.url("executions").replace("http://", "ws://")
    try:
        for where, ws_url in (("router", router.ws_url), ("executions subgraph", subgraph_ws)):
            token = await login(router.url, admin_user, ROLE_PASSWORD)

            async def logout(tok: str = token) -> None:
                out = await gql(router.url, LOGOUT, token=tok)
                assert out["data"]["logout"]["__typename"] == "LoggedOut", out

            ws = await _ws_open(ws_url, token)
            try:
                seen = await _stream_until_closed(ws, execution_id, logout)
            finally:
                await ws.close()
            events = [m for m in seen if m["type"] == "next" and not m["payload"].get("errors")]
            finished = any(
                m["payload"]["data"]["executionEvents"]["type"] == "EXECUTION_FINISHED" for m in events
            )
            assert not finished, f"{where}: the stream ran to the end of the job instead of being closed"
            codes = {
                (e.get("extensions") or {}).get("code")
                for m in seen
                for e in (
                    m["payload"] if m["type"] == "error" else (m.get("payload") or {}).get("errors") or []
                )
            }
            closed = seen[-1]["type"] in ("complete", "error", "closed")
            assert closed and "UNAUTHENTICATED" in codes, f"{where}: {seen[-3:]}"
    finally:
        await gql(
            router.url,
            "mutation($id: ID!) { cancelExecution(id: $id) { __typename } }",
            {"id": execution_id},
            token=admin_token,
        )
