"""The users subgraph against the real platform (auth + users, PostgreSQL, Redis); no mocks.

Run: ``OPSC_TEST_SERVICES=auth,users .venv/bin/pytest subgraphs/users -x -q``
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest

from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID
from opsconductor_users.service import SYSTEM_ROLES
from tests.support.platform import LOGIN, RunningPlatform, gql, login

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "s3cret-Pass-word"
ROLE_PERMS = {r.name: sorted(r.permissions) for r in SYSTEM_ROLES}

USER_FIELDS = "id username email displayName roles permissions isActive lastLoginAt createdAt"
CREATE = f"""mutation($input: CreateUserInput!) {{ createUser(input: $input) {{
  __typename
  ... on UserCreated {{ user {{ {USER_FIELDS} }} }}
  ... on ValidationFailed {{ field }}
  ... on UsernameTaken {{ username }}
  ... on PermissionDenied {{ permission }}
  ... on Error {{ message }} }} }}"""
SET_ACTIVE = """mutation($id: ID!, $active: Boolean!) { setUserActive(id: $id, active: $active) {
  __typename ... on UserUpdated { user { id isActive } } ... on ValidationFailed { field }
  ... on Error { message } } }"""
USER = f"query($id: ID!) {{ user(id: $id) {{ {USER_FIELDS} }} }}"
ME = "{ me { id } }"


def unique(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def create_user(
    platform: RunningPlatform,
    token: str,
    *,
    username: str | None = None,
    roles: list[str] | None = None,
    email: str | None = None,
    password: str = PASSWORD,
) -> dict[str, Any]:
    username = username or unique()
    body = await gql(
        platform.url("users"),
        CREATE,
        {
            "input": {
                "username": username,
                "email": email or f"{username}@example.com",
                "password": password,
                **({"roles": roles} if roles is not None else {}),
            }
        },
        token=token,
    )
    assert "errors" not in body, body
    return body["data"]["createUser"]


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Events travel outbox -> Redis -> consumer: poll until the effect shows."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def test_bootstrap_admin_exists(platform: RunningPlatform, admin_token: str) -> None:
    body = await gql(platform.url("users"), USER, {"id": BOOTSTRAP_ADMIN_ID}, token=admin_token)
    user = body["data"]["user"]
    assert (user["username"], user["email"], user["roles"], user["permissions"]) == (
        "admin",
        "admin@localhost",
        ["admin"],
        ["*"],
    )


async def test_created_user_logs_in_with_role_permissions(
    platform: RunningPlatform, admin_token: str
) -> None:
    result = await create_user(platform, admin_token, roles=["operator"])
    assert result["__typename"] == "UserCreated", result
    user = result["user"]
    assert user["roles"] == ["operator"]
    assert user["permissions"] == ROLE_PERMS["operator"]
    assert user["isActive"] is True

    token = await login(platform.url("auth"), user["username"], PASSWORD)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == user["id"]
    assert claims["roles"] == ["operator"]
    assert sorted(claims["permissions"]) == ROLE_PERMS["operator"]

    # `me` on auth names the user; the user subgraph resolves it (operator holds users:read).
    me = await gql(platform.url("auth"), ME, token=token)
    assert me["data"]["me"]["id"] == user["id"]
    found = await gql(platform.url("users"), USER, {"id": user["id"]}, token=token)
    assert found["data"]["user"]["username"] == user["username"]
    missing = await gql(platform.url("users"), USER, {"id": str(uuid.uuid4())}, token=token)
    assert missing["data"]["user"] is None

    # auth's login event reaches users and sets lastLoginAt.
    async def logged() -> bool:
        body = await gql(platform.url("users"), USER, {"id": user["id"]}, token=admin_token)
        return body["data"]["user"]["lastLoginAt"] is not None

    await eventually(logged)


async def test_legacy_role_names_are_accepted(platform: RunningPlatform, admin_token: str) -> None:
    result = await create_user(platform, admin_token, roles=["manager", "guest"])
    assert result["__typename"] == "UserCreated", result
    assert result["user"]["roles"] == ["job_manager", "viewer"]
    assert result["user"]["permissions"] == sorted(set(ROLE_PERMS["job_manager"]) | set(ROLE_PERMS["viewer"]))


async def test_duplicate_username_is_taken(platform: RunningPlatform, admin_token: str) -> None:
    name = unique("dup")
    assert (await create_user(platform, admin_token, username=name))["__typename"] == "UserCreated"
    again = await create_user(platform, admin_token, username=name.upper(), email=f"other-{name}@example.com")
    assert again["__typename"] == "UsernameTaken", again
    assert again["username"] == name.upper()
    assert "already taken" in again["message"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"roles": ["superhero"]}, "roles"),
        ({"password": "short"}, "password"),
        ({"username": "x"}, "username"),
    ],
)
async def test_invalid_input_names_the_field(
    platform: RunningPlatform, admin_token: str, overrides: dict[str, Any], field: str
) -> None:
    name = unique()
    variables = {"username": name, "email": f"{name}@example.com", "password": PASSWORD} | overrides
    body = await gql(platform.url("users"), CREATE, {"input": variables}, token=admin_token)
    result = body["data"]["createUser"]
    assert result["__typename"] == "ValidationFailed", result
    assert result["field"] == field
    assert result["message"]


async def test_duplicate_email_is_a_validation_failure(platform: RunningPlatform, admin_token: str) -> None:
    first = await create_user(platform, admin_token)
    again = await create_user(platform, admin_token, email=first["user"]["email"].upper())
    assert (again["__typename"], again["field"]) == ("ValidationFailed", "email")


async def test_viewer_cannot_create_users(platform: RunningPlatform, admin_token: str) -> None:
    viewer = (await create_user(platform, admin_token, roles=["viewer"]))["user"]
    token = await login(platform.url("auth"), viewer["username"], PASSWORD)
    body = await gql(
        platform.url("users"),
        CREATE,
        {"input": {"username": unique(), "email": "x@example.com", "password": PASSWORD}},
        token=token,
    )
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["extensions"]["permission"] == "users:write"
    listing = await gql(platform.url("users"), "{ users { totalCount } }", token=token)
    assert listing["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_no_token_is_unauthenticated(platform: RunningPlatform) -> None:
    for query in ("{ users { totalCount } }", "{ roles { name } }"):
        body = await gql(platform.url("users"), query)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
    entities = await gql(
        platform.url("users"),
        """query($r: [_Any!]!) { _entities(representations: $r) {
      ... on User { username } } }""",
        {"r": [{"__typename": "User", "id": BOOTSTRAP_ADMIN_ID}]},
    )
    assert entities["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", entities


async def test_deactivation_revokes_sessions_and_blocks_login(
    platform: RunningPlatform, admin_token: str
) -> None:
    user = (await create_user(platform, admin_token, roles=["operator"]))["user"]
    token = await login(platform.url("auth"), user["username"], PASSWORD)
    assert (await gql(platform.url("auth"), ME, token=token))["data"]["me"]["id"] == user["id"]

    body = await gql(
        platform.url("users"), SET_ACTIVE, {"id": user["id"], "active": False}, token=admin_token
    )
    assert body["data"]["setUserActive"] == {
        "__typename": "UserUpdated",
        "user": {"id": user["id"], "isActive": False},
    }

    async def revoked() -> bool:
        body = await gql(platform.url("auth"), ME, token=token)
        return bool(body.get("errors"))

    await eventually(revoked)
    body = await gql(platform.url("auth"), ME, token=token)
    assert body["errors"][0]["message"] == "session revoked"
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    answer = await gql(platform.url("auth"), LOGIN, {"u": user["username"], "p": PASSWORD})
    assert answer["data"]["login"]["__typename"] == "AccountDisabled"

    # Reactivation lets them back in.
    body = await gql(platform.url("users"), SET_ACTIVE, {"id": user["id"], "active": True}, token=admin_token)
    assert body["data"]["setUserActive"]["user"]["isActive"] is True

    async def can_login() -> bool:
        answer = await gql(platform.url("auth"), LOGIN, {"u": user["username"], "p": PASSWORD})
        return bool(answer["data"]["login"]["__typename"] == "LoginSuccess")

    await eventually(can_login)


async def test_set_user_active_refusals(platform: RunningPlatform, admin_token: str) -> None:
    body = await gql(
        platform.url("users"), SET_ACTIVE, {"id": BOOTSTRAP_ADMIN_ID, "active": False}, token=admin_token
    )
    assert body["data"]["setUserActive"]["__typename"] == "ValidationFailed"
    assert body["data"]["setUserActive"]["field"] == "id"
    body = await gql(
        platform.url("users"), SET_ACTIVE, {"id": str(uuid.uuid4()), "active": False}, token=admin_token
    )
    assert body["data"]["setUserActive"]["__typename"] == "NotFound"


async def test_paging_and_filters(platform: RunningPlatform, admin_token: str) -> None:
    prefix = unique("pg")
    created = []
    for i, role in enumerate(["viewer", "viewer", "auditor", "viewer", "auditor"]):
        created.append(
            (await create_user(platform, admin_token, username=f"{prefix}_{i}", roles=[role]))["user"]
        )
    await gql(platform.url("users"), SET_ACTIVE, {"id": created[0]["id"], "active": False}, token=admin_token)

    page_query = """query($first: Int, $after: String, $filter: UserFilter) {
      users(first: $first, after: $after, filter: $filter) {
        totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
        edges { cursor node { id username roles isActive } } } }"""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await gql(
            platform.url("users"),
            page_query,
            {"first": 2, "after": after, "filter": {"search": prefix}},
            token=admin_token,
        )
        conn = body["data"]["users"]
        assert conn["totalCount"] == 5
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [e["node"]["username"] for e in conn["edges"]]
        pages += 1
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert pages == 3
    assert seen == [u["username"] for u in created]  # creation order, nothing skipped or repeated

    async def names(filter: dict[str, Any]) -> list[str]:
        body = await gql(
            platform.url("users"),
            page_query,
            {"first": 50, "filter": {"search": prefix, **filter}},
            token=admin_token,
        )
        return [e["node"]["username"] for e in body["data"]["users"]["edges"]]

    assert await names({"role": "auditor"}) == [f"{prefix}_2", f"{prefix}_4"]
    assert await names({"role": "guest"}) == [f"{prefix}_0", f"{prefix}_1", f"{prefix}_3"]  # legacy name
    assert await names({"isActive": False}) == [f"{prefix}_0"]
    assert await names({"role": "viewer", "isActive": True}) == [f"{prefix}_1", f"{prefix}_3"]

    bad = await gql(platform.url("users"), page_query, {"first": 2, "after": "garbage!"}, token=admin_token)
    assert bad["errors"][0]["message"] == "invalid cursor"


async def test_entities_resolve_users_by_id(platform: RunningPlatform, admin_token: str) -> None:
    user = (await create_user(platform, admin_token))["user"]
    body = await gql(
        platform.url("users"),
        """query($r: [_Any!]!) { _entities(representations: $r) {
      ... on User { id username roles } } }""",
        {
            "r": [
                {"__typename": "User", "id": user["id"]},
                {"__typename": "User", "id": BOOTSTRAP_ADMIN_ID},
                {"__typename": "User", "id": str(uuid.uuid4())},
            ]
        },
        token=admin_token,
    )
    assert "errors" not in body, body
    assert body["data"]["_entities"] == [
        {"id": user["id"], "username": user["username"], "roles": ["viewer"]},
        {"id": BOOTSTRAP_ADMIN_ID, "username": "admin", "roles": ["admin"]},
        None,
    ]


async def test_roles_and_catalogue(platform: RunningPlatform, admin_token: str) -> None:
    body = await gql(
        platform.url("users"),
        "{ roles { name permissions isSystem } permissionCatalogue { name } }",
        token=admin_token,
    )
    roles = {r["name"]: r for r in body["data"]["roles"]}
    assert set(roles) >= set(ROLE_PERMS)
    assert sorted(roles["viewer"]["permissions"]) == ROLE_PERMS["viewer"]
    assert all(roles[n]["isSystem"] for n in ROLE_PERMS)
    assert "users:write" in {p["name"] for p in body["data"]["permissionCatalogue"]}


async def test_concurrent_creates_of_one_username(platform: RunningPlatform, admin_token: str) -> None:
    name = unique("race")
    results = await asyncio.gather(
        *(
            create_user(platform, admin_token, username=name, email=f"{name}-{i}@example.com")
            for i in range(3)
        )
    )
    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["UserCreated", "UsernameTaken", "UsernameTaken"], results
    token = await login(platform.url("auth"), name, PASSWORD)
    winner = next(r["user"] for r in results if r["__typename"] == "UserCreated")
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == winner["id"]
