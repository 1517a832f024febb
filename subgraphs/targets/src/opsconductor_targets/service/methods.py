"""Communication methods: add, change (re-pointing needs the secret again), remove, set primary;
the host-uniqueness check and lock shared with target writes; storing a method and its credential."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tortoise.expressions import F

from opsconductor_shared.errors import ValidationError
from opsconductor_shared.events import new_uuid7, record_event
from opsconductor_targets import events
from opsconductor_targets.errors import HostAlreadyInUse, LastMethod
from opsconductor_targets.models import CommunicationMethod, Counter, Credential, KnownHostKey, Outbox, Target
from opsconductor_targets.service.catalog import MAX_METHODS, METHOD_CONFIG_DEFAULTS, SECRET_PLACEHOLDER
from opsconductor_targets.service.exposure import check_winrm_security, endpoint_changes
from opsconductor_targets.service.reads import active_credential, find_method, get_target
from opsconductor_targets.service.validation import (
    MethodPatch,
    NewCredential,
    NewMethod,
    PlannedMethod,
    check_credential,
    normalize_host,
    plan_method,
    validate_config,
    validate_credential,
    validate_port,
    validate_sqlite_path,
)
from opsconductor_targets.service.vault import Vault

if TYPE_CHECKING:
    from opsconductor_targets.service.deps import Deps


async def record_target_event(type_: str, target: Target, actor: str | None, data: dict[str, Any]) -> None:
    """Into the outbox, in the caller's transaction (metadata only: never a secret or username)."""
    await record_event(Outbox, events.target_event(type_, target, actor, data))


async def lock_hosts() -> None:
    """Take the counter row lock: serializes host checks between concurrent writers (PostgreSQL)."""
    if not await Counter.filter(name="targets").update(value=F("value")):
        await Counter.create(name="targets", value=0)


async def check_hosts(hosts: Sequence[str], *, except_target: str | None = None) -> None:
    """Legacy rule: no two active targets share a host (sqlite paths are not hosts)."""
    wanted = sorted(set(hosts))
    if not wanted:
        return
    query = CommunicationMethod.filter(host__in=wanted, is_active=True, target__is_active=True).exclude(
        type="sqlite"
    )
    if except_target is not None:
        query = query.exclude(target_id=except_target)
    clash = await query.first()
    if clash is not None:
        raise HostAlreadyInUse(clash.host, str(clash.target_id))  # type: ignore[attr-defined]


async def store_method(*, vault: Vault, target: Target, pm: PlannedMethod) -> dict[str, Any]:
    method = await CommunicationMethod.create(
        id=str(new_uuid7()),
        target=target,
        type=pm.type,
        host=pm.host,
        port=pm.port,
        config=pm.config,
        is_primary=pm.is_primary,
        priority=pm.priority,
    )
    entry: dict[str, Any] = {
        "id": method.id,
        "type": pm.type,
        "host": pm.host,
        "port": pm.port,
        "isPrimary": pm.is_primary,
    }
    if pm.credential is not None and pm.secret is not None:
        cred_id = str(new_uuid7())
        await Credential.create(
            id=cred_id,
            method=method,
            type=pm.credential.type,
            username=pm.credential.username.strip(),
            secret_encrypted=vault.encrypt(cred_id, pm.secret),
        )
        entry["credential"] = {"id": cred_id, "type": pm.credential.type}
    return entry


async def add_method(*, deps: Deps, target_id: str, new: NewMethod, actor: str | None) -> tuple[Target, str]:
    target = await get_target(target_id)
    if len(target.methods) >= MAX_METHODS:
        raise ValidationError(f"at most {MAX_METHODS} communication methods", field="methods")
    planned = await plan_method(
        new=new, prefix="method", default_priority=len(target.methods) + 1, settings=deps.settings
    )
    await lock_hosts()
    if planned.type != "sqlite":
        await check_hosts([planned.host], except_target=target.id)
    has_primary = any(m.is_primary and m.is_active for m in target.methods)
    planned.is_primary = bool(new.is_primary) or not has_primary
    if planned.is_primary:
        await CommunicationMethod.filter(target_id=target.id).update(is_primary=False)
    entry = await store_method(vault=deps.vault, target=target, pm=planned)
    await record_target_event(
        events.TARGET_UPDATED, target, actor, {"changed": ["methods"], "methodAdded": entry}
    )
    return await get_target(target.id), entry["id"]


async def update_method(
    *, deps: Deps, target_id: str, method_id: str, patch: MethodPatch, actor: str | None
) -> Target:
    """Change a method. A credential without its secret (or with legacy's placeholder) keeps the stored one."""
    target = await get_target(target_id)
    method = find_method(target, method_id)
    host = method.host
    if patch.host is not None:
        host = (
            validate_sqlite_path(patch.host, "method.host")
            if method.type == "sqlite"
            else normalize_host(patch.host, "method.host")
        )
    port = validate_port(patch.port, method.type, "method.port") if patch.port is not None else method.port
    config = (
        validate_config(patch.config, method.type, "method.config")
        if patch.config is not None
        else method.config
    )
    priority = method.priority
    if patch.priority is not None:
        if not 1 <= patch.priority <= 1000:
            raise ValidationError("priority must be between 1 and 1000", field="method.priority")
        priority = patch.priority
    if patch.config is not None:
        check_winrm_security(method.type, config, "method.config")
    is_active = method.is_active if patch.is_active is None else patch.is_active
    if not is_active and not any(m.is_active for m in target.methods if m.id != method.id):
        raise ValidationError("a target needs at least one active communication method", field="isActive")
    _require_secret_to_move(method, host, port, config, patch.credential)
    if patch.credential is not None:
        await _replace_credential(deps, method, patch.credential)
    if is_active and method.type != "sqlite" and (host != method.host or not method.is_active):
        await lock_hosts()
        await check_hosts([host], except_target=target.id)
    moved = host != method.host or port != method.port
    method.host, method.port, method.config = host, port, config
    method.priority, method.is_active = priority, is_active
    await method.save()
    if moved:  # a new address has a different host key: trust starts over
        await KnownHostKey.filter(method_id=method.id).delete()
    if method.is_primary and not is_active:
        await _promote(target, exclude=method.id)
    await record_target_event(
        events.TARGET_UPDATED, target, actor, {"changed": ["methods"], "methodId": method.id}
    )
    return await get_target(target.id)


