"""Custom roles, role assignment, profiles and soft delete against the real platform (auth + users).

Run: ``OPSC_TEST_SERVICES=auth,users .venv/bin/pytest subgraphs/users -x -q``
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID
from subgraphs.users.tests.test_users_api import PASSWORD, create_user, eventually, unique
from tests.support.platform import LOGIN, RunningPlatform, gql, login

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE_ROLE = """mutation($input: CreateRoleInput!) { createRole(input: $input) { __typename
  ... on RoleCreated { role { name description permissions isSystem } }
  ... on ValidationFailed { field } ... on PermissionDenied { permission } ... on Error { message } } }"""
UPDATE_ROLE = """mutation($name: String!, $input: UpdateRoleInput!) { updateRole(name: $name, input: $input) {
  __typename ... on RoleUpdated { role { name description permissions } }
  ... on SystemRoleProtected { name } ... on ValidationFailed { field } ... on Error { message } } }"""
DELETE_ROLE = """mutation($name: String!) { deleteRole(name: $name) { __typename
  ... on RoleDeleted { name } ... on RoleInUse { name userCount } ... on SystemRoleProtected { name }
  ... on Error { message } } }"""
SET_ROLES = """mutation($id: ID!, $roles: [String!]!) { setUserRoles(userId: $id, roles: $roles) {
  __typename ... on UserUpdated { user { id roles permissions } } ... on ValidationFailed { field }
  ... on PermissionDenied { permission } ... on Error { message } } }"""
REFRESH = """mutation($t: String!) { refreshSession(refreshToken: $t) { __typename
  ... on LoginSuccess { accessToken refreshToken } ... on Error { message } } }"""


async def call(platform: RunningPlatform, query: str, variables: dict[str, Any], token: str) -> Any:
    body = await gql(platform.url("users"), query, variables, token=token)
    assert "errors" not in body, body
    return next(iter(body["data"].values()))


async def full_login(platform: RunningPlatform, username: str, password: str = PASSWORD) -> dict[str, Any]:
    body = await gql(platform.url("auth"), LOGIN, {"u": username, "p": password})
    result = body["data"]["login"]
    assert result["__typename"] == "LoginSuccess", body
    return dict(result)


def perms_of(token: str) -> list[str]:
    return list(jwt.decode(token, options={"verify_signature": False})["permissions"])


async def test_custom_role_lifecycle_and_refreshed_token_carries_new_permissions(
    platform: RunningPlatform, admin_token: str
) -> None:
    name = unique("r")
    created = await call(
        platform,
        CREATE_ROLE,
        {"input": {"name": name, "description": "readers", "permissions": ["jobs:read", "jobs:read"]}},
        admin_token,
    )
    assert created["__typename"] == "RoleCreated", created
    assert created["role"] == {
        "name": name,
        "description": "readers",
        "permissions": ["jobs:read"],
        "isSystem": False,
    }

    made = await create_user(platform, admin_token, roles=[name])
    assert made["__typename"] == "UserCreated", made
    username = made["user"]["username"]
    session = await full_login(platform, username)
    assert perms_of(session["accessToken"]) == ["jobs:read"]

    updated = await call(
        platform,
        UPDATE_ROLE,
        {"name": name, "input": {"permissions": ["jobs:read", "targets:read"]}},
        admin_token,
    )
    assert updated["__typename"] == "RoleUpdated", updated
    assert updated["role"]["permissions"] == ["jobs:read", "targets:read"]
    assert updated["role"]["description"] == "readers"

    state = {"refresh": session["refreshToken"], "perms": []}

    async def refreshed() -> bool:
        body = await gql(platform.url("auth"), REFRESH, {"t": state["refresh"]})
        result = body["data"]["refreshSession"]
        assert result["__typename"] == "LoginSuccess", body
        state["refresh"] = result["refreshToken"]
        state["perms"] = perms_of(result["accessToken"])
        return state["perms"] == ["jobs:read", "targets:read"]

    await eventually(refreshed)

    in_use = await call(platform, DELETE_ROLE, {"name": name}, admin_token)
    assert (in_use["__typename"], in_use["name"], in_use["userCount"]) == ("RoleInUse", name, 1), in_use
    moved = await call(platform, SET_ROLES, {"id": made["user"]["id"], "roles": ["guest"]}, admin_token)
    assert moved["__typename"] == "UserUpdated", moved
    assert moved["user"]["roles"] == ["viewer"]
    deleted = await call(platform, DELETE_ROLE, {"name": name}, admin_token)
    assert (deleted["__typename"], deleted["name"]) == ("RoleDeleted", name), deleted
    gone = await call(platform, DELETE_ROLE, {"name": name}, admin_token)
    assert gone["__typename"] == "NotFound"


async def test_role_validation_and_system_roles(platform: RunningPlatform, admin_token: str) -> None:
    bad = await call(
        platform,
        CREATE_ROLE,
        {"input": {"name": unique("r"), "permissions": ["jobs:read", "nukes:launch", "*"]}},
        admin_token,
    )
    assert bad["__typename"] == "ValidationFailed" and bad["field"] == "permissions", bad
    assert "nukes:launch" in bad["message"] and "*" in bad["message"]
    for name in ("admin", "Bad Name", "manager"):
        dup = await call(platform, CREATE_ROLE, {"input": {"name": name, "permissions": []}}, admin_token)
        assert dup["__typename"] == "ValidationFailed" and dup["field"] == "name", (name, dup)
    for name in ("viewer", "administrator"):
        changed = await call(
            platform, UPDATE_ROLE, {"name": name, "input": {"description": "x"}}, admin_token
        )
        assert changed["__typename"] == "SystemRoleProtected", changed
        gone = await call(platform, DELETE_ROLE, {"name": name}, admin_token)
        assert gone["__typename"] == "SystemRoleProtected", gone
    unknown = await call(platform, UPDATE_ROLE, {"name": unique("r"), "input": {}}, admin_token)
    assert unknown["__typename"] == "NotFound"


async def test_operator_cannot_write_roles(platform: RunningPlatform, admin_token: str) -> None:
    made = await create_user(platform, admin_token, roles=["operator"])
    token = await login(platform.url("auth"), made["user"]["username"], PASSWORD)
    for query, variables in (
        (CREATE_ROLE, {"input": {"name": unique("r"), "permissions": []}}),
        (SET_ROLES, {"id": made["user"]["id"], "roles": ["admin"]}),
        (DELETE_ROLE, {"name": "viewer"}),
    ):
        body = await gql(platform.url("users"), query, variables, token=token)
        assert body.get("data") is None or next(iter(body["data"].values())) is None, body
        assert body["errors"], body


async def test_set_user_roles_validates_and_protects_last_admin(
    platform: RunningPlatform, admin_token: str
) -> None:
    made = await create_user(platform, admin_token, roles=["viewer"])
    uid = made["user"]["id"]
    empty = await call(platform, SET_ROLES, {"id": uid, "roles": []}, admin_token)
    assert empty["__typename"] == "ValidationFailed" and empty["field"] == "roles"
    bogus = await call(platform, SET_ROLES, {"id": uid, "roles": ["nope"]}, admin_token)
    assert bogus["__typename"] == "ValidationFailed" and bogus["field"] == "roles"
    missing = await call(platform, SET_ROLES, {"id": "nobody", "roles": ["viewer"]}, admin_token)
    assert missing["__typename"] == "NotFound"
    changed = await call(platform, SET_ROLES, {"id": uid, "roles": ["manager", "auditor"]}, admin_token)
    assert changed["__typename"] == "UserUpdated", changed
    assert changed["user"]["roles"] == ["job_manager", "auditor"]
    assert "audit:read" in changed["user"]["permissions"]

    # Other tests may have made admins: demote them, so the bootstrap admin is the last one.
    await demote_other_admins(platform, admin_token)
    demote = await call(platform, SET_ROLES, {"id": BOOTSTRAP_ADMIN_ID, "roles": ["viewer"]}, admin_token)
    assert demote["__typename"] == "ValidationFailed" and demote["field"] == "roles", demote
    kept = await call(
        platform, SET_ROLES, {"id": BOOTSTRAP_ADMIN_ID, "roles": ["admin", "viewer"]}, admin_token
    )
    assert kept["__typename"] == "UserUpdated" and kept["user"]["roles"] == ["admin", "viewer"], kept
    back = await call(platform, SET_ROLES, {"id": BOOTSTRAP_ADMIN_ID, "roles": ["admin"]}, admin_token)
    assert back["__typename"] == "UserUpdated" and back["user"]["roles"] == ["admin"], back


ADMINS = """{ users(first: 200, filter: {role: "admin", isActive: true}) { edges { node { id } } } }"""


async def demote_other_admins(platform: RunningPlatform, admin_token: str) -> None:
    body = await gql(platform.url("users"), ADMINS, token=admin_token)
    for edge in body["data"]["users"]["edges"]:
        if edge["node"]["id"] != BOOTSTRAP_ADMIN_ID:
            done = await call(
                platform, SET_ROLES, {"id": edge["node"]["id"], "roles": ["viewer"]}, admin_token
            )
            assert done["__typename"] == "UserUpdated", done


PROFILE = "id email displayName department timezone"
UPDATE_USER = f"""mutation($id: ID!, $input: UpdateUserInput!) {{ updateUser(id: $id, input: $input) {{
  __typename ... on UserUpdated {{ user {{ {PROFILE} }} }} ... on ValidationFailed {{ field }}
  ... on Error {{ message }} }} }}"""
UPDATE_ME = f"""mutation($input: UpdateUserInput!) {{ updateMyProfile(input: $input) {{
  __typename ... on UserUpdated {{ user {{ {PROFILE} }} }} ... on ValidationFailed {{ field }}
  ... on Error {{ message }} }} }}"""
BY_DEPARTMENT = f"""query($d: String!) {{ users(first: 200, filter: {{department: $d}}) {{
  totalCount edges {{ node {{ {PROFILE} }} }} }} }}"""


async def test_update_user_profile_and_filter_by_department(
    platform: RunningPlatform, admin_token: str
) -> None:
    made = await create_user(platform, admin_token)
    uid = made["user"]["id"]
    fresh = await gql(
        platform.url("users"),
        f"query($id: ID!) {{ user(id: $id) {{ {PROFILE} }} }}",
        {"id": uid},
        token=admin_token,
    )
    assert fresh["data"]["user"]["timezone"] == "UTC" and fresh["data"]["user"]["department"] is None
    dept = unique("Dept-")
    email = f"{unique('m')}@Example.com"
    done = await call(
        platform,
        UPDATE_USER,
        {
            "id": uid,
            "input": {
                "email": email,
                "displayName": " New Name ",
                "department": dept,
                "timezone": "Europe/Berlin",
            },
        },
        admin_token,
    )
    assert done["__typename"] == "UserUpdated", done
    assert done["user"] == {
        "id": uid,
        "email": email.lower(),
        "displayName": "New Name",
        "department": dept,
        "timezone": "Europe/Berlin",
    }
    listed = await gql(platform.url("users"), BY_DEPARTMENT, {"d": dept.upper()}, token=admin_token)
    assert listed["data"]["users"]["totalCount"] == 1, listed
    assert listed["data"]["users"]["edges"][0]["node"]["id"] == uid

    for field, value in (
        ("timezone", "Mars/Olympus"),
        ("timezone", "Europe"),
        ("email", "not-an-email"),
        ("displayName", " "),
    ):
        bad = await call(platform, UPDATE_USER, {"id": uid, "input": {field: value}}, admin_token)
        assert bad["__typename"] == "ValidationFailed" and bad["field"] == field, (field, bad)
    taken = await call(platform, UPDATE_USER, {"id": uid, "input": {"email": "admin@localhost"}}, admin_token)
    assert taken["__typename"] == "ValidationFailed" and taken["field"] == "email", taken
    cleared = await call(platform, UPDATE_USER, {"id": uid, "input": {"department": None}}, admin_token)
    assert cleared["user"]["department"] is None and cleared["user"]["timezone"] == "Europe/Berlin", cleared
    missing = await call(platform, UPDATE_USER, {"id": "nobody", "input": {"timezone": "UTC"}}, admin_token)
    assert missing["__typename"] == "NotFound"


async def test_update_my_profile_changes_only_the_caller(platform: RunningPlatform, admin_token: str) -> None:
    me = await create_user(platform, admin_token, roles=["viewer"])
    other = await create_user(platform, admin_token, roles=["viewer"])
    token = await login(platform.url("auth"), me["user"]["username"], PASSWORD)
    done = await call(
        platform, UPDATE_ME, {"input": {"timezone": "America/New_York", "department": "Ops"}}, token
    )
    assert done["__typename"] == "UserUpdated", done
    assert done["user"]["id"] == me["user"]["id"] and done["user"]["timezone"] == "America/New_York"
    # A viewer has no users:write: updateUser on somebody else is refused.
    body = await gql(
        platform.url("users"),
        UPDATE_USER,
        {"id": other["user"]["id"], "input": {"department": "x"}},
        token=token,
    )
    assert body["errors"], body
    anonymous = await gql(platform.url("users"), UPDATE_ME, {"input": {"department": "x"}})
    assert anonymous["errors"], anonymous


DELETE_USER = """mutation($id: ID!) { deleteUser(id: $id) { __typename ... on UserDeleted { id }
  ... on ValidationFailed { field } ... on Error { message } } }"""
ME = "{ me { id } }"
BY_SEARCH = """query($s: String!) { users(first: 10, filter: {search: $s}) { totalCount } }"""


async def test_delete_user_hides_them_and_revokes_sessions(
    platform: RunningPlatform, admin_token: str
) -> None:
    victim = (await create_user(platform, admin_token, roles=["operator"]))["user"]
    token = await login(platform.url("auth"), victim["username"], PASSWORD)
    assert (await gql(platform.url("auth"), ME, token=token))["data"]["me"]["id"] == victim["id"]

    done = await call(platform, DELETE_USER, {"id": victim["id"]}, admin_token)
    assert done == {"__typename": "UserDeleted", "id": victim["id"]}, done

    looked = await gql(
        platform.url("users"),
        "query($id: ID!) { user(id: $id) { id } }",
        {"id": victim["id"]},
        token=admin_token,
    )
    assert looked["data"]["user"] is None
    listed = await gql(platform.url("users"), BY_SEARCH, {"s": victim["username"]}, token=admin_token)
    assert listed["data"]["users"]["totalCount"] == 0

    async def revoked() -> bool:
        return bool((await gql(platform.url("auth"), ME, token=token)).get("errors"))

    await eventually(revoked)
    answer = await gql(platform.url("auth"), LOGIN, {"u": victim["username"], "p": PASSWORD})
    assert answer["data"]["login"]["__typename"] != "LoginSuccess", answer

    again = await call(platform, DELETE_USER, {"id": victim["id"]}, admin_token)
    assert again["__typename"] == "NotFound"
    for query, variables in (
        (UPDATE_USER, {"id": victim["id"], "input": {"timezone": "UTC"}}),
        (SET_ROLES, {"id": victim["id"], "roles": ["viewer"]}),
    ):
        assert (await call(platform, query, variables, admin_token))["__typename"] == "NotFound"


async def test_delete_user_refuses_self_and_last_admin(platform: RunningPlatform, admin_token: str) -> None:
    selfie = await call(platform, DELETE_USER, {"id": BOOTSTRAP_ADMIN_ID}, admin_token)
    assert selfie["__typename"] == "ValidationFailed" and "own" in selfie["message"], selfie

    # A non-admin user manager (custom role with users:write) tries to delete the last admin.
    role = unique("r")
    made_role = await call(
        platform,
        CREATE_ROLE,
        {"input": {"name": role, "permissions": ["users:read", "users:write"]}},
        admin_token,
    )
    assert made_role["__typename"] == "RoleCreated", made_role
    manager = (await create_user(platform, admin_token, roles=[role]))["user"]
    token = await login(platform.url("auth"), manager["username"], PASSWORD)
    await demote_other_admins(platform, admin_token)
    # H6: a manager without `*` may not delete an admin at all (the last-admin rule stays behind it:
    # an admin deleting another admin means two active admins).
    last = await call(platform, DELETE_USER, {"id": BOOTSTRAP_ADMIN_ID}, token)
    assert last["__typename"] == "PermissionDenied" and "'*'" in last["message"], last
    assert (await gql(platform.url("auth"), ME, token=admin_token))["data"]["me"]["id"] == BOOTSTRAP_ADMIN_ID
