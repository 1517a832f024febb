"""Build the users service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from strawberry.dataloader import DataLoader
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.logging import get_logger
from opsconductor_users import events, service
from opsconductor_users.models import Outbox
from opsconductor_users.schema import schema
from opsconductor_users.settings import Settings

log = get_logger("opsconductor.users")

_USER_LOADER = "users.by_id"


@dataclass
class Deps:
    credentials: service.AuthCredentials

    async def load_user(self, context: Any, user_id: str) -> service.UserRecord | None:
        """Per-request batched lookup (one query for all ids resolved in the same tick)."""
        loader = context.loaders.get(_USER_LOADER)
        if loader is None:
            loader = context.loaders[_USER_LOADER] = DataLoader(load_fn=service.load_users)
        return await loader.load(user_id)


def create_app(settings: Settings, platform: Platform) -> Starlette:
    runtime = build_runtime(
        name="users",
        settings=settings,
        platform=platform,
        models_module="opsconductor_users.models",
        migrations_module="opsconductor_users.migrations",
        outbox_model=Outbox,
    )
    runtime.deps = Deps(credentials=service.AuthCredentials(runtime.client(settings.auth_url)))

    async def startup(rt: Runtime) -> None:
        await service.seed_roles()
        try:
            async with in_transaction():
                created = await service.ensure_bootstrap_admin()
        except IntegrityError:  # another replica created it first (or a legacy row holds its email)
            created = False
        if created:
            log.info("bootstrap admin user created", user_id=service.BOOTSTRAP_ADMIN_ID)
            rt.events_committed()
        events.subscribe(rt)

    return create_service_app(runtime=runtime, schema=schema, on_startup=[startup])