def _require_secret_to_move(
    method: CommunicationMethod, host: str, port: int, config: dict[str, Any], new: NewCredential | None
) -> None:
    """Re-pointing a method that holds a secret needs the secret again (review H2): else
    ``targets:write`` could send the stored password/token to a host of its choosing."""
    current = active_credential(method)
    if current is None:
        return
    changed = [
        name for name, old, now in (("host", method.host, host), ("port", method.port, port)) if old != now
    ]
    changed += [
        f"config.{key}"
        for key in endpoint_changes(
            method.type, method.config or {}, config, METHOD_CONFIG_DEFAULTS.get(method.type, {})
        )
    ]
    if not changed:
        return
    if new is not None and any(
        v not in (None, "", SECRET_PLACEHOLDER) for v in (new.password, new.private_key)
    ):
        return
    secret_field = (
        "privateKey" if (new.type if new is not None else current.type) == "ssh_key" else "password"
    )
    raise ValidationError(
        f"changing {', '.join(changed)} of a method that holds a secret needs the secret again: "
        f"send the credential's {secret_field} with the change",
        field=f"method.credential.{secret_field}",
    )


async def _replace_credential(deps: Deps, method: CommunicationMethod, new: NewCredential) -> None:
    current = active_credential(method)
    secret_given = any(v not in (None, "", SECRET_PLACEHOLDER) for v in (new.password, new.private_key))
    if not secret_given:
        if current is None or current.type != new.type:
            # asking to keep a secret that is not there (or of another type) is an error
            validate_credential(
                NewCredential(new.type, new.username, None, None, None), method.type, "method.credential"
            )
            return
        username = (new.username or "").strip()
        if not username and new.type in ("password", "ssh_key"):
            raise ValidationError("username is required", field="method.credential.username")
        if len(username) > 255:
            raise ValidationError(
                "username is longer than 255 characters", field="method.credential.username"
            )
        current.username = username
        await current.save()
        return
    if new.passphrase == SECRET_PLACEHOLDER:
        keep = deps.vault.decrypt(current) if current is not None and current.type == "ssh_key" else {}
        new = NewCredential(new.type, new.username, new.password, new.private_key, keep.get("passphrase"))
    secret = await check_credential(
        cred=new, method_type=method.type, prefix="method.credential", settings=deps.settings
    )
    await Credential.filter(method_id=method.id).delete()
    cred_id = str(new_uuid7())
    await Credential.create(
        id=cred_id,
        method=method,
        type=new.type,
        username=new.username.strip(),
        secret_encrypted=deps.vault.encrypt(cred_id, secret),
    )


async def _promote(target: Target, *, exclude: str) -> str | None:
    rest = sorted(
        (m for m in target.methods if m.id != exclude and m.is_active), key=lambda m: (m.priority, m.id)
    )
    await CommunicationMethod.filter(target_id=target.id).update(is_primary=False)
    if not rest:
        return None
    await CommunicationMethod.filter(id=rest[0].id).update(is_primary=True)
    return rest[0].id


async def remove_method(*, target_id: str, method_id: str, actor: str | None) -> tuple[Target, str | None]:
    """Hard delete (as legacy). Refuses the last method; removing the primary promotes the next."""
    target = await get_target(target_id)
    method = find_method(target, method_id)
    others = [m for m in target.methods if m.id != method.id]
    if not others:
        raise LastMethod("a target keeps at least one communication method: add another first")
    if not any(m.is_active for m in others):
        raise LastMethod("this is the target's last active communication method")
    promoted = None
    if method.is_primary:
        promoted = await _promote(target, exclude=method.id)
    await KnownHostKey.filter(method_id=method.id).delete()
    await method.delete()
    await record_target_event(
        events.TARGET_UPDATED,
        target,
        actor,
        {"changed": ["methods"], "methodRemoved": method.id, "promoted": promoted},
    )
    return await get_target(target.id), promoted


async def set_primary(*, target_id: str, method_id: str, actor: str | None) -> Target:
    target = await get_target(target_id)
    method = find_method(target, method_id)
    if not method.is_active:
        raise ValidationError("an inactive method cannot be primary", field="methodId")
    await CommunicationMethod.filter(target_id=target.id).update(is_primary=False)
    await CommunicationMethod.filter(id=method.id).update(is_primary=True)
    await record_target_event(
        events.TARGET_UPDATED, target, actor, {"changed": ["primaryMethod"], "methodId": method.id}
    )
    return await get_target(target.id)
