"""What the embedded platform sets up for the process that hosts it."""

from __future__ import annotations

import gc
from typing import Any

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_start_up_heap_is_frozen_out_of_the_collector(platform: Any) -> None:
    from opsconductor_launcher.platform import GC_GEN0_THRESHOLD

    # the schemas, models and Ray state allocated at start-up are not walked by every collection
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
    assert gc.isenabled()
