"""M6 (security review 2026-12), users side: every users.* snapshot carries the user's `version`,
bumped in the same transaction as the change, and updateRole cannot publish a snapshot computed
from assignments a concurrent setUserRoles is replacing.

Run: ``OPSC_TEST_SERVICES=auth,users .venv/bin/pytest subgraphs/users/tests/test_versions.py -x -q``
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from tortoise.transactions import in_transaction

from opsconductor_shared.db import ServiceDatabase
from opsconductor_users import service
from subgraphs.users.tests.test_roles_profiles import CREATE_ROLE, DELETE_USER, SET_ROLES, UPDATE_ROLE, call
from subgraphs.users.tests.test_users_api import SET_ACTIVE, create_user, unique
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.asyncio(loop_scope="session")

UPDATE_USER = """mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) {
  __typename ... on Error { message } } }"""


def dsn(platform: RunningPlatform) -> str:
    return platform.databases["users"].replace("postgres://", "postgresql://", 1)


async def snapshots(platform: RunningPlatform, user_id: str) -> list[dict[str, Any]]:
    """The users.* events of one user, in the order they were written."""
    conn = await asyncpg.connect(dsn(platform))
    try:
        rows = await conn.fetch(
            "SELECT envelope FROM outbox WHERE envelope->>'subject' = $1 ORDER BY created_at, id", user_id
        )
    finally:
        await conn.close()
    envelopes = [json.loads(r["envelope"]) if isinstance(r["envelope"], str) else r["envelope"] for r in rows]
    return [e for e in envelopes if e["type"].startswith("users.")]


@pytest_asyncio.fixture(loop_scope="session")
async def users_db(platform: RunningPlatform) -> AsyncIterator[ServiceDatabase]:
    """The session's users database (bind it in the test: service functions then run against it)."""
    db = ServiceDatabase(
        service="users",
        url=platform.databases["users"],
        models_module="opsconductor_users.models",
        migrations_module="opsconductor_users.migrations",
    )
    await db.start(migrate=False)
    try:
        yield db
    finally:
        await db.stop()


async def test_m6_every_snapshot_carries_a_version_one_higher(
    platform: RunningPlatform, admin_token: str
) -> None:
    """M6: create, edit, re-role, deactivate, reactivate, a change of a held role, delete: one
    snapshot each, versions 1..7 in order (the payload key auth compares is `version`, an int)."""
    role = unique("r")
    made = await call(
        platform, CREATE_ROLE, {"input": {"name": role, "permissions": ["jobs:read"]}}, admin_token
    )
    assert made["__typename"] == "RoleCreated", made
    person = (await create_user(platform, admin_token, roles=["viewer"]))["user"]
    uid = person["id"]
    steps = [
        (UPDATE_USER, {"id": uid, "input": {"displayName": "Versioned"}}, "UserUpdated"),
        (SET_ROLES, {"id": uid, "roles": ["viewer", role]}, "UserUpdated"),
        (SET_ACTIVE, {"id": uid, "active": False}, "UserUpdated"),
        (SET_ACTIVE, {"id": uid, "active": True}, "UserUpdated"),
        (SET_ACTIVE, {"id": uid, "active": True}, "UserUpdated"),  # no change: no event, no bump
        (UPDATE_ROLE, {"name": role, "input": {"permissions": ["jobs:read", "targets:read"]}}, "RoleUpdated"),
        (DELETE_USER, {"id": uid}, "UserDeleted"),
    ]
    for query, variables, expected in steps:
        answer = await call(platform, query, variables, admin_token)
        assert answer["__typename"] == expected, answer
    events = await snapshots(platform, uid)
    assert [e["type"] for e in events] == [
        "users.user_created",
        "users.user_updated",
        "users.user_roles_changed",
        "users.user_deactivated",
        "users.user_updated",
        "users.user_roles_changed",
        "users.user_deactivated",
    ], events
    assert [e["data"]["version"] for e in events] == [1, 2, 3, 4, 5, 6, 7], events
    assert events[5]["data"]["permissions"] == ["executions:read", "jobs:read", "targets:read"]


async def _lock_waiters(conn: asyncpg.Connection, database: str) -> int:
    found = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", database
    )
    return int(found or 0)


async def test_m6_update_role_waits_for_a_concurrent_set_user_roles(
    platform: RunningPlatform, admin_token: str, users_db: ServiceDatabase
) -> None:
    """M6: setUserRoles takes role R away from U and has not committed yet; meanwhile updateRole
    widens R. Before the fix updateRole read U's old assignment (R still there) and published U
    with R's wider permissions *after* setUserRoles' snapshot, so auth kept the stale, higher
    claims. Now updateRole locks the holders (after setUserRoles' locks) and computes their
    snapshots once it commits: U's newest snapshot has no trace of R."""
    role = unique("r")
    made = await call(
        platform, CREATE_ROLE, {"input": {"name": role, "permissions": ["jobs:read"]}}, admin_token
    )
    assert made["__typename"] == "RoleCreated", made
    uid = (await create_user(platform, admin_token, roles=["viewer", role]))["user"]["id"]

    dropped, release = asyncio.Event(), asyncio.Event()

    async def drop_role() -> None:
        async with in_transaction("users"):
            await service.set_user_roles(user_id=uid, roles=["viewer"], actor=None)
            dropped.set()
            await release.wait()  # hold the transaction open

    async def widen_role() -> None:
        async with in_transaction("users"):
            await service.update_role(
                name=role, description=None, permissions=["jobs:read", "targets:write"], actor=None
            )

    database = dsn(platform).rsplit("/", 1)[1]
    watcher = await asyncpg.connect(dsn(platform))
    with users_db.bind():  # the tasks inherit the binding
        dropper = asyncio.create_task(drop_role())
    widener: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(dropped.wait(), 30)
        with users_db.bind():
            widener = asyncio.create_task(widen_role())
        for _ in range(200):  # until updateRole waits for a lock (or, unfixed, has finished)
            if widener.done() or await _lock_waiters(watcher, database):
                break
            await asyncio.sleep(0.05)
    finally:
        release.set()
        await asyncio.wait_for(asyncio.gather(dropper, *([widener] if widener else [])), 60)
        await watcher.close()

    events = await snapshots(platform, uid)
    newest_written = events[-1]["data"]
    newest_version = max(events, key=lambda e: e["data"].get("version", -1))["data"]
    for data in (newest_written, newest_version):
        assert data["roles"] == ["viewer"], events
        assert "targets:write" not in data["permissions"], events
    versions = [e["data"]["version"] for e in events]
    assert versions == sorted(set(versions)), versions
