"""Security review 2026-12 (auth): M7 refresh rotation under concurrency, M15 locked-account timing,
H4 the API key status endpoint every service asks."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from typing import Any

import httpx
import pytest

from subgraphs.auth.tests.test_auth_api import LOGIN, REFRESH, create_user, login, login_ok, me
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_m7_of_concurrent_refreshes_with_one_token_exactly_one_wins(
    platform: RunningPlatform, admin_token: str
) -> None:
    """M7 (PostgreSQL): the rotation claims the token with one conditional UPDATE; the others are
    the reuse they are (the session ends), never a second live chain."""
    user = await create_user(platform, admin_token)
    for _ in range(3):  # a few rounds: a race that only sometimes interleaves must never win twice
        session = await login_ok(platform, user["username"])
        answers = await asyncio.gather(
            *(gql(platform.url("auth"), REFRESH, {"t": session["refreshToken"]}) for _ in range(4))
        )
        kinds = sorted(a["data"]["refreshSession"]["__typename"] for a in answers)
        assert kinds == ["InvalidRefreshToken"] * 3 + ["LoginSuccess"], answers


async def test_m15_a_locked_account_verifies_a_hash_like_an_unknown_name(
    platform: RunningPlatform, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M15: once locked, a real account and an unknown name both answer AccountLocked after exactly
    one password-hash verification each (before the fix the real one answered before any hash:
    ~0.2 s faster, which told the name exists)."""
    from opsconductor_auth.service import hashing

    verified: list[str] = []
    lock = threading.Lock()
    real = hashing._verify

    def counting(hashed: str, password: str) -> bool:
        with lock:
            verified.append(password)
        return real(hashed, password)

    user = await create_user(platform, admin_token)
    ghost = f"ghost{uuid.uuid4().hex[:10]}"
    for name in (user["username"], ghost):
        for attempt in range(5):
            await login(platform, name, f"Wrong-{attempt}-pass")
    monkeypatch.setattr(hashing, "_verify", counting)
    answers: dict[str, tuple[Any, int]] = {}
    for name in (user["username"], ghost):
        probe = f"Probe-{uuid.uuid4().hex[:8]}"
        result = await login(platform, name, probe)
        answers[name] = (result["__typename"], verified.count(probe))
    assert answers[user["username"]] == ("AccountLocked", 1), answers
    assert answers[ghost] == ("AccountLocked", 1), answers


async def test_h4_the_api_key_status_answers_only_for_the_real_token(
    platform: RunningPlatform, admin_token: str
) -> None:
    """H4: what every service asks auth (cached a few seconds) before accepting an API key."""
    user = await create_user(platform, admin_token, roles=["viewer"])
    token = (await login_ok(platform, user["username"]))["accessToken"]
    made = await gql(
        platform.url("auth"),
        """mutation { createApiKey(name: "h4", permissions: ["targets:read"], expiresInDays: 1) {
          ... on ApiKeyCreated { secret apiKey { id } } } }""",
        token=token,
    )
    key = made["data"]["createApiKey"]
    digest = hashlib.sha256(key["secret"].encode()).hexdigest()

    async def status(payload: Any) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.post(f"{platform.base('auth')}/internal/api-key-status", json=payload)

    assert (await status({"id": key["apiKey"]["id"], "tokenHash": digest})).json() == {"active": True}
    assert (await status({"id": key["apiKey"]["id"], "tokenHash": "0" * 64})).json() == {"active": False}
    assert (await status({"id": "apikey:nonsense", "tokenHash": digest})).json() == {"active": False}
    assert (await status({"id": key["apiKey"]["id"]})).status_code == 400
    assert (await status(["not", "an", "object"])).status_code == 400
    # The owner deactivated: no key of theirs is valid any more, whatever the revocation list says.
    deactivated = await gql(
        platform.url("users"),
        """mutation($id: ID!) { setUserActive(id: $id, active: false) { __typename } }""",
        {"id": user["id"]},
        token=admin_token,
    )
    assert "errors" not in deactivated, deactivated
    for _ in range(100):
        if (await status({"id": key["apiKey"]["id"], "tokenHash": digest})).json() == {"active": False}:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the key stayed active after its owner was deactivated")
    assert (await me(platform, key["secret"]))["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_m1_login_still_answers_the_same_after_the_two_step_check(platform: RunningPlatform) -> None:
    """M1: the password check moved before the transaction; wrong, unknown and right answer as before."""
    body = await gql(platform.url("auth"), LOGIN, {"u": "admin", "p": "not-the-password-1"})
    assert body["data"]["login"]["__typename"] == "InvalidCredentials"
    body = await gql(platform.url("auth"), LOGIN, {"u": f"nobody{uuid.uuid4().hex[:6]}", "p": "x"})
    assert body["data"]["login"]["__typename"] == "InvalidCredentials"
    assert (await login_ok(platform, "admin", platform.admin_password))["accessToken"]
