"""The auth subgraph against the real platform (auth + users, PostgreSQL, Redis); no mocks.

Run: ``OPSC_TEST_SERVICES=auth,users .venv/bin/pytest subgraphs/auth -q``

Tests that fail logins, refresh or log out use users of their own (created through the users
subgraph), so the session's admin is never locked out and its token never revoked.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "s3cret-Pass-word"

LOGIN = """mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
  __typename
  ... on LoginSuccess { accessToken refreshToken accessTokenExpiresAt sessionId user { id } }
  ... on AccountLocked { until }
  ... on Error { message } } }"""
REFRESH = """mutation($t: String!) { refreshSession(refreshToken: $t) {
  __typename
  ... on LoginSuccess { accessToken refreshToken sessionId user { id } }
  ... on Error { message } } }"""
LOGOUT = """mutation { logout { __typename ... on LoggedOut { sessionId } ... on Error { message } } }"""
ME = "{ me { id } }"
SET_CREDENTIAL = """mutation($input: SetUserCredentialInput!) { setUserCredential(input: $input) {
  __typename ... on CredentialSet { userId } ... on ValidationFailed { field } ... on Error { message } } }"""
CREATE_USER = """mutation($input: CreateUserInput!) { createUser(input: $input) {
  __typename ... on UserCreated { user { id username roles permissions } } ... on Error { message } } }"""


# ---- helpers ------------------------------------------------------------------------------------


async def create_user(
    platform: RunningPlatform, admin_token: str, roles: list[str] | None = None
) -> dict[str, Any]:
    """A fresh user made the normal way: users stores the profile, auth the password (argon2id)."""
    username = f"auth{uuid.uuid4().hex[:10]}"
    body = await gql(
        platform.url("users"),
        CREATE_USER,
        {
            "input": {
                "username": username,
                "email": f"{username}@example.com",
                "password": PASSWORD,
                **({"roles": roles} if roles is not None else {}),
            }
        },
        token=admin_token,
    )
    result = body["data"]["createUser"]
    assert result["__typename"] == "UserCreated", body
    return dict(result["user"])


async def login(platform: RunningPlatform, username: str, password: str) -> dict[str, Any]:
    body = await gql(platform.url("auth"), LOGIN, {"u": username, "p": password})
    assert "errors" not in body, body
    return dict(body["data"]["login"])


async def login_ok(platform: RunningPlatform, username: str, password: str = PASSWORD) -> dict[str, Any]:
    result = await login(platform, username, password)
    assert result["__typename"] == "LoginSuccess", result
    return result


async def refresh(platform: RunningPlatform, token: str) -> dict[str, Any]:
    body = await gql(platform.url("auth"), REFRESH, {"t": token})
    assert "errors" not in body, body
    return dict(body["data"]["refreshSession"])


async def me(platform: RunningPlatform, token: str) -> dict[str, Any]:
    return await gql(platform.url("auth"), ME, token=token)


def auth_error(body: dict[str, Any]) -> tuple[str, str]:
    assert body.get("data") in (None, {"me": None}) and body.get("errors"), body
    error = body["errors"][0]
    return error["extensions"]["code"], error["message"]


async def jwks(platform: RunningPlatform) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"{platform.base('auth')}/.well-known/jwks.json")
    assert resp.status_code == 200
    return dict(resp.json())


async def verified_claims(platform: RunningPlatform, token: str) -> dict[str, Any]:
    """Decode the way any other service would: RS256 with the key JWKS lists under the token's kid."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    keys = {k["kid"]: k for k in (await jwks(platform))["keys"]}
    assert header["kid"] in keys
    key = jwt.PyJWK.from_dict(keys[header["kid"]])
    return jwt.decode(
        token, key.key, algorithms=["RS256"], audience="opsconductor", issuer="opsconductor-auth"
    )


