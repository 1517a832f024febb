"""API keys: a subset of the owner's permissions, shown once, stored hashed, revocable, usable as Bearer."""

from __future__ import annotations

import hashlib

import pytest

from subgraphs.auth.tests.test_auth_api import create_user, login_ok, rows
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE = """mutation($n: String!, $p: [String!]!, $d: Int!) { createApiKey(name: $n, permissions: $p, expiresInDays: $d) {
  __typename ... on ApiKeyCreated { secret apiKey { id name permissions expiresAt } }
  ... on ValidationFailed { field message } ... on Error { message } } }"""
LIST = "{ apiKeys { id name permissions revokedAt } }"
REVOKE = """mutation($id: ID!) { revokeApiKey(id: $id) { __typename ... on ApiKeyRevoked { apiKey { revokedAt } }
  ... on Error { message } } }"""
USERS = "{ users(first: 1) { totalCount } }"


async def test_an_api_key_carries_only_what_it_was_given(platform: RunningPlatform, admin_token: str) -> None:
    operator = await create_user(platform, admin_token, ["operator"])
    token = (await login_ok(platform, operator["username"]))["accessToken"]
    made = (await gql(platform.url("auth"), CREATE, {"n": "ci", "p": ["users:read"], "d": 30}, token=token))[
        "data"
    ]
    created = made["createApiKey"]
    assert created["__typename"] == "ApiKeyCreated", made
    secret = created["secret"]
    assert created["apiKey"]["permissions"] == ["users:read"]
    # Usable as a bearer token in another subgraph, with exactly the granted permission.
    assert "errors" not in await gql(platform.url("users"), USERS, token=secret)
    write = await gql(
        platform.url("users"),
        """mutation { setUserActive(id: "x", active: true) { __typename } }""",
        token=secret,
    )
    assert write["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Shown once: the list has no secret, and the database holds only its hash.
    listed = (await gql(platform.url("auth"), LIST, token=token))["data"]["apiKeys"]
    assert [k["name"] for k in listed] == ["ci"] and secret not in str(listed)
    stored = await rows(
        platform, "SELECT token_hash FROM api_keys WHERE id = $1::uuid", created["apiKey"]["id"]
    )
    assert stored[0]["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    # An API key cannot mint more keys or manage sessions.
    nested = await gql(platform.url("auth"), CREATE, {"n": "x", "p": ["users:read"], "d": 1}, token=secret)
    assert nested["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Revoked: it stops working at once, everywhere.
    revoked = await gql(platform.url("auth"), REVOKE, {"id": created["apiKey"]["id"]}, token=token)
    assert revoked["data"]["revokeApiKey"]["__typename"] == "ApiKeyRevoked"
    after = await gql(platform.url("users"), USERS, token=secret)
    assert after["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", after


async def test_no_permission_beyond_the_owners(platform: RunningPlatform, admin_token: str) -> None:
    viewer = await create_user(platform, admin_token, ["viewer"])
    token = (await login_ok(platform, viewer["username"]))["accessToken"]
    for permissions, days, field in (
        (["targets:write"], 30, "permissions"),
        ([], 30, "permissions"),
        (["targets:read"], 0, "expiresInDays"),
        (["targets:read"], 999, "expiresInDays"),
    ):
        body = await gql(platform.url("auth"), CREATE, {"n": "k", "p": permissions, "d": days}, token=token)
        result = body["data"]["createApiKey"]
        assert result["__typename"] == "ValidationFailed" and result["field"] == field, (
            permissions,
            days,
            result,
        )


async def test_someone_elses_key_is_not_found(platform: RunningPlatform, admin_token: str) -> None:
    alice, bob = (
        await create_user(platform, admin_token, ["viewer"]),
        await create_user(platform, admin_token),
    )
    a = (await login_ok(platform, alice["username"]))["accessToken"]
    b = (await login_ok(platform, bob["username"]))["accessToken"]
    key = (await gql(platform.url("auth"), CREATE, {"n": "k", "p": ["targets:read"], "d": 1}, token=a))[
        "data"
    ]
    key_id = key["createApiKey"]["apiKey"]["id"]
    body = await gql(platform.url("auth"), REVOKE, {"id": key_id}, token=b)
    assert body["data"]["revokeApiKey"]["__typename"] == "NotFound"
