"""Pure rules of the users service: legacy roles, permission resolution, validation, cursors."""

from __future__ import annotations

import pytest

from opsconductor_shared.errors import ValidationError
from opsconductor_users import service


def test_legacy_roles_map_onto_new_roles() -> None:
    assert service.canonical_role("administrator") == "admin"
    assert service.canonical_role("manager") == "job_manager"
    assert service.canonical_role("user") == "operator"
    assert service.canonical_role("guest") == "viewer"
    assert service.canonical_role(" Administrator ") == "admin"
    assert service.canonical_role("auditor") == "auditor"
    assert service.canonical_roles(["user", "operator", "guest"]) == ["operator", "viewer"]


def test_system_roles_use_only_catalogue_permissions() -> None:
    names = {r.name for r in service.SYSTEM_ROLES}
    assert names == {"admin", "operator", "job_manager", "viewer", "auditor"}
    for role in service.SYSTEM_ROLES:
        assert set(role.permissions) <= set(service.PERMISSIONS) | {"*"}, role.name
    assert set(service.LEGACY_ROLES.values()) <= names


def test_permissions_resolve_as_a_union_and_star_wins() -> None:
    assert service.resolve_permissions([["jobs:read", "targets:read"], ["jobs:read", "audit:read"]]) == [
        "audit:read",
        "jobs:read",
        "targets:read",
    ]
    assert service.resolve_permissions([["jobs:read"], ["*"]]) == ["*"]
    assert service.resolve_permissions([]) == []


def _new(**overrides: object) -> service.NewUser:
    args: dict[str, object] = {
        "username": "alice",
        "email": "Alice@Example.com",
        "password": "long-enough",
        "roles": None,
        "display_name": None,
    }
    args.update(overrides)
    return service.validate_new_user(**args)  # type: ignore[arg-type]


def test_validation_normalises_and_defaults() -> None:
    new = _new()
    assert new.email == "alice@example.com"
    assert new.roles == ("viewer",)
    assert new.display_name == "alice"
    assert _new(roles=["manager", "job_manager"]).roles == ("job_manager",)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"username": "ab"}, "username"),
        ({"username": "x" * 51}, "username"),
        ({"username": "bad name"}, "username"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b@c"}, "email"),
        ({"password": "short"}, "password"),
        ({"roles": []}, "roles"),
    ],
)
def test_validation_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        _new(**overrides)
    assert info.value.field == field


def test_nobody_grants_more_than_they_hold() -> None:
    from opsconductor_shared.auth import Identity

    manager = Identity(subject="x", kind="user", permissions=frozenset({"users:write", "jobs:*"}))
    assert service.can_grant(manager, ["jobs:read", "jobs:execute"]) is None
    assert service.can_grant(manager, ["jobs:read", "targets:read"]) == "targets:read"
    assert service.can_grant(manager, ["*"]) == "*"
    admin = Identity(subject="a", kind="user", permissions=frozenset({"*"}))
    assert service.can_grant(admin, ["*", "audit:read"]) is None
