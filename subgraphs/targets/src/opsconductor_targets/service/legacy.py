"""What the legacy importer (``opsconductor migrate-legacy``) calls to write targets' tables.

Keyword-only, idempotent upserts keyed by the legacy ids: a target keeps its legacy
``target_uuid`` as its id and uuid and its serial (any of the four legacy formats); a method's and
a credential's ids derive from their legacy ids. Legacy data is taken as it was: soft-deleted
targets stay deleted, duplicate names and the hosts legacy let through are kept (its host rule
was checked by the application only). Secrets arrive decrypted (the caller read the legacy
Fernet scheme) and are encrypted here by our vault; a credential whose stored secret already
equals the legacy one is left as it is. Nothing here logs a secret.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsconductor_shared.errors import ValidationError
from opsconductor_shared.legacy import Outcome, aware, legacy_uuid, upsert
from opsconductor_targets import events
from opsconductor_targets.models import CommunicationMethod, Counter, Credential, Target
from opsconductor_targets.service.catalog import CREDENTIAL_TYPES, METHOD_PORTS
from opsconductor_targets.service.methods import record_target_event
from opsconductor_targets.service.validation import _SECRET_KEY_RE  # pyright: ignore[reportPrivateUsage]
from opsconductor_targets.service.vault import Vault

__all__ = [
    "LegacySecret",
    "import_legacy_credential",
    "import_legacy_method",
    "import_legacy_target",
    "legacy_method_id",
]

_SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")


def legacy_method_id(legacy_id: int) -> str:
    return str(legacy_uuid("target_communication_methods", legacy_id))


async def import_legacy_target(
    *,
    target_uuid: str,
    serial: str,
    name: str,
    os_type: str,
    description: str | None = None,
    environment: str = "development",
    location: str | None = None,
    data_center: str | None = None,
    region: str | None = None,
    status: str = "active",
    health_status: str = "unknown",
    is_active: bool = True,
    created_at: datetime | None = None,
) -> tuple[Target, Outcome]:
    """One ``universal_targets`` row (its uuid is our id). The caller's transaction."""
    serial = serial.strip()
    if not _SERIAL_RE.fullmatch(serial):
        raise ValidationError(f"legacy serial {serial!r} does not fit 32 characters", field="serial")
    try:
        tid = uuid.UUID(str(target_uuid))
    except ValueError:
        raise ValidationError(f"legacy target_uuid {target_uuid!r} is not a UUID", field="uuid") from None
    clash = await Target.filter(serial=serial).exclude(id=str(tid)).first()
    if clash is not None:
        raise ValidationError(f"serial {serial} already belongs to target {clash.id}", field="serial")
    values: dict[str, Any] = {
        "serial": serial,
        "uuid": tid,
        "name": name[:100],
        "description": description,
        "os_type": os_type[:50],
        "environment": environment,
        "location": location,
        "data_center": data_center,
        "region": region,
        "status": status,
        "health_status": health_status,
        "is_active": is_active,
    }
    if created_at is not None:
        values["created_at"] = aware(created_at)
    if await Target.exists(id=str(tid)):
        del values["health_status"]  # live state since the first import: health checks own it
    target, outcome = await upsert(Target, {"id": str(tid)}, values)
    if m := re.fullmatch(r"TGT-(\d{6})", serial):  # new serials continue after the imported ones
        if not await Counter.filter(name="targets").exists():
            await Counter.create(name="targets", value=0)
        await Counter.filter(name="targets", value__lt=int(m.group(1))).update(value=int(m.group(1)))
    if outcome is Outcome.CREATED:
        await record_target_event(
            events.TARGET_CREATED,
            target,
            None,
            {
                "name": target.name,
                "osType": target.os_type,
                "environment": target.environment,
                "status": target.status,
                "tags": [],
                "methods": [],
                "imported": True,
            },
        )
    return target, outcome


def _host(value: object) -> str:
    host = str(value or "").strip().strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


