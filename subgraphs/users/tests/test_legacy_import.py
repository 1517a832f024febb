"""import_legacy_user (users half of the legacy migration) against the session's users database."""

from __future__ import annotations

import uuid

import pytest
from tortoise.transactions import in_transaction

from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.errors import ValidationError
from opsconductor_users import service
from opsconductor_users.errors import UsernameTakenError
from opsconductor_users.models import Outbox
from tests.support.platform import RunningPlatform

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_legacy_user_gets_the_mapped_role_and_a_created_event(platform: RunningPlatform) -> None:
    db = ServiceDatabase(
        service="users",
        url=platform.databases["users"],
        models_module="opsconductor_users.models",
        migrations_module="opsconductor_users.migrations",
    )
    await db.start(migrate=False)
    name = f"legacy{uuid.uuid4().hex[:8]}"
    try:
        with db.bind():
            async with in_transaction("users"):
                record = await service.import_legacy_user(
                    username=name, email=f"{name.upper()}@Example.com", role="manager", is_active=False
                )
            assert (record.roles, record.email, record.is_active) == (
                ("job_manager",),
                f"{name}@example.com",
                False,
            )
            events = [o.envelope for o in await Outbox.all()]
            mine = [e for e in events if e["subject"] == record.id]
            assert [e["type"] for e in mine] == ["users.user_created"]
            assert mine[0]["data"]["roles"] == ["job_manager"]
            with pytest.raises(ValidationError) as err:
                async with in_transaction("users"):
                    await service.import_legacy_user(username=f"x{name}", email="a@b.c", role="superhero")
            assert err.value.field == "roles"
            with pytest.raises(UsernameTakenError):
                async with in_transaction("users"):
                    await service.import_legacy_user(username=name, email="other@example.com", role="guest")
    finally:
        await db.stop()
