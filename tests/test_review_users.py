"""Security review 2026-12, users area, through the real router (and the users subgraph directly
where the attack would skip the router).

H6: nobody resets the password of, (de)activates, deletes, edits or re-roles a user holding a
permission they do not hold, nor changes a role such a user holds.
M10: `_entities` on `User` answers as the root fields do: yourself, others only with `users:read`,
never a soft-deleted user; the router's own entity fetches (`me`, `mySessions.user`) keep working.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID
from tests.support.platform import RunningPlatform, gql, login

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "Review-Pass-1"

CREATE_ROLE = """mutation($i: CreateRoleInput!) { createRole(input: $i) { __typename
  ... on Error { message } } }"""
CREATE_USER = """mutation($i: CreateUserInput!) { createUser(input: $i) { __typename
  ... on UserCreated { user { id username } } ... on Error { message } } }"""
RESET = """mutation($id: ID!, $p: String!) { resetPassword(userId: $id, newPassword: $p) { __typename
  ... on PermissionDenied { permission } ... on Error { message } } }"""
SET_ACTIVE = """mutation($id: ID!, $a: Boolean!) { setUserActive(id: $id, active: $a) { __typename
  ... on UserUpdated { user { isActive } } ... on PermissionDenied { permission } ... on Error { message } } }"""
DELETE = """mutation($id: ID!) { deleteUser(id: $id) { __typename
  ... on PermissionDenied { permission } ... on Error { message } } }"""
UPDATE = """mutation($id: ID!, $i: UpdateUserInput!) { updateUser(id: $id, input: $i) { __typename
  ... on UserUpdated { user { email } } ... on PermissionDenied { permission } ... on Error { message } } }"""
SET_ROLES = """mutation($id: ID!, $r: [String!]!) { setUserRoles(userId: $id, roles: $r) { __typename
  ... on UserUpdated { user { roles } } ... on PermissionDenied { permission } ... on Error { message } } }"""
UPDATE_ROLE = """mutation($n: String!, $i: UpdateRoleInput!) { updateRole(name: $n, input: $i) { __typename
  ... on RoleUpdated { role { permissions } } ... on PermissionDenied { permission } ... on Error { message } } }"""
USER = "query($id: ID!) { user(id: $id) { id email roles isActive } }"
ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on User { id username email permissions } } }"""


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


async def ok(url: str, query: str, variables: dict[str, Any], token: str | None) -> Any:
    """The one root field's answer, without an error union's `message` (asserted on by shape)."""
    body = await gql(url, query, variables, token=token)
    assert "errors" not in body, body
    answer = next(iter(body["data"].values()))
    if isinstance(answer, dict) and "permission" in answer:
        answer.pop("message", None)
    return answer


async def role(router: Any, admin: str, permissions: list[str]) -> str:
    name = unique("rv")
    made = await ok(router.url, CREATE_ROLE, {"i": {"name": name, "permissions": permissions}}, admin)
    assert made["__typename"] == "RoleCreated", made
    return name


async def user(router: Any, admin: str, roles: list[str]) -> dict[str, str]:
    name = unique("rv")
    made = await ok(
        router.url,
        CREATE_USER,
        {"i": {"username": name, "email": f"{name}@example.com", "password": PASSWORD, "roles": roles}},
        admin,
    )
    assert made["__typename"] == "UserCreated", made
    return dict(made["user"])


async def beyond(router: Any, admin: str, role_name: str, held: list[str]) -> set[str]:
    """The permissions of ``role_name`` that a holder of ``held`` lacks. The service names the
    first it finds; which one is first depends on the catalogue, so tests accept any of them."""
    body = await ok(router.url, "{ roles { name permissions } }", {}, admin)
    perms = next(r["permissions"] for r in body if r["name"] == role_name)
    return {p for p in perms if p not in held}


async def token_of(platform: RunningPlatform, person: dict[str, str]) -> str:
    return await login(platform.url("auth"), person["username"], PASSWORD)


# ---- H6 ----------------------------------------------------------------------------------------


