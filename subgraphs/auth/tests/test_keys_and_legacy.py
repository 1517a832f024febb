"""Signing-key rotation (the `opsconductor rotate-signing-key` function) and legacy bcrypt hashes.

Run: ``OPSC_TEST_SERVICES=auth,users .venv/bin/pytest subgraphs/auth -q``
"""

from __future__ import annotations

import asyncio
import json

import bcrypt
import jwt
import pytest

from opsconductor_auth.commands import rotate_signing_key
from opsconductor_auth.service import check_importable_hash
from opsconductor_shared.errors import ValidationError
from subgraphs.auth.tests.test_auth_api import create_user, jwks, login, login_ok, rows
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

ME_USER = "{ me { id } }"
USERS_ME = "query($id: ID!) { user(id: $id) { id } }"


async def test_rotation_keeps_old_tokens_valid_and_new_logins_use_the_new_key(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = await create_user(platform, admin_token, roles=["operator"])
    before = (await login_ok(platform, user["username"]))["accessToken"]
    old_kid = jwt.get_unverified_header(before)["kid"]
    # A key superseded long ago with no live API key: the next rotation must retire it.
    await rows(
        platform,
        "INSERT INTO signing_keys (kid, private_key_encrypted, public_jwk, created_at, active, superseded_at)"
        " VALUES ('k-ancient', 'x', $1::jsonb, now() - interval '2 days', true, now() - interval '2 days')",
        json.dumps({"kid": "k-ancient", "kty": "RSA", "n": "AQAB", "e": "AQAB"}),
    )
    assert "k-ancient" in {k["kid"] for k in (await jwks(platform))["keys"]}

    result = await rotate_signing_key()

    assert result.kid != old_kid
    assert result.retired == ["k-ancient"]
    listed = {k["kid"] for k in (await jwks(platform))["keys"]}
    assert {old_kid, result.kid} <= listed
    assert "k-ancient" not in listed
    erased = await rows(platform, "SELECT private_key_encrypted FROM signing_keys WHERE kid = 'k-ancient'")
    assert erased[0]["private_key_encrypted"] == ""
    # The token signed with the previous key still works, in auth and in another subgraph.
    assert (await gql(platform.url("auth"), ME_USER, token=before))["data"]["me"]["id"] == user["id"]
    seen = await gql(platform.url("users"), USERS_ME, {"id": user["id"]}, token=before)
    assert seen["data"]["user"]["id"] == user["id"], seen
    # A new login is signed with the new key, and other subgraphs accept it (JWKS refetched on a new kid).
    after = (await login_ok(platform, user["username"]))["accessToken"]
    assert jwt.get_unverified_header(after)["kid"] == result.kid

    # Every subgraph (auth's own verifier too) refetches JWKS on an unknown kid, at most every 30 s (PyJWKClient's cooldown):
    # a subgraph that fetched just before the rotation accepts the new key within that bound.
    async def accepted() -> bool:
        seen = await gql(platform.url("users"), USERS_ME, {"id": user["id"]}, token=after)
        mine = await gql(platform.url("auth"), ME_USER, token=after)
        return (
            (seen.get("data") or {}).get("user") == (mine.get("data") or {}).get("me") == {"id": user["id"]}
        )

    deadline = asyncio.get_running_loop().time() + 60
    while not await accepted():
        assert asyncio.get_running_loop().time() < deadline, "users never accepted the new key"
        await asyncio.sleep(1)


async def test_legacy_bcrypt_hash_logs_in_and_is_rehashed_to_argon2id(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = await create_user(platform, admin_token)
    legacy = bcrypt.hashpw(b"admin123-legacy", bcrypt.gensalt(rounds=4)).decode()
    assert legacy.startswith("$2b$")
    await rows(platform, "UPDATE credentials SET password_hash = $1 WHERE user_id = $2", legacy, user["id"])

    wrong = await login(platform, user["username"], "not-the-password")
    assert wrong["__typename"] == "InvalidCredentials"
    stored = await rows(platform, "SELECT password_hash FROM credentials WHERE user_id = $1", user["id"])
    assert stored[0]["password_hash"] == legacy  # a failed login changes nothing

    await login_ok(platform, user["username"], "admin123-legacy")
    stored = await rows(platform, "SELECT password_hash FROM credentials WHERE user_id = $1", user["id"])
    assert stored[0]["password_hash"].startswith("$argon2id$")
    await login_ok(platform, user["username"], "admin123-legacy")  # the argon2id hash verifies too


def test_only_bcrypt_and_argon2id_hashes_are_importable() -> None:
    good = bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=4)).decode()
    assert check_importable_hash(good) == good
    for bad in ("5f4dcc3b5aa765d61d8327deb882cf99", "$2b$12$short", "$1$md5crypt$abc"):
        with pytest.raises(ValidationError) as err:
            check_importable_hash(bad)
        assert err.value.field == "passwordHash"


ATTEMPTS = """query($first: Int, $after: String, $u: String) {
  loginAttempts(first: $first, after: $after, username: $u) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { username user { id } success reason ipAddress userAgent at } } } }"""


async def test_login_attempts_query_needs_audit_read_and_pages_newest_first(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = await create_user(platform, admin_token)
    await login(platform, user["username"], "wrong-password")
    await login_ok(platform, user["username"])
    auditor = await create_user(platform, admin_token, roles=["auditor"])
    auditor_token = (await login_ok(platform, auditor["username"]))["accessToken"]

    first = await gql(
        platform.url("auth"), ATTEMPTS, {"first": 1, "u": user["username"]}, token=auditor_token
    )
    page = first["data"]["loginAttempts"]
    assert page["totalCount"] == 2
    assert page["pageInfo"]["hasNextPage"] is True
    newest = page["edges"][0]["node"]
    assert (newest["success"], newest["reason"], newest["user"]) == (True, "ok", {"id": user["id"]})
    assert newest["ipAddress"] == "127.0.0.1"
    assert newest["userAgent"].startswith("python-httpx/")
    rest = await gql(
        platform.url("auth"),
        ATTEMPTS,
        {"first": 5, "after": page["pageInfo"]["endCursor"], "u": user["username"]},
        token=auditor_token,
    )
    older = rest["data"]["loginAttempts"]
    assert [e["node"]["reason"] for e in older["edges"]] == ["bad_password"]
    assert older["pageInfo"]["hasNextPage"] is False

    operator = await create_user(platform, admin_token, roles=["operator"])
    operator_token = (await login_ok(platform, operator["username"]))["accessToken"]
    denied = await gql(platform.url("auth"), ATTEMPTS, {"u": user["username"]}, token=operator_token)
    assert denied["data"] is None
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN", denied