@dataclass
class LegacyMethodResult:
    method: CommunicationMethod
    outcome: Outcome
    dropped_keys: list[str] = field(default_factory=list[str])


async def import_legacy_method(
    *,
    legacy_id: int,
    target_id: str,
    method_type: str,
    config: dict[str, Any],
    is_primary: bool = False,
    is_active: bool = True,
    priority: int = 1,
    created_at: datetime | None = None,
) -> LegacyMethodResult:
    """One ``target_communication_methods`` row: ``config.host``/``config.port`` become the
    method's host and port; config keys that look like secrets are dropped (and named)."""
    if method_type not in METHOD_PORTS:
        raise ValidationError(f"unknown legacy method type {method_type!r}", field="method_type")
    if not await Target.exists(id=target_id):
        raise ValidationError(f"target {target_id} was not imported", field="target_id")
    rest = {k: v for k, v in config.items() if k not in ("host", "port")}
    dropped = sorted(k for k in rest if _SECRET_KEY_RE.search(str(k)))
    for key in dropped:
        rest.pop(key)
    host = _host(config.get("host"))
    if not host and method_type != "sqlite":
        raise ValidationError("legacy method has no config.host", field="config.host")
    try:
        port = int(config.get("port") or METHOD_PORTS[method_type])
    except (TypeError, ValueError):
        raise ValidationError(
            f"legacy port {config.get('port')!r} is not a number", field="config.port"
        ) from None
    values: dict[str, Any] = {
        "target_id": target_id,
        "type": method_type,
        "host": host or str(config.get("database_path") or "")[:255],
        "port": port,
        "config": rest,
        "is_primary": is_primary,
        "priority": priority,
        "is_active": is_active,
    }
    if created_at is not None:
        values["created_at"] = aware(created_at)
    method, outcome = await upsert(CommunicationMethod, {"id": legacy_method_id(legacy_id)}, values)
    return LegacyMethodResult(method, outcome, dropped)


@dataclass(frozen=True)
class LegacySecret:
    """A decrypted legacy credential, in our vault's shape."""

    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)

    def as_vault_json(self) -> dict[str, Any]:
        return {"password": self.password, "privateKey": self.private_key, "passphrase": self.passphrase}


async def import_legacy_credential(
    *,
    vault: Vault,
    legacy_id: int,
    method_id: str,
    credential_type: str,
    secret: LegacySecret,
    is_primary: bool = True,
    is_active: bool = True,
    created_at: datetime | None = None,
) -> tuple[Credential, Outcome]:
    """One ``target_credentials`` row, its secret re-encrypted by our vault."""
    if credential_type not in CREDENTIAL_TYPES:
        raise ValidationError(f"unknown legacy credential type {credential_type!r}", field="credential_type")
    if credential_type == "ssh_key" and not secret.private_key:
        raise ValidationError("legacy ssh_key credential has no private_key", field="private_key")
    if credential_type != "ssh_key" and not secret.password:
        raise ValidationError(f"legacy {credential_type} credential has no secret", field="password")
    if not await CommunicationMethod.exists(id=method_id):
        raise ValidationError(f"method {method_id} was not imported", field="method_id")
    cred_id = str(legacy_uuid("target_credentials", legacy_id))
    wanted = secret.as_vault_json()
    existing = await Credential.get_or_none(id=cred_id)
    encrypted = (
        existing.secret_encrypted
        if existing is not None and vault.decrypt(existing) == wanted
        else vault.encrypt(cred_id, wanted)
    )
    values: dict[str, Any] = {
        "method_id": method_id,
        "type": credential_type,
        "username": secret.username.strip()[:255],
        "secret_encrypted": encrypted,
        "is_primary": is_primary,
        "is_active": is_active,
    }
    if created_at is not None:
        values["created_at"] = aware(created_at)
    return await upsert(Credential, {"id": cred_id}, values)
