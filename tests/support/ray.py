"""One local Ray for the whole test session, bound to 127.0.0.1.

Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is first imported: with "0" every Ray
process listens on the loopback address instead of the machine's external one. The
variable is set in `pytest_configure`, before test modules (which import the engine, and
so ray) are collected.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

RAY_NUM_CPUS = 2


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """Start Ray in this process once; yields the GCS address ("127.0.0.1:<port>")."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    context = ray.init(num_cpus=RAY_NUM_CPUS, include_dashboard=False, namespace="opsconductor")
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()
