"""Custom roles (create / update / delete) and the assignment of roles to a user."""

from __future__ import annotations

import re
from collections.abc import Sequence

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from opsconductor_shared.auth import Identity
from opsconductor_shared.errors import NotFoundError, ValidationError
from opsconductor_shared.events import record_event
from opsconductor_users import events
from opsconductor_users.errors import RoleInUseError, SystemRoleError
from opsconductor_users.models import Outbox, Role, User, UserRole
from opsconductor_users.service.catalog import (
    LEGACY_ROLES,
    canonical_role,
    canonical_roles,
    resolve_permissions,
    validate_permissions,
)
from opsconductor_users.service.privileges import check_grant, check_may_act_on, holding, lock_active_admins
from opsconductor_users.service.records import RoleRecord, UserRecord, bump_version, role_record, user_records

ROLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,49}$")


async def create_role(
    *, name: str, description: str | None, permissions: Sequence[str], actor: Identity | None
) -> RoleRecord:
    name = name.strip().lower()
    if not ROLE_NAME_RE.fullmatch(name):
        raise ValidationError(
            "role name must be 2-50 characters of lower-case letters, digits, '_' or '-'", field="name"
        )
    if name in LEGACY_ROLES:
        raise ValidationError(
            f"'{name}' is a legacy role name (it maps to '{LEGACY_ROLES[name]}')", field="name"
        )
    description = (description or "").strip()
    if len(description) > 255:
        raise ValidationError("description must be at most 255 characters", field="description")
    perms = validate_permissions(permissions)
    check_grant(actor, perms)
    if await Role.exists(name=name):
        raise ValidationError(f"role '{name}' already exists", field="name")
    try:
        role = await Role.create(name=name, description=description, permissions=perms, is_system=False)
    except IntegrityError as exc:
        raise ValidationError(f"role '{name}' already exists", field="name") from exc
    await record_event(
        Outbox,
        events.role_event(
            events.ROLE_CREATED, name=name, description=description, permissions=perms, actor=actor
        ),
    )
    return role_record(role)


async def _locked_custom_role(name: str) -> Role:
    role = await Role.filter(name=canonical_role(name)).select_for_update().first()
    if role is None:
        raise NotFoundError(f"no role named '{name}'", id=name)
    if role.is_system:
        raise SystemRoleError(role.name)
    return role


async def _lock_holders(role_name: str) -> list[str]:
    """Lock the (not deleted) holders of a role in id order, after the active admins (the lock order
    every multi-user write follows: roles, then admins, then other users)."""
    await lock_active_admins()
    return [u.id for u in await holding(role_name).filter(deleted_at=None).order_by("id").select_for_update()]


async def update_role(
    *,
    name: str,
    description: str | None,
    permissions: Sequence[str] | None,
    actor: Identity | None,
) -> RoleRecord:
    """Change a custom role; when its permissions change, every holder gets a
    ``users.user_roles_changed`` event with their new permissions (auth's token claims follow).

    The role row is locked first (createUser/setUserRoles adding it wait for us, or we for them),
    then the holders, whose versions are bumped: each holder's snapshot is computed after every
    concurrent change of that user committed. Changing the permissions needs every permission each
    other holder holds (H6: no editing the rights of a user more privileged than oneself)."""
    role = await _locked_custom_role(name)
    fields_: list[str] = []
    if description is not None:
        description = description.strip()
        if len(description) > 255:
            raise ValidationError("description must be at most 255 characters", field="description")
        role.description = description
        fields_.append("description")
    changed = False
    if permissions is not None:
        perms = validate_permissions(permissions)
        check_grant(actor, perms)
        changed = perms != sorted(role.permissions)
        role.permissions = perms
        fields_.append("permissions")
    holders: list[str] = []
    if changed:
        holders = await _lock_holders(role.name)
        for holder in await user_records(await User.filter(id__in=holders).order_by("id")):
            check_may_act_on(actor, holder.id, holder.permissions, "change the role of")
    if fields_:
        await role.save(update_fields=fields_)
        await record_event(
            Outbox,
            events.role_event(
                events.ROLE_UPDATED,
                name=role.name,
                description=role.description,
                permissions=list(role.permissions),
                actor=actor,
            ),
        )
    if holders:
        await User.filter(id__in=holders).update(version=F("version") + 1)
        for record in await user_records(await User.filter(id__in=holders).order_by("id")):
            await record_event(Outbox, events.user_event(events.USER_ROLES_CHANGED, record, actor))
    return role_record(role)


async def delete_role(*, name: str, actor: Identity | None = None) -> str:
    role = await _locked_custom_role(name)
    in_use = await User.filter(deleted_at=None, role_links__role_id=role.name).count()
    if in_use:
        raise RoleInUseError(role.name, in_use)
    await UserRole.filter(role_id=role.name).delete()  # links of soft-deleted users only
    await role.delete()
    await record_event(
        Outbox,
        events.role_event(
            events.ROLE_DELETED, name=role.name, description=role.description, permissions=None, actor=actor
        ),
    )
    return role.name


async def set_user_roles(*, user_id: str, roles: Sequence[str], actor: Identity | None) -> UserRecord:
    """Replace a user's roles (legacy names map); emits ``users.user_roles_changed`` when they change."""
    wanted = canonical_roles(roles)
    if not wanted:
        raise ValidationError("a user needs at least one role", field="roles")
    # The wanted roles first (name order), as updateRole does: a concurrent permission change of
    # one of them either commits before we read it or waits for our snapshot (M6).
    locked = await Role.filter(name__in=wanted).order_by("name").select_for_update(no_key=True)
    perms = {r.name: list(r.permissions) for r in locked}
    unknown = [r for r in wanted if r not in perms]
    if unknown:
        raise ValidationError(f"unknown role(s): {', '.join(unknown)}", field="roles")
    check_grant(actor, resolve_permissions(perms[r] for r in wanted))
    admins = await lock_active_admins()
    user = await User.filter(id=user_id, deleted_at=None).select_for_update().first()
    if user is None:
        raise NotFoundError(f"no user with id '{user_id}'", id=user_id)
    (before,) = await user_records([user])
    check_may_act_on(actor, before.id, before.permissions, "change the roles of")
    if set(before.roles) == set(wanted):
        return before
    if user.id in admins and "admin" not in wanted and len(admins) <= 1:
        raise ValidationError("cannot remove the admin role from the last active admin", field="roles")
    await UserRole.filter(user_id=user.id).exclude(role_id__in=wanted).delete()
    for role in wanted:
        if role not in before.roles:
            await UserRole.create(user_id=user.id, role_id=role)
    await user.save(update_fields=[bump_version(user), "updated_at"])
    (record,) = await user_records([user])
    await record_event(Outbox, events.user_event(events.USER_ROLES_CHANGED, record, actor))
    return record
