"""Targets: create (serials, importer serials/uuids), update and bulk update of basic fields, soft
delete, and the startup seeding. Writes expect the caller's (the resolver's) transaction."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from opsconductor_shared.errors import ValidationError
from opsconductor_shared.events import new_uuid7
from opsconductor_shared.logging import get_logger
from opsconductor_targets import events
from opsconductor_targets.models import Counter, Target, TargetTag
from opsconductor_targets.service.catalog import seed_device_types
from opsconductor_targets.service.device_types import check_os_type
from opsconductor_targets.service.grants import GrantSigner
from opsconductor_targets.service.methods import check_hosts, lock_hosts, record_target_event, store_method
from opsconductor_targets.service.reads import get_target, get_targets
from opsconductor_targets.service.validation import (
    NewTarget,
    TargetPatch,
    clean_description,
    clean_environment,
    clean_name,
    clean_os_type,
    clean_place,
    clean_status,
    clean_tags,
    plan_target,
)

if TYPE_CHECKING:
    from opsconductor_targets.service.deps import Deps

log = get_logger("opsconductor.targets")


async def startup(*, grants: GrantSigner) -> None:
    """The grant signing key, the serial counter and the device-type catalogue (idempotent)."""
    await grants.ensure_key()
    with contextlib.suppress(IntegrityError):  # another replica created it first
        await Counter.get_or_create(name="targets", defaults={"value": 0})
    await seed_device_types()


async def _next_serial() -> str:
    # The UPDATE takes the counter row's lock until commit, which also serializes the host check
    # below between concurrent creates (on SQLite the write lock does the same).
    while True:
        if not await Counter.filter(name="targets").update(value=F("value") + 1):
            await Counter.create(name="targets", value=1)
        counter = await Counter.get(name="targets")
        serial = f"TGT-{counter.value:06d}"
        if not await Target.filter(serial=serial).exists():  # imported legacy serials
            return serial


async def create_target(*, deps: Deps, new: NewTarget, actor: str | None) -> Target:
    plan = await plan_target(new=new, settings=deps.settings)
    await check_os_type(plan.os_type)
    if new.serial is not None:  # importer path: keep the legacy serial, advance the counter past it
        serial = new.serial.strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}", serial):
            raise ValidationError("serial must be 1-32 characters of A-Z, 0-9, '.', '_', '-'", field="serial")
        await lock_hosts()
        if await Target.filter(serial=serial).exists():
            raise ValidationError(f"serial {serial} already exists", field="serial")
        if m := re.fullmatch(r"TGT-(\d{6})", serial):
            await Counter.filter(name="targets", value__lt=int(m.group(1))).update(value=int(m.group(1)))
    else:
        serial = await _next_serial()
    await check_hosts([m.host for m in plan.methods if m.type != "sqlite"])
    target_id = str(new_uuid7())
    try:
        target_uuid = uuid.UUID(new.uuid) if new.uuid else uuid.UUID(target_id)
    except ValueError:
        raise ValidationError("uuid is not a UUID", field="uuid") from None
    if new.uuid and await Target.filter(uuid=target_uuid).exists():
        raise ValidationError(f"uuid {target_uuid} already exists", field="uuid")
    target = await Target.create(
        id=target_id,
        serial=serial,
        uuid=target_uuid,
        name=plan.name,
        description=plan.description,
        os_type=plan.os_type,
        environment=plan.environment,
        status=plan.status,
        tags=plan.tags,
        location=plan.location,
        data_center=plan.data_center,
        region=plan.region,
    )
    await _set_tags(target, plan.tags)
    summary = [await store_method(vault=deps.vault, target=target, pm=pm) for pm in plan.methods]
    await record_target_event(
        events.TARGET_CREATED,
        target,
        actor,
        {
            "name": plan.name,
            "osType": plan.os_type,
            "environment": plan.environment,
            "status": plan.status,
            "tags": plan.tags,
            "methods": summary,
        },
    )
    log.info("target created", target_id=target.id, serial=serial, actor=actor)
    return await get_target(target.id)


async def _set_tags(target: Target, tags: list[str]) -> None:
    await TargetTag.filter(target_id=target.id).delete()
    for tag in sorted({t.lower() for t in tags}):
        await TargetTag.create(target=target, tag=tag)


# -- update basics / delete ----------------------------------------------------------------


async def update_target(*, target_id: str, patch: TargetPatch, actor: str | None) -> Target:
    target = await get_target(target_id)
    await _check_patch(patch)
    changes = await _apply_patch(target, patch)
    if changes:
        await target.save()
        await record_target_event(events.TARGET_UPDATED, target, actor, {"changed": sorted(changes)})
    return await get_target(target.id)


async def _check_patch(patch: TargetPatch) -> None:
    """What a patch needs from the database, checked once per call (not per target)."""
    if patch.os_type is not None:
        await check_os_type(clean_os_type(patch.os_type))


async def _apply_patch(target: Target, patch: TargetPatch) -> set[str]:
    """Validate and set the patch's fields (after `_check_patch`); returns those that changed."""
    changes: dict[str, Any] = {}
    if patch.name is not None:
        changes["name"] = clean_name(patch.name)
    if patch.os_type is not None:
        changes["os_type"] = clean_os_type(patch.os_type)
    if patch.environment is not None:
        changes["environment"] = clean_environment(patch.environment)
    if patch.status is not None:
        changes["status"] = clean_status(patch.status)
    if patch.description is not None:
        changes["description"] = clean_description(patch.description)
    for name in ("location", "data_center", "region"):
        value = getattr(patch, name)
        if value is not None:
            changes[name] = clean_place(value, name)
    tags = list(target.tags or [])
    if patch.tags is not None:
        tags = clean_tags(patch.tags)
    if patch.add_tags:
        tags = clean_tags([*tags, *patch.add_tags])
    if patch.remove_tags:
        gone = {t.strip().lower() for t in patch.remove_tags}
        tags = [t for t in tags if t.lower() not in gone]
    if tags != list(target.tags or []):
        changes["tags"] = tags
        await _set_tags(target, tags)
    changed = {k for k, v in changes.items() if getattr(target, k) != v}
    for key, value in changes.items():
        setattr(target, key, value)
    return changed


async def bulk_update(
    *, target_ids: Sequence[str], patch: TargetPatch, actor: str | None
) -> tuple[list[Target], list[str]]:
    """Apply one patch to many targets; returns (updated targets, unknown ids)."""
    ids = list(dict.fromkeys(str(i) for i in target_ids))
    if not ids:
        raise ValidationError("give at least one target id", field="targetIds")
    if len(ids) > 1000:
        raise ValidationError("at most 1000 targets per bulk update", field="targetIds")
    if patch.name is not None:
        raise ValidationError("names are not bulk-updatable", field="name")
    await _check_patch(patch)
    found = await get_targets(ids)
    for target in found:
        changes = await _apply_patch(target, patch)
        if changes:
            await target.save()
            await record_target_event(events.TARGET_UPDATED, target, actor, {"changed": sorted(changes)})
    known = {t.id for t in found}
    return await get_targets([t.id for t in found]), [i for i in ids if i not in known]


async def delete_target(*, target_id: str, actor: str | None) -> Target:
    """Soft delete (legacy ``is_active=false``): history stays readable, the host is freed."""
    target = await get_target(target_id)
    target.is_active = False
    await target.save()
    await record_target_event(events.TARGET_DELETED, target, actor, {})
    log.info("target deleted", target_id=target.id, actor=actor)
    return target