async def test_h6_helpdesk_cannot_reset_the_admin_password(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """H6, the review's test: custom role helpdesk = [users:write]; its holder resets the admin's
    password -> PermissionDenied, and the admin's password still works; a user whose permissions the
    helpdesk holds can still be reset."""
    helpdesk = await role(router, admin_token, ["users:write"])
    h = await token_of(platform, await user(router, admin_token, [helpdesk]))

    denied = await ok(router.url, RESET, {"id": BOOTSTRAP_ADMIN_ID, "p": "Taken-Over-99"}, h)
    assert denied == {"__typename": "PermissionDenied", "permission": "*"}, denied
    await login(platform.url("auth"), "admin", platform.admin_password)  # unchanged

    peer = await user(router, admin_token, [helpdesk])
    done = await ok(router.url, RESET, {"id": peer["id"], "p": "Peer-New-Pass-1"}, h)
    assert done["__typename"] == "PasswordChanged", done
    await login(platform.url("auth"), peer["username"], "Peer-New-Pass-1")


async def test_h6_users_write_cannot_deactivate_delete_or_edit_a_more_privileged_user(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """H6: setUserActive / deleteUser / updateUser on an operator by a [users:write, users:read]
    holder are refused with PermissionDenied and change nothing; on a peer they work."""
    helpdesk = await role(router, admin_token, ["users:write", "users:read"])
    h = await token_of(platform, await user(router, admin_token, [helpdesk]))
    victim = await user(router, admin_token, ["operator"])
    admin2 = await user(router, admin_token, ["admin"])

    lacking = await beyond(router, admin_token, "operator", ["users:write", "users:read"])
    assert lacking, "an operator must hold something the helpdesk role does not"
    for target, missing in ((victim, lacking), (admin2, {"*"})):
        tid = {"id": target["id"]}
        answers = [
            await ok(router.url, SET_ACTIVE, {**tid, "a": False}, h),
            await ok(router.url, UPDATE, {**tid, "i": {"email": f"pwn{uuid.uuid4().hex[:6]}@evil.test"}}, h),
            await ok(router.url, DELETE, tid, h),
        ]
        assert all(a["__typename"] == "PermissionDenied" and a["permission"] in missing for a in answers), (
            answers
        )
        now = await ok(router.url, USER, tid, admin_token)
        assert now is not None and now["isActive"] is True, now
        assert now["email"] == f"{target['username']}@example.com", now

    peer = await user(router, admin_token, [helpdesk])
    assert (await ok(router.url, SET_ACTIVE, {"id": peer["id"], "a": False}, h))[
        "__typename"
    ] == "UserUpdated"
    assert (await ok(router.url, DELETE, {"id": peer["id"]}, h))["__typename"] == "UserDeleted"


async def test_h6_roles_write_cannot_demote_a_more_privileged_user(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """H6: a roles:write holder who may grant `viewer` still cannot setUserRoles on a second admin or
    an operator (it would strip rights it does not hold); on a viewer it can."""
    keeper_role = await role(
        router, admin_token, ["roles:write", "roles:read", "targets:read", "jobs:read", "executions:read"]
    )
    k = await token_of(platform, await user(router, admin_token, [keeper_role]))
    admin2 = await user(router, admin_token, ["admin"])
    operator = await user(router, admin_token, ["operator"])
    for target in (admin2, operator):
        answer = await ok(router.url, SET_ROLES, {"id": target["id"], "r": ["viewer"]}, k)
        assert answer["__typename"] == "PermissionDenied", answer
        still = await ok(router.url, USER, {"id": target["id"]}, admin_token)
        assert still["roles"] != ["viewer"], still

    reader = await user(router, admin_token, [await role(router, admin_token, ["jobs:read"])])
    answer = await ok(router.url, SET_ROLES, {"id": reader["id"], "r": ["viewer"]}, k)
    assert answer == {"__typename": "UserUpdated", "user": {"roles": ["viewer"]}}, answer
    # creating/assigning: nobody grants more than they hold (already in place, still true)
    answer = await ok(router.url, SET_ROLES, {"id": reader["id"], "r": ["operator"]}, k)
    held = ["roles:write", "roles:read", "targets:read", "jobs:read", "executions:read"]
    assert answer["__typename"] == "PermissionDenied", answer
    assert answer["permission"] in await beyond(router, admin_token, "operator", held), answer
    too_much = await gql(
        router.url, CREATE_ROLE, {"i": {"name": unique("rv"), "permissions": ["users:write"]}}, token=k
    )
    assert too_much["data"]["createRole"]["__typename"] == "PermissionDenied", too_much


async def test_h6_update_role_held_by_a_more_privileged_user_is_refused(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """H6: changing the permissions of a role that a more privileged user holds is refused (within
    what the caller may grant); a role only peers hold can still be changed."""
    keeper_role = await role(router, admin_token, ["roles:write", "jobs:read", "targets:read"])
    k = await token_of(platform, await user(router, admin_token, [keeper_role]))
    shared = await role(router, admin_token, ["jobs:read"])
    await user(router, admin_token, ["operator", shared])

    answer = await ok(router.url, UPDATE_ROLE, {"n": shared, "i": {"permissions": ["targets:read"]}}, k)
    assert answer["__typename"] == "PermissionDenied", answer
    answer = await ok(router.url, UPDATE_ROLE, {"n": shared, "i": {"description": "just words"}}, k)
    assert answer["__typename"] == "RoleUpdated", answer  # no rights change: allowed

    small = await role(router, admin_token, ["jobs:read"])
    await user(router, admin_token, [small])
    answer = await ok(router.url, UPDATE_ROLE, {"n": small, "i": {"permissions": ["targets:read"]}}, k)
    assert answer == {"__typename": "RoleUpdated", "role": {"permissions": ["targets:read"]}}, answer


# ---- M10 ---------------------------------------------------------------------------------------


async def test_m10_viewer_entities_on_the_users_subgraph_expose_no_one_else(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """M10, the review's test: a viewer token POSTed to the users subgraph's `_entities` gets no
    email/permissions of the admin (FORBIDDEN, null); itself it may resolve."""
    viewer = await user(router, admin_token, ["viewer"])
    token = await token_of(platform, viewer)
    body = await gql(
        platform.url("users"),
        ENTITIES,
        {"r": [{"__typename": "User", "id": BOOTSTRAP_ADMIN_ID}, {"__typename": "User", "id": viewer["id"]}]},
        token=token,
    )
    assert body["data"]["_entities"][0] is None, body
    assert "admin@localhost" not in str(body), body
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    assert body["data"]["_entities"][1]["username"] == viewer["username"], body


async def test_m10_soft_deleted_users_do_not_resolve(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """M10: `user(id)` hides a soft-deleted user; `_entities` does too, even for an admin."""
    gone = await user(router, admin_token, ["viewer"])
    assert (await ok(router.url, DELETE, {"id": gone["id"]}, admin_token))["__typename"] == "UserDeleted"
    body = await gql(
        platform.url("users"), ENTITIES, {"r": [{"__typename": "User", "id": gone["id"]}]}, token=admin_token
    )
    assert body == {"data": {"_entities": [None]}}, body


async def test_m10_router_entity_fetches_keep_working(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """M10: the router resolves `me`, `mySessions.user` (the caller itself) through the users
    `_entities` with the caller's token: a viewer still reads its own profile; an auditor (users:read)
    reads other users referenced by auth; a viewer asking for another user's sessions is refused."""
    viewer = await user(router, admin_token, ["viewer"])
    token = await token_of(platform, viewer)
    body = await gql(
        router.url, "{ me { id username email permissions } mySessions { user { username } } }", token=token
    )
    assert "errors" not in body, body
    assert body["data"]["me"]["username"] == viewer["username"]
    assert body["data"]["me"]["permissions"] == ["executions:read", "jobs:read", "targets:read"]
    assert {s["user"]["username"] for s in body["data"]["mySessions"]} == {viewer["username"]}

    auditor = await token_of(platform, await user(router, admin_token, ["auditor"]))
    body = await gql(router.url, USER.replace("roles", "roles username"), {"id": viewer["id"]}, token=auditor)
    assert body["data"]["user"]["username"] == viewer["username"], body
    body = await gql(
        router.url,
        "query($id: ID!) { userSessions(userId: $id) { user { username email } } }",
        {"id": viewer["id"]},
        token=admin_token,
    )
    assert "errors" not in body, body
    assert {s["user"]["email"] for s in body["data"]["userSessions"]} == {f"{viewer['username']}@example.com"}
