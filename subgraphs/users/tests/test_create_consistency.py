"""createUser when auth cannot store the password: nothing is kept in the users database.

A second users service runs on its own fresh PostgreSQL database and its own in-process bus, with
``auth_url`` pointing at a port nobody listens on (its service token still comes from the real
auth, so the failure is exactly the setUserCredential call).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
import uvicorn

from opsconductor_shared.app import Platform
from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID, InMemoryRevocationStore
from opsconductor_shared.events import InProcessBroadcaster, InProcessEventBus
from opsconductor_users.app import create_app
from opsconductor_users.settings import Settings
from tests.support.platform import RunningPlatform, create_database, drop_database, free_port, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def users_without_auth(
    platform: RunningPlatform, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[str, str]]:
    database = await create_database("opsc_test_users_noauth")
    settings = Settings(
        port=free_port(),
        database_url=database,
        auth_url=f"http://127.0.0.1:{free_port()}/graphql",
        data_dir=tmp_path_factory.mktemp("users-noauth"),
    )
    own = Platform(
        bus=InProcessEventBus(), broadcaster=InProcessBroadcaster(), revocations=InMemoryRevocationStore()
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, own),
            host="127.0.0.1",
            port=settings.port,
            lifespan="on",
            log_config=None,
            access_log=False,
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{settings.port}/graphql", database
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
        await drop_database(database)


async def test_user_is_not_kept_when_auth_is_unreachable(
    users_without_auth: tuple[str, str], admin_token: str
) -> None:
    url, database = users_without_auth
    name = f"na{uuid.uuid4().hex[:8]}"
    body = await gql(
        url,
        """mutation($input: CreateUserInput!) { createUser(input: $input) {
      __typename } }""",
        {"input": {"username": name, "email": f"{name}@example.com", "password": "long-enough-1"}},
        token=admin_token,
    )
    assert body["data"] is None
    assert body["errors"][0]["message"].startswith(
        "user not created: the auth service did not store the password"
    )
    assert body["errors"][0]["extensions"]["code"] == "DEPENDENCY_UNAVAILABLE"
    listing = await gql(
        url,
        """query($s: String) { users(filter: {search: $s}) {
      totalCount } }""",
        {"s": name},
        token=admin_token,
    )
    assert listing["data"]["users"]["totalCount"] == 0
    conn = await asyncpg.connect(database.replace("postgres://", "postgresql://", 1))
    try:
        rows = await conn.fetch("SELECT envelope FROM outbox")
        users = await conn.fetchval("SELECT count(*) FROM users")
    finally:
        await conn.close()
    assert users == 1  # the bootstrap admin only
    envelopes = [json.loads(r["envelope"]) for r in rows]
    domain = [e for e in envelopes if e["type"] != "users.mutation"]  # the attempt's audit record stays
    assert [e["subject"] for e in domain] == [BOOTSTRAP_ADMIN_ID]  # no event leaked
    (attempt,) = [e for e in envelopes if e["type"] == "users.mutation"]
    assert attempt["data"]["operation"] == "createUser" and attempt["data"]["outcome"] == "FAILURE"
