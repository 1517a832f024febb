"""The device-type catalogue: reads and CRUD of custom types (system types are seeded, fixed)."""

from __future__ import annotations

from opsconductor_shared.errors import NotFoundError, ValidationError
from opsconductor_targets.models import DeviceType, DeviceTypeCategory, Target
from opsconductor_targets.service.catalog import METHOD_PORTS
from opsconductor_targets.service.lookups import storable
from opsconductor_targets.service.validation import DeviceTypeData, clean_os_type


async def device_types(*, category: str | None = None, include_inactive: bool = False) -> list[DeviceType]:
    query = DeviceType.all()
    if not include_inactive:
        query = query.filter(is_active=True)
    if category:
        if not storable(DeviceType, "category", category):
            return []  # no such category (review FUZZ-3)
        query = query.filter(category=category)
    return await query.order_by("category", "label")


async def device_type_categories() -> list[DeviceTypeCategory]:
    return await DeviceTypeCategory.filter(is_active=True).order_by("sort_order", "value")


async def check_os_type(os_type: str) -> None:
    if not await DeviceType.filter(value=os_type, is_active=True).exists():
        raise ValidationError(
            f"unknown device type {os_type!r}: see deviceTypes, or create a custom one", field="osType"
        )


def _check_fields(dt: DeviceTypeData) -> None:
    if dt.label is not None and not 1 <= len(dt.label.strip()) <= 100:
        raise ValidationError("label must be 1-100 characters", field="label")
    if dt.category is not None and not storable(DeviceTypeCategory, "value", dt.category):
        raise ValidationError(f"unknown category {dt.category[:60]!r}", field="category")
    if dt.description is not None and len(dt.description) > 2000:
        raise ValidationError("description is longer than 2000 characters", field="description")
    for i, mt in enumerate(dt.communication_methods or []):
        if mt not in METHOD_PORTS:
            raise ValidationError(f"unknown method type {mt!r}", field=f"communicationMethods[{i}]")


async def create_device_type(*, data: DeviceTypeData, actor: str | None) -> DeviceType:
    value = clean_os_type(data.value, "value")
    _check_fields(data)
    if not data.label:
        raise ValidationError("label is required", field="label")
    if not await DeviceTypeCategory.filter(value=data.category or "", is_active=True).exists():
        raise ValidationError(f"unknown category {data.category!r}", field="category")
    existing = await DeviceType.get_or_none(value=value)
    if existing is not None and existing.is_active:
        raise ValidationError(f"device type {value!r} already exists", field="value")
    if existing is not None:  # re-creating a deleted custom type revives it
        await existing.delete()
    return await DeviceType.create(
        value=value,
        label=data.label.strip(),
        category=data.category,
        description=data.description,
        communication_methods=list(data.communication_methods or []),
        is_system=False,
        created_by=actor,
    )


async def _custom(value: str) -> DeviceType:
    row = (
        await DeviceType.get_or_none(value=value, is_active=True)
        if storable(DeviceType, "value", value)
        else None
    )
    if row is None:
        raise NotFoundError(f"device type {value!r} not found", id=value)
    return row


async def update_device_type(*, value: str, data: DeviceTypeData) -> DeviceType:
    row = await _custom(value)
    if row.is_system:
        raise ValidationError("system device types cannot be changed", field="value")
    _check_fields(data)
    if data.category is not None:
        if not await DeviceTypeCategory.filter(value=data.category, is_active=True).exists():
            raise ValidationError(f"unknown category {data.category!r}", field="category")
        row.category = data.category
    if data.label is not None:
        row.label = data.label.strip()
    if data.description is not None:
        row.description = data.description
    if data.communication_methods is not None:
        row.communication_methods = list(data.communication_methods)
    await row.save()
    return row


async def delete_device_type(*, value: str) -> None:
    row = await _custom(value)
    if row.is_system:
        raise ValidationError("system device types cannot be deleted", field="value")
    used = await Target.filter(os_type=value, is_active=True).count()
    if used:
        raise ValidationError(f"{used} active target(s) still use device type {value!r}", field="value")
    row.is_active = False
    await row.save()
