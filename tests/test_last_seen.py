"""`User.lastSeenAt` through the router: the users subgraph owns User, auth adds the last activity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.platform import RunningPlatform, gql, login

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "Last-seen-Pass-1"
USER = "query($id: ID!) { user(id: $id) { id username lastSeenAt lastLoginAt } }"


async def _create(router: Any, admin_token: str, roles: list[str]) -> dict[str, Any]:
    name = f"seen{uuid.uuid4().hex[:8]}"
    body = await gql(
        router.url,
        """mutation($i: CreateUserInput!) { createUser(input: $i) {
          __typename ... on UserCreated { user { id username } } ... on Error { message } } }""",
        {"i": {"username": name, "email": f"{name}@example.com", "password": PASSWORD, "roles": roles}},
        token=admin_token,
    )
    assert body["data"]["createUser"]["__typename"] == "UserCreated", body
    return body["data"]["createUser"]["user"]


async def test_last_seen_at_is_federated_from_auth(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    user = await _create(router, admin_token, ["viewer"])
    never = await gql(router.url, USER, {"id": user["id"]}, token=admin_token)
    assert never["data"]["user"]["lastSeenAt"] is None, never

    token = await login(router.url, user["username"], PASSWORD)
    seen = await gql(router.url, USER, {"id": user["id"]}, token=admin_token)
    assert not seen.get("errors"), seen
    at = datetime.fromisoformat(seen["data"]["user"]["lastSeenAt"])
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=5)

    # Yourself through `me`; another user's only with users:read (a viewer has none).
    me = await gql(router.url, "{ me { id lastSeenAt } }", token=token)
    assert me["data"]["me"]["lastSeenAt"], me
    other = await _create(router, admin_token, ["viewer"])
    await login(router.url, other["username"], PASSWORD)
    peek = await gql(
        router.url, "query($id: ID!) { user(id: $id) { id lastSeenAt } }", {"id": other["id"]}, token=token
    )
    codes = [e.get("extensions", {}).get("code") for e in peek.get("errors") or []]
    assert "FORBIDDEN" in codes or not (peek.get("data") or {}).get("user"), peek
    assert not ((peek.get("data") or {}).get("user") or {}).get("lastSeenAt"), peek
