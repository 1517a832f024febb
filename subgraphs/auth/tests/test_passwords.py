"""Password policy, changePassword (self, needs the current one) and resetPassword (admin)."""

from __future__ import annotations

import itertools

import pytest

from opsconductor_auth.service import PasswordPolicy
from opsconductor_shared.errors import ValidationError
from subgraphs.auth.tests.test_auth_api import PASSWORD, auth_error, create_user, login, login_ok, me
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHANGE = """mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) {
  __typename ... on PasswordChanged { revokedSessions } ... on ValidationFailed { field message }
  ... on Error { message } } }"""
RESET = """mutation($u: ID!, $n: String!) { resetPassword(userId: $u, newPassword: $n) {
  __typename ... on PasswordChanged { revokedSessions } ... on ValidationFailed { field message }
  ... on Error { message } } }"""


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("short1A", False),
        ("alllowercase", False),
        ("lower-and-symbol", True),
        ("Mixed1234", True),
        ("12345678", False),
    ],
)
def test_policy_length_and_character_classes(password: str, ok: bool) -> None:
    policy = PasswordPolicy(min_length=8, min_classes=2, history=5)
    if ok:
        policy.check(password)
    else:
        with pytest.raises(ValidationError) as err:
            policy.check(password)
        assert err.value.field == "password"


async def change(platform: RunningPlatform, token: str, current: str, new: str) -> dict:
    return (await gql(platform.url("auth"), CHANGE, {"c": current, "n": new}, token=token))["data"][
        "changePassword"
    ]


async def test_change_password_needs_the_current_one_and_ends_other_sessions(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = await create_user(platform, admin_token)
    here, elsewhere = await login_ok(platform, user["username"]), await login_ok(platform, user["username"])
    wrong = await change(platform, here["accessToken"], "not-my-password-1", "Brand-new-pass-1")
    assert wrong["__typename"] == "InvalidCredentials"
    weak = await change(platform, here["accessToken"], PASSWORD, "weakweak")
    assert weak == {"__typename": "ValidationFailed", "field": "password", "message": weak["message"]}
    done = await change(platform, here["accessToken"], PASSWORD, "Brand-new-pass-1")
    assert done == {"__typename": "PasswordChanged", "revokedSessions": 1}
    assert "errors" not in await me(platform, here["accessToken"])  # the session that changed it stays
    assert auth_error(await me(platform, elsewhere["accessToken"])) == ("UNAUTHENTICATED", "session revoked")
    assert (await login(platform, user["username"], PASSWORD))["__typename"] == "InvalidCredentials"
    await login_ok(platform, user["username"], "Brand-new-pass-1")


async def test_the_last_five_passwords_cannot_come_back(platform: RunningPlatform, admin_token: str) -> None:
    user = await create_user(platform, admin_token)
    token = (await login_ok(platform, user["username"]))["accessToken"]
    history = [PASSWORD] + [f"Rotation-{i}-pass" for i in range(5)]
    for current, new in itertools.pairwise(history):
        assert (await change(platform, token, current, new))["__typename"] == "PasswordChanged"
    for old in history[-5:]:  # the current one and the four before it
        again = await change(platform, token, history[-1], old)
        assert again["__typename"] == "ValidationFailed" and "last 5" in again["message"], again
    assert (await change(platform, token, history[-1], PASSWORD))["__typename"] == "PasswordChanged"


async def test_reset_password_is_for_admins_and_ends_every_session(
    platform: RunningPlatform, admin_token: str
) -> None:
    user, viewer = (
        await create_user(platform, admin_token),
        await create_user(platform, admin_token, ["viewer"]),
    )
    session = await login_ok(platform, user["username"])
    viewer_token = (await login_ok(platform, viewer["username"]))["accessToken"]
    denied = await gql(
        platform.url("auth"), RESET, {"u": user["id"], "n": "Reset-by-viewer-1"}, token=viewer_token
    )
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await gql(
        platform.url("auth"), RESET, {"u": user["id"], "n": "Reset-by-admin-1"}, token=admin_token
    )
    assert body["data"]["resetPassword"] == {"__typename": "PasswordChanged", "revokedSessions": 1}
    assert auth_error(await me(platform, session["accessToken"])) == ("UNAUTHENTICATED", "session revoked")
    await login_ok(platform, user["username"], "Reset-by-admin-1")
    unknown = await gql(
        platform.url("auth"), RESET, {"u": "nobody", "n": "Reset-by-admin-1"}, token=admin_token
    )
    assert unknown["data"]["resetPassword"]["__typename"] == "NotFound"


async def test_password_argon2_runs_before_the_transaction(
    platform: RunningPlatform, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """changePassword and resetPassword verify (current password, history) and hash the new one in
    threads while no transaction of auth's is open: no row lock, nor SQLite's one connection, is held
    for argon2's ~0.2 s each."""
    from tortoise.backends.base.client import TransactionalDBClient
    from tortoise.connection import get_connections

    from opsconductor_auth.service import hashing

    seen: list[tuple[str, bool]] = []

    def in_transaction() -> bool:
        return isinstance(get_connections().get("auth"), TransactionalDBClient)

    real_verify, real_hash = hashing._verify, hashing.hash_password

    def verify(hashed: str, password: str) -> bool:
        seen.append(("verify", in_transaction()))
        return real_verify(hashed, password)

    def hash_password(password: str) -> str:
        seen.append(("hash", in_transaction()))
        return real_hash(password)

    user = await create_user(platform, admin_token)
    token = (await login_ok(platform, user["username"]))["accessToken"]
    monkeypatch.setattr(hashing, "_verify", verify)
    monkeypatch.setattr(hashing, "hash_password", hash_password)
    assert (await change(platform, token, PASSWORD, "Brand-new-pass-2"))["__typename"] == "PasswordChanged"
    reset = await gql(
        platform.url("auth"), RESET, {"u": user["id"], "n": "Another-pass-3"}, token=admin_token
    )
    assert reset["data"]["resetPassword"]["__typename"] == "PasswordChanged", reset
    assert {kind for kind, _ in seen} == {"verify", "hash"}, seen
    assert not [call for call in seen if call[1]], seen
