"""Every root operation of the supergraph, under every system role and anonymously, through the real
router: denied exactly when the caller lacks the permission the field declares.

Generated from the live schema (router/supergraph.graphql for the operations and their argument
types, each subgraph's code for the declared permissions, the users service's `roles` query for
what each role holds), so an operation added tomorrow is covered without touching this file.
Dummy arguments are valid by type (random ids), so allowed calls end in NotFound/validation
answers, which count as "not denied". Operations that end the caller's session (logout,
revokeAllSessions...) are followed by a fresh login; an unexpected UNAUTHENTICATED for a logged-in
caller is retried once with a fresh token, so one operation never poisons the rest.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from tests.support.access import (
    OWNERS,
    SYSTEM_ROLES,
    declared_permissions,
    denial,
    holds,
    operation_document,
    role_login,
    role_users,
    subscription_denial,
    supergraph,
)
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Operations that end (or may end) the caller's own session: the next operation gets a new token.
SESSION_ENDING = re.compile(r"logout|revoke.*Session|changePassword|setUserActive|resetPassword", re.I)
ANONYMOUS = "anonymous"


@dataclass
class Matrix:
    operations: dict[str, tuple[str | None, ...]]  # "Mutation.createUser" -> declared permissions
    outcomes: dict[tuple[str, str], str | None]  # (caller, operation) -> denial or None (allowed)
    mismatches: list[str]


async def _matrix(router: Any, platform: RunningPlatform, admin_token: str) -> Matrix:
    schema = supergraph()
    declared = declared_permissions()
    roles_body = await gql(router.url, "{ roles { name permissions } }", token=admin_token)
    role_perms = {r["name"]: frozenset(r["permissions"]) for r in roles_body["data"]["roles"]}
    assert set(SYSTEM_ROLES) <= set(role_perms), roles_body
    usernames = await role_users(platform, admin_token)

    operations = []
    for root_type in (schema.query_type, schema.mutation_type, schema.subscription_type):
        for name, field in (root_type.fields if root_type else {}).items():
            if name in ("_entities", "_service"):
                continue
            key = f"{root_type.name}.{name}"
            assert key in declared, f"{key} is served by the router but no subgraph's code has it"
            if not OWNERS[key] <= set(platform.databases):
                continue  # its subgraph is not started (OPSC_TEST_SERVICES)
            operations.append((root_type.name, name, field, declared[key]))
    assert len(operations) > 10, operations

    mismatches: list[str] = []
    outcomes: dict[tuple[str, str], str | None] = {}

    async def call(
        root: str, name: str, doc: str, variables: dict[str, Any], tok: str | None
    ) -> tuple[str | None, Any]:
        if root == "Subscription":
            return await subscription_denial(router.ws_url, doc, variables, tok), None
        body = await gql(router.url, doc, variables, token=tok)
        return denial(body, name), body

    async def run_caller(caller: str) -> None:
        perms = None if caller == ANONYMOUS else role_perms[caller]
        token = None if caller == ANONYMOUS else await role_login(platform, usernames[caller])
        for root, name, field, required in operations:
            doc, variables = operation_document(root, name, field)

            denied, body = await call(root, name, doc, variables, token)
            if denied and denied.startswith("UNAUTHENTICATED") and token is not None:
                token = await role_login(platform, usernames[caller])  # an earlier op ended it
                denied, body = await call(root, name, doc, variables, token)
            outcomes[(caller, f"{root}.{name}")] = denied
            expected_allowed = holds(perms, required)
            if expected_allowed == bool(denied):
                mismatches.append(
                    f"{caller} {root}.{name} (needs {required}): "
                    f"{'denied: ' + str(denied) if denied else 'allowed'}; body={body}"
                )
            if token is not None and SESSION_ENDING.search(name):
                token = await role_login(platform, usernames[caller])

    await asyncio.wait_for(asyncio.gather(*(run_caller(c) for c in (*SYSTEM_ROLES, ANONYMOUS))), 240)
    return Matrix(
        operations={f"{r}.{n}": req for r, n, _, req in operations}, outcomes=outcomes, mismatches=mismatches
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def matrix(router: Any, platform: RunningPlatform, admin_token: str) -> Matrix:
    return await _matrix(router, platform, admin_token)


async def test_every_operation_is_allowed_exactly_for_roles_holding_its_permission(matrix: Matrix) -> None:
    total = len(matrix.outcomes)
    assert not matrix.mismatches, f"{len(matrix.mismatches)} of {total} calls disagree:\n" + "\n".join(
        matrix.mismatches
    )


async def test_the_matrix_sees_both_answers(matrix: Matrix) -> None:
    """Anchors: the detector must see a denial and an allowance where the catalogue says so."""
    assert ("viewer", "Mutation.createUser") in matrix.outcomes, "the users subgraph must run"
    assert matrix.outcomes[("viewer", "Mutation.createUser")], "a viewer created a user"
    assert matrix.outcomes[("admin", "Mutation.createUser")] is None
    assert matrix.outcomes[(ANONYMOUS, "Query.me")], "anonymous read `me`"
    assert matrix.outcomes[(ANONYMOUS, "Mutation.login")] is None
    assert matrix.outcomes[("operator", "Query.userSessions")], "an operator read someone's sessions"
    denied = sum(1 for d in matrix.outcomes.values() if d)
    assert 0 < denied < len(matrix.outcomes)


async def test_a_viewer_is_denied_every_mutation_that_needs_a_permission(matrix: Matrix) -> None:
    """Issue 3 §5 "a viewer calling each mutation": every mutation beyond Public/Authenticated ones
    (login, logout, own sessions, own API keys) is refused for the read-only role."""
    guarded = [
        op
        for op, required in matrix.operations.items()
        if op.startswith("Mutation.") and any(p not in (None, "authenticated") for p in required)
    ]
    assert "Mutation.createUser" in guarded, guarded
    allowed = [op for op in guarded if not matrix.outcomes[("viewer", op)]]
    assert not allowed, f"a viewer may run {allowed}"
