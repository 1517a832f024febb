"""Operator commands that run outside the server against auth's database (``opsconductor ...``).

An entry point like ``app.py`` (it builds its own database and collaborators and owns its transaction).
"""

from __future__ import annotations

from tortoise.transactions import in_transaction

from opsconductor_auth.service import KeyManager, RotationResult, keyring_of, token_retention_seconds
from opsconductor_auth.settings import Settings
from opsconductor_shared.db import ServiceDatabase


async def rotate_signing_key(settings: Settings | None = None) -> RotationResult:
    """``opsconductor rotate-signing-key``: a new current signing key, in auth's database from settings.

    Running auth replicas pick it up on their next token (they read the current key per signature);
    other services fetch it from JWKS when they first meet its kid. Keys superseded for longer than
    the longest token lifetime are retired in the same transaction.
    """
    settings = settings or Settings()
    db = ServiceDatabase(
        service="auth",
        url=settings.resolved_database_url("auth"),
        models_module="opsconductor_auth.models",
        migrations_module="opsconductor_auth.migrations",
    )
    await db.start()
    try:
        with db.bind():
            async with in_transaction("auth"):
                return await KeyManager(keyring_of(settings)).rotate(
                    retain_seconds=token_retention_seconds(settings)
                )
    finally:
        await db.stop()