async def rows(platform: RunningPlatform, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(platform.databases["auth"])
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def service_token(platform: RunningPlatform, payload: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        if isinstance(payload, bytes):
            return await http.post(f"{platform.base('auth')}/internal/service-token", content=payload)
        return await http.post(f"{platform.base('auth')}/internal/service-token", json=payload)


# ---- login and tokens ---------------------------------------------------------------------------


async def test_login_returns_tokens_with_the_documented_claims(platform: RunningPlatform) -> None:
    before = int(time.time())
    result = await login_ok(platform, "admin", platform.admin_password)
    claims = await verified_claims(platform, result["accessToken"])

    assert claims["iss"] == "opsconductor-auth"
    assert claims["aud"] == "opsconductor"
    assert claims["sub"] == BOOTSTRAP_ADMIN_ID == result["user"]["id"]
    assert claims["sid"] == result["sessionId"]
    assert claims["kind"] == "user"
    assert claims["username"] == "admin"
    assert claims["roles"] == ["admin"]
    assert claims["permissions"] == ["*"]
    assert len(claims["jti"]) >= 16
    assert before - 1 <= claims["iat"] <= int(time.time()) + 1
    assert claims["exp"] - claims["iat"] == 15 * 60
    expires = datetime.fromisoformat(result["accessTokenExpiresAt"])
    assert abs(expires.timestamp() - claims["exp"]) < 1
    assert result["refreshToken"] and "." not in result["refreshToken"]  # opaque, not a JWT


async def test_user_claims_follow_the_users_service(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token, roles=["operator"])
    result = await login_ok(platform, user["username"])
    claims = await verified_claims(platform, result["accessToken"])
    assert claims["sub"] == user["id"]
    assert claims["username"] == user["username"]
    assert claims["roles"] == user["roles"] == ["operator"]
    assert sorted(claims["permissions"]) == sorted(user["permissions"])
    assert await me(platform, result["accessToken"]) == {"data": {"me": {"id": user["id"]}}}


async def test_two_logins_are_two_sessions_with_distinct_tokens(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = await create_user(platform, admin_token)
    first, second = await login_ok(platform, user["username"]), await login_ok(platform, user["username"])
    assert first["sessionId"] != second["sessionId"]
    assert first["refreshToken"] != second["refreshToken"]
    a, b = (
        await verified_claims(platform, first["accessToken"]),
        await verified_claims(platform, second["accessToken"]),
    )
    assert a["jti"] != b["jti"]


async def test_jwks_lists_public_keys_only(platform: RunningPlatform) -> None:
    keys = (await jwks(platform))["keys"]
    assert keys
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["kid"]
        assert {"n", "e"} <= key.keys()
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


async def test_wrong_password_and_unknown_user_get_the_identical_answer(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = await create_user(platform, admin_token)
    wrong_password = await gql(platform.url("auth"), LOGIN, {"u": user["username"], "p": "not-the-password"})
    unknown_user = await gql(
        platform.url("auth"), LOGIN, {"u": f"nobody{uuid.uuid4().hex[:8]}", "p": PASSWORD}
    )
    assert wrong_password == unknown_user
    assert wrong_password == {
        "data": {"login": {"__typename": "InvalidCredentials", "message": "invalid username or password"}}
    }


async def test_lockout_after_five_failures_refuses_even_the_right_password(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = await create_user(platform, admin_token)
    for _ in range(5):
        assert (await login(platform, user["username"], "wrong-password"))[
            "__typename"
        ] == "InvalidCredentials"

    locked = await login(platform, user["username"], PASSWORD)
    assert locked["__typename"] == "AccountLocked"
    assert locked["message"] == "account locked after repeated failed logins"
    until = datetime.fromisoformat(locked["until"])
    assert timedelta(minutes=14) < until - datetime.now(UTC) <= timedelta(minutes=15)

    again = await login(platform, user["username"], "wrong-password")
    assert again["__typename"] == "AccountLocked"
    assert again["until"] == locked["until"]  # failures while locked do not extend the lock

    [cred] = await rows(
        platform, "SELECT failed_logins, locked_until FROM credentials WHERE user_id = $1", user["id"]
    )
    assert cred["failed_logins"] == 0
    assert cred["locked_until"] == until


async def test_login_attempts_are_recorded(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    unknown = f"nobody{uuid.uuid4().hex[:8]}"
    await login(platform, user["username"], "wrong-password")
    await login_ok(platform, user["username"])
    await login(platform, unknown, PASSWORD)

    attempts = await rows(
        platform,
        "SELECT username, user_id, success, reason, ip_address, user_agent FROM login_attempts"
        " WHERE username = ANY($1::text[]) ORDER BY id",
        [user["username"], unknown],
    )
    assert [(a["username"], a["user_id"], a["success"], a["reason"]) for a in attempts] == [
        (user["username"], user["id"], False, "bad_password"),
        (user["username"], user["id"], True, "ok"),
        (unknown, None, False, "unknown_user"),
    ]
    assert {a["ip_address"] for a in attempts} == {"127.0.0.1"}
    assert all(a["user_agent"].startswith("python-httpx/") for a in attempts)


# ---- sessions -----------------------------------------------------------------------------------


async def test_refresh_rotates_the_refresh_token(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    first = await login_ok(platform, user["username"])

    second = await refresh(platform, first["refreshToken"])
    assert second["__typename"] == "LoginSuccess"
    assert second["sessionId"] == first["sessionId"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"]
    claims = await verified_claims(platform, second["accessToken"])
    assert claims["sid"] == first["sessionId"]
    assert claims["sub"] == user["id"]

    third = await refresh(platform, second["refreshToken"])  # the new one works
    assert third["__typename"] == "LoginSuccess"
    assert (await me(platform, third["accessToken"]))["data"] == {"me": {"id": user["id"]}}


async def test_reusing_a_rotated_refresh_token_revokes_the_session(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = await create_user(platform, admin_token)
    first = await login_ok(platform, user["username"])
    second = await refresh(platform, first["refreshToken"])
    assert second["__typename"] == "LoginSuccess"
    assert (await me(platform, second["accessToken"]))["data"] == {"me": {"id": user["id"]}}

    reused = await refresh(platform, first["refreshToken"])  # a copy of the old one comes back
    assert reused == {
        "__typename": "InvalidRefreshToken",
        "message": "refresh token reuse detected; the session was revoked",
    }
    for access in (first["accessToken"], second["accessToken"]):
        assert auth_error(await me(platform, access)) == ("UNAUTHENTICATED", "session revoked")
    # The legitimate holder's newest refresh token dies with the session.
    assert await refresh(platform, second["refreshToken"]) == {
        "__typename": "InvalidRefreshToken",
        "message": "session ended",
    }
    [session] = await rows(
        platform,
        "SELECT revoked_at, revoked_reason FROM sessions WHERE id = $1",
        uuid.UUID(first["sessionId"]),
    )
    assert session["revoked_at"] is not None
    assert session["revoked_reason"] == "refresh_token_reuse"


async def test_unknown_refresh_token(platform: RunningPlatform) -> None:
    assert await refresh(platform, "not-a-refresh-token") == {
        "__typename": "InvalidRefreshToken",
        "message": "unknown refresh token",
    }


async def test_logout_stops_the_token_at_once(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    session = await login_ok(platform, user["username"])
    other = await login_ok(platform, user["username"])
    token = session["accessToken"]
    assert (await me(platform, token))["data"] == {"me": {"id": user["id"]}}

    body = await gql(platform.url("auth"), LOGOUT, token=token)
    assert body == {"data": {"logout": {"__typename": "LoggedOut", "sessionId": session["sessionId"]}}}

    assert auth_error(await me(platform, token)) == ("UNAUTHENTICATED", "session revoked")
    assert auth_error(await gql(platform.url("auth"), LOGOUT, token=token))[0] == "UNAUTHENTICATED"
    assert (await refresh(platform, session["refreshToken"]))["__typename"] == "InvalidRefreshToken"
    # Only that session ended: the user's other session still works.
    assert (await me(platform, other["accessToken"]))["data"] == {"me": {"id": user["id"]}}
    # And every other service refuses it too (the revocation list is in Redis, shared by all).
    users_body = await gql(platform.url("users"), "{ roles { name } }", token=token)
    assert auth_error(users_body) == ("UNAUTHENTICATED", "session revoked")


async def test_anonymous_and_forged_callers_are_refused(platform: RunningPlatform) -> None:
    assert auth_error(await gql(platform.url("auth"), ME)) == ("UNAUTHENTICATED", "authentication required")
    assert auth_error(await gql(platform.url("auth"), LOGOUT))[0] == "UNAUTHENTICATED"

    kid = (await jwks(platform))["keys"][0]["kid"]
    now = int(time.time())
    forged = jwt.encode(
        {
            "iss": "opsconductor-auth",
            "aud": "opsconductor",
            "sub": BOOTSTRAP_ADMIN_ID,
            "permissions": ["*"],
            "iat": now,
            "exp": now + 300,
        },
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers={"kid": kid},
    )
    assert auth_error(await me(platform, forged)) == (
        "UNAUTHENTICATED",
        "invalid token: Signature verification failed",
    )


# ---- service tokens and setUserCredential -------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"service": "users", "secret": "wrong-secret"},
        {"service": "nonexistent", "secret": "<right>"},
        {"service": "users"},
        {},
        b"not json",
    ],
    ids=["wrong-secret", "unknown-service", "no-secret", "empty", "not-json"],
)
async def test_service_token_refused(platform: RunningPlatform, payload: Any) -> None:
    if isinstance(payload, dict) and payload.get("secret") == "<right>":
        payload = {**payload, "secret": os.environ["OPSC_SERVICE_SECRET_USERS"]}
    resp = await service_token(platform, payload)
    assert resp.status_code == 401
    assert resp.json() == {"message": "service credentials rejected"}


async def test_service_token_issued(platform: RunningPlatform) -> None:
    resp = await service_token(
        platform, {"service": "users", "secret": os.environ["OPSC_SERVICE_SECRET_USERS"]}
    )
    assert resp.status_code == 200
    body = resp.json()
    claims = await verified_claims(platform, body["token"])
    assert claims["kind"] == "service"
    assert claims["sub"] == "service:users"
    assert claims["permissions"] == ["auth:credentials:write"]
    assert "sid" not in claims
    assert claims["exp"] - claims["iat"] == 600
    assert abs(body["expiresAt"] - claims["exp"]) < 1
    assert await me(platform, body["token"]) == {"data": {"me": None}}  # a service is not a user


async def test_set_user_credential_requires_the_permission(
    platform: RunningPlatform, admin_token: str
) -> None:
    variables = {
        "input": {"userId": str(uuid.uuid4()), "username": f"x{uuid.uuid4().hex[:8]}", "password": PASSWORD}
    }
    user = await create_user(platform, admin_token, roles=["viewer"])
    user_token = (await login_ok(platform, user["username"]))["accessToken"]
    targets = await service_token(
        platform, {"service": "targets", "secret": os.environ["OPSC_SERVICE_SECRET_TARGETS"]}
    )

    for token in (user_token, targets.json()["token"]):
        body = await gql(platform.url("auth"), SET_CREDENTIAL, variables, token=token)
        assert body["data"] is None
        [error] = body["errors"]
        assert error["message"] == "permission 'auth:credentials:write' required"
        assert error["extensions"] == {"code": "FORBIDDEN", "permission": "auth:credentials:write"}

    code, _ = auth_error(await gql(platform.url("auth"), SET_CREDENTIAL, variables))
    assert code == "UNAUTHENTICATED"
    stored = await rows(
        platform, "SELECT 1 FROM credentials WHERE user_id = $1", variables["input"]["userId"]
    )
    assert stored == []


async def test_set_user_credential_as_the_users_service(platform: RunningPlatform) -> None:
    resp = await service_token(
        platform, {"service": "users", "secret": os.environ["OPSC_SERVICE_SECRET_USERS"]}
    )
    token = resp.json()["token"]
    user_id, username = str(uuid.uuid4()), f"svc{uuid.uuid4().hex[:8]}"

    short = {"input": {"userId": user_id, "username": username, "password": "short"}}
    body = await gql(platform.url("auth"), SET_CREDENTIAL, short, token=token)
    assert body["data"]["setUserCredential"] == {
        "__typename": "ValidationFailed",
        "field": "password",
        "message": "password must be at least 8 characters",
    }

    good = {"input": {"userId": user_id, "username": username, "password": PASSWORD, "roles": ["viewer"]}}
    body = await gql(platform.url("auth"), SET_CREDENTIAL, good, token=token)
    assert body["data"]["setUserCredential"] == {"__typename": "CredentialSet", "userId": user_id}
    claims = await verified_claims(platform, (await login_ok(platform, username))["accessToken"])
    assert (claims["sub"], claims["roles"]) == (user_id, ["viewer"])


async def test_password_hashes_are_argon2id(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    stored = await rows(
        platform,
        "SELECT user_id, password_hash FROM credentials WHERE user_id = ANY($1::text[])",
        [user["id"], BOOTSTRAP_ADMIN_ID],
    )
    assert len(stored) == 2
    hashes = {r["user_id"]: r["password_hash"] for r in stored}
    assert hashes[user["id"]].startswith("$argon2id$")
    assert hashes[BOOTSTRAP_ADMIN_ID].startswith("$argon2id$")
    assert PASSWORD not in hashes[user["id"]]
    assert platform.admin_password not in hashes[BOOTSTRAP_ADMIN_ID]
    # Nothing else in auth's database holds the password either.
    attempts = await rows(platform, "SELECT * FROM login_attempts WHERE username = $1", user["username"])
    assert all(PASSWORD not in str(dict(a)) for a in attempts)
