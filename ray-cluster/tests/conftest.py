"""Engine test fixtures. The session-wide `sshd` and `ray_session` come from tests/support."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opsconductor_ray.client import EngineClient
from opsconductor_ray.protocol import CredentialRef
from opsconductor_ray.testing import FakeCredentialVault
from tests.support.sshd import SshServer


@pytest.fixture(scope="session")
async def vault(sshd: SshServer) -> AsyncIterator[FakeCredentialVault]:
    # Every grant trusts the test sshd's host key unless a test says otherwise (H3: the pool
    # refuses SSH credentials that come without one).
    server = FakeCredentialVault(known_hosts=sshd.known_hosts)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
async def engine(ray_session: str) -> AsyncIterator[EngineClient]:
    client = EngineClient(num_shards=4)
    await client.connect()
    try:
        yield client
    finally:
        client.shutdown()


@pytest.fixture(scope="session")
def key_ref(vault: FakeCredentialVault, sshd: SshServer) -> CredentialRef:
    """Key login as the test sshd's user."""
    return vault.issue(username=sshd.username, private_key=sshd.private_key_pem)
