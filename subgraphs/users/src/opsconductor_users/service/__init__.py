"""Users domain logic: the permission catalogue, roles, users, and the auth credential call.

No strawberry here. Async module functions with keyword-only arguments; they write, the resolver
owns the transaction (createUser is the one place where a call to auth sits inside that
transaction: see README "createUser consistency"). Schema code writes ``service.x(...)``.

Modules: ``catalog`` (permissions, system and legacy roles), ``records`` (what the service hands
out), ``privileges`` (who may grant what to whom; the admins' lock), ``users``, ``roles``,
``legacy`` (legacy import, bootstrap admin), ``auth_client`` (setUserCredential in auth).
"""

from __future__ import annotations

from dataclasses import dataclass

from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID
from opsconductor_users.service.auth_client import SET_CREDENTIAL, AuthCredentials, PendingCredential
from opsconductor_users.service.catalog import (
    ALL,
    DEFAULT_ROLES,
    LEGACY_ROLES,
    PERMISSIONS,
    SYSTEM_ROLES,
    RoleSpec,
    canonical_role,
    canonical_roles,
    resolve_permissions,
    seed_roles,
    validate_permissions,
)
from opsconductor_users.service.legacy import ensure_bootstrap_admin, import_legacy_user
from opsconductor_users.service.privileges import can_grant, check_grant, check_may_act_on
from opsconductor_users.service.records import RoleRecord, UserRecord, list_roles, load_users
from opsconductor_users.service.roles import create_role, delete_role, set_user_roles, update_role
from opsconductor_users.service.users import (
    MAX_PAGE,
    NewUser,
    ProfileChanges,
    UserPage,
    UserQuery,
    create_user,
    delete_user,
    list_users,
    record_login,
    set_user_active,
    update_user,
    valid_timezone,
    validate_new_user,
)


@dataclass
class Deps:
    """The users service's collaborators, built in ``app.py`` (``info.context.deps``)."""

    credentials: AuthCredentials
    """auth's setUserCredential (createUser's password half)."""


__all__ = [
    "ALL",
    "BOOTSTRAP_ADMIN_ID",
    "DEFAULT_ROLES",
    "LEGACY_ROLES",
    "MAX_PAGE",
    "PERMISSIONS",
    "SET_CREDENTIAL",
    "SYSTEM_ROLES",
    "AuthCredentials",
    "Deps",
    "NewUser",
    "PendingCredential",
    "ProfileChanges",
    "RoleRecord",
    "RoleSpec",
    "UserPage",
    "UserQuery",
    "UserRecord",
    "can_grant",
    "canonical_role",
    "canonical_roles",
    "check_grant",
    "check_may_act_on",
    "create_role",
    "create_user",
    "delete_role",
    "delete_user",
    "ensure_bootstrap_admin",
    "import_legacy_user",
    "list_roles",
    "list_users",
    "load_users",
    "record_login",
    "resolve_permissions",
    "seed_roles",
    "set_user_active",
    "set_user_roles",
    "update_role",
    "update_user",
    "valid_timezone",
    "validate_new_user",
    "validate_permissions",
]
