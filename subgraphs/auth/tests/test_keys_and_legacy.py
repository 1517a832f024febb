"""Signing-key rotation (the `opsconductor rotate-signing-key` function) and legacy bcrypt hashes.

Run: ``OPSC_TEST_SERVICES=auth,users .venv/bin/pytest subgraphs/auth -q``
"""

from __future__ import annotations

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
    seen = await gql(platform.url("users"), USERS_ME, {"id": user["id"]}, token=after)
    assert seen["data"]["user"]["id"] == user["id"], seen


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
