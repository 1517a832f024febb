"""Who may grant what, and to whom (nobody grants more than they hold, nor acts on a more
privileged user), and the lock on the active admins every last-admin check takes."""

from __future__ import annotations

from collections.abc import Iterable

from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet

from opsconductor_shared.auth import Identity
from opsconductor_shared.errors import ForbiddenError
from opsconductor_users.models import User, UserRole
from opsconductor_users.service.catalog import ALL


def can_grant(actor: Identity | None, permissions: Iterable[str]) -> str | None:
    """The first permission the actor may not hand out (nobody grants more than they hold)."""
    if actor is None:
        return None
    for perm in permissions:
        if perm == ALL:
            if ALL not in actor.permissions:
                return ALL
        elif not actor.has(perm):
            return perm
    return None


def check_may_act_on(
    actor: Identity | None, target_id: str, target_permissions: Iterable[str], action: str
) -> None:
    """H6: act on another user (reset their password, (de)activate, delete, edit, re-role them) only
    when holding every permission they hold (``*`` only with ``*``): nobody takes over a user more
    privileged than themselves. Acting on oneself is exempt (own-account rules apply instead)."""
    if actor is None or actor.subject == target_id:
        return
    missing = can_grant(actor, target_permissions)
    if missing is not None:
        raise ForbiddenError(
            f"you cannot {action} a user who holds permission '{missing}', which you do not hold",
            permission=missing,
        )


def check_grant(actor: Identity | None, permissions: Iterable[str]) -> None:
    """Refuse (ForbiddenError) to hand out a permission the actor does not hold."""
    missing = can_grant(actor, permissions)
    if missing is not None:
        raise ForbiddenError(
            f"you cannot grant permission '{missing}', which you do not hold", permission=missing
        )


async def lock_active_admins() -> list[str]:
    """Lock the active admins' rows: two concurrent demotions cannot both see 'another admin left'.

    Lock order everywhere: roles (by name), then the active admins (by id), then other users."""
    # Whole rows without a join: tortoise drops FOR UPDATE from values_list() queries, and PostgreSQL
    # refuses it on the outer join a role_links filter makes.
    rows = await holding("admin").filter(deleted_at=None, is_active=True).order_by("id").select_for_update()
    return [u.id for u in rows]


def holding(role_name: str) -> QuerySet[User]:
    """Users holding the role (a subquery on the links, so the query can lock the users rows)."""
    return User.filter(id__in=Subquery(UserRole.filter(role_id=role_name).values("user_id")))
