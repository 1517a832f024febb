"""Module-scoped fixtures of the jobPlan / job-definition HTTP tests: a tagged fleet of real targets
and one job over it (a module that defines its own `job` fixture keeps it)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest_asyncio

from subgraphs.jobs.tests.helpers import (
    CREATE_JOB,
    call,
    full_input,
    make_target,
)
from tests.support.platform import RunningPlatform


@pytest_asyncio.fixture(scope="module")
async def fleet(platform: RunningPlatform, admin_token: str) -> dict[str, Any]:
    """One explicit target and a tagged group: two web/production, one web/staging, one windows web."""
    tag = f"web-{uuid.uuid4().hex[:6]}"
    explicit = await make_target(platform, admin_token, tags=["db"], environment="production")
    web_prod = [
        await make_target(platform, admin_token, tags=[tag, "blue"], environment="production")
        for _ in range(2)
    ]
    web_staging = await make_target(platform, admin_token, tags=[tag], environment="staging")
    web_windows = await make_target(
        platform, admin_token, tags=[tag], environment="production", os_type="windows"
    )
    return {
        "tag": tag,
        "explicit": explicit,
        "web_prod": web_prod,
        "web_staging": web_staging,
        "web_windows": web_windows,
    }


@pytest_asyncio.fixture(scope="module")
async def job(platform: RunningPlatform, admin_token: str, fleet: dict[str, Any]) -> dict[str, Any]:
    result = (await call(platform, admin_token, CREATE_JOB, {"input": full_input(fleet)}))["createJob"]
    assert result["__typename"] == "JobCreated", result
    return result["job"]
