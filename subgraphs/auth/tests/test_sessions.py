"""Sessions with the legacy sliding-inactivity semantics: status, extend, list, revoke one or all."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from subgraphs.auth.tests.test_auth_api import PASSWORD, auth_error, create_user, login, login_ok, me
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

STATUS = "{ sessionStatus { sessionId remainingSeconds warning endsAt } }"
EXTEND = """mutation { extendSession { __typename ... on SessionStatus { remainingSeconds endsAt }
  ... on Error { message } } }"""
MINE = (
    "query($all: Boolean!) { mySessions(includeEnded: $all) { id current active revokedReason user { id } } }"
)
THEIRS = "query($u: ID!) { userSessions(userId: $u) { id active } }"
REVOKE = """mutation($id: ID!) { revokeSession(id: $id) { __typename
  ... on SessionRevoked { session { id active revokedReason } } ... on Error { message } } }"""
REVOKE_ALL = """mutation($u: ID) { revokeAllSessions(userId: $u) { __typename
  ... on SessionsRevoked { count } ... on Error { message } } }"""


async def auth(platform: RunningPlatform, query: str, token: str, **variables: Any) -> dict[str, Any]:
    return await gql(platform.url("auth"), query, variables, token=token)


async def test_status_counts_down_and_extend_restarts_it(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    session = await login_ok(platform, user["username"])
    status = (await auth(platform, STATUS, session["accessToken"]))["data"]["sessionStatus"]
    assert status["sessionId"] == session["sessionId"]
    assert 3500 < status["remainingSeconds"] <= 3600  # default idle timeout: 60 minutes
    assert status["warning"] is False
    extended = (await auth(platform, EXTEND, session["accessToken"]))["data"]["extendSession"]
    assert extended["__typename"] == "SessionStatus"
    assert extended["endsAt"] >= status["endsAt"]


async def test_my_sessions_marks_the_current_one(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    first = await login_ok(platform, user["username"])
    second = await login_ok(platform, user["username"])
    sessions = (await auth(platform, MINE, second["accessToken"], all=False))["data"]["mySessions"]
    assert {s["id"] for s in sessions} == {first["sessionId"], second["sessionId"]}
    assert [s["id"] for s in sessions if s["current"]] == [second["sessionId"]]
    assert all(s["user"]["id"] == user["id"] for s in sessions)


async def test_revoking_my_other_session_stops_its_token(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    laptop = await login_ok(platform, user["username"])
    phone = await login_ok(platform, user["username"])
    result = (await auth(platform, REVOKE, laptop["accessToken"], id=phone["sessionId"]))["data"][
        "revokeSession"
    ]
    assert result["__typename"] == "SessionRevoked"
    assert result["session"]["active"] is False and result["session"]["revokedReason"] == "revoked"
    assert auth_error(await me(platform, phone["accessToken"])) == ("UNAUTHENTICATED", "session revoked")
    assert "errors" not in await me(platform, laptop["accessToken"])
    ended = (await auth(platform, MINE, laptop["accessToken"], all=True))["data"]["mySessions"]
    assert {s["id"]: s["active"] for s in ended} == {laptop["sessionId"]: True, phone["sessionId"]: False}


async def test_a_user_cannot_see_or_revoke_another_users_sessions(
    platform: RunningPlatform, admin_token: str
) -> None:
    alice, bob = await create_user(platform, admin_token), await create_user(platform, admin_token)
    a, b = await login_ok(platform, alice["username"]), await login_ok(platform, bob["username"])
    result = (await auth(platform, REVOKE, a["accessToken"], id=b["sessionId"]))["data"]["revokeSession"]
    assert result["__typename"] == "NotFound", result  # not even whether it exists
    assert "errors" not in await me(platform, b["accessToken"])
    theirs = await auth(platform, THEIRS, a["accessToken"], u=bob["id"])
    assert theirs["errors"][0]["extensions"]["code"] == "FORBIDDEN", theirs
    all_of_bob = (await auth(platform, REVOKE_ALL, a["accessToken"], u=bob["id"]))["data"][
        "revokeAllSessions"
    ]
    assert all_of_bob["__typename"] == "PermissionDenied"


async def test_admin_revokes_all_of_a_users_sessions(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    tokens = [(await login_ok(platform, user["username"]))["accessToken"] for _ in range(3)]
    listed = (await auth(platform, THEIRS, admin_token, u=user["id"]))["data"]["userSessions"]
    assert len(listed) == 3 and all(s["active"] for s in listed)
    result = (await auth(platform, REVOKE_ALL, admin_token, u=user["id"]))["data"]["revokeAllSessions"]
    assert result == {"__typename": "SessionsRevoked", "count": 3}
    for token in tokens:
        assert auth_error(await me(platform, token)) == ("UNAUTHENTICATED", "session revoked")


async def test_revoke_all_of_my_own_sessions(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    one, two = await login_ok(platform, user["username"]), await login_ok(platform, user["username"])
    result = (await auth(platform, REVOKE_ALL, one["accessToken"]))["data"]["revokeAllSessions"]
    assert result == {"__typename": "SessionsRevoked", "count": 2}
    for session in (one, two):
        assert auth_error(await me(platform, session["accessToken"])) == (
            "UNAUTHENTICATED",
            "session revoked",
        )


async def test_a_login_racing_a_deactivation_waits_for_it(
    platform: RunningPlatform, admin_token: str
) -> None:
    """A deactivation being applied (its transaction open, the account's row changed, its sessions
    already on the revocation list) holds the credential row: a login that arrives meanwhile waits
    for the commit and is refused, instead of reading the old row and starting a session that the
    deactivation's revoke-all never saw."""
    user = await create_user(platform, admin_token)
    await _user_created_applied(platform, user["id"])  # else it would set isActive back afterwards
    conn = await _connect(platform, "auth")
    try:
        tx = conn.transaction()
        await tx.start()
        changed = await conn.execute(
            "UPDATE credentials SET is_active = false WHERE user_id = $1", user["id"]
        )
        assert changed == "UPDATE 1"
        racing = asyncio.create_task(login(platform, user["username"], PASSWORD))
        await asyncio.sleep(1.0)
        assert not racing.done(), await racing  # it reads the row under the lock, so it waits
        await tx.commit()
        result = await asyncio.wait_for(racing, 30)
    finally:
        await conn.close()
    assert result["__typename"] == "AccountDisabled", result
    listed = (await auth(platform, THEIRS, admin_token, u=user["id"]))["data"]["userSessions"]
    assert listed == []


async def _connect(platform: RunningPlatform, service: str) -> asyncpg.Connection:
    return await asyncpg.connect(platform.databases[service].replace("postgres://", "postgresql://", 1))


async def _user_created_applied(platform: RunningPlatform, user_id: str) -> None:
    """Wait until auth has consumed users' ``users.user_created`` for ``user_id``."""
    users, auth_db = await _connect(platform, "users"), await _connect(platform, "auth")
    try:
        event_id = await users.fetchval(
            "SELECT envelope->>'id' FROM outbox WHERE envelope->>'type' = 'users.user_created'"
            " AND envelope->>'subject' = $1",
            user_id,
        )
        assert event_id is not None
        for _ in range(300):
            if await auth_db.fetchval("SELECT 1 FROM processed_events WHERE event_id = $1", event_id):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("auth never consumed users.user_created")
    finally:
        await users.close()
        await auth_db.close()
