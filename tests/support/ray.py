"""One local Ray for the whole test session, bound to 127.0.0.1.

Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is first imported: with "0" every
Ray process listens on the loopback address instead of the machine's external one. So the
variable is set when this plugin is loaded (conftest's `pytest_plugins`), before any test
module imports the engine and with it ray.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

RAY_NUM_CPUS = 2

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """Start Ray in this process once; yields the GCS address ("127.0.0.1:<port>")."""
    import ray
    from ray._private import ray_constants

    if ray_constants.ENABLE_RAY_CLUSTER:
        pytest.fail(
            "ray was imported before tests.support.ray set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, so it "
            "would listen on the external address: list tests.support.ray first in pytest_plugins"
        )
    # address="local": always a fresh cluster of our own, never one a `ray start` left on this machine.
    context = ray.init(
        address="local", num_cpus=RAY_NUM_CPUS, include_dashboard=False, namespace="opsconductor"
    )
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
