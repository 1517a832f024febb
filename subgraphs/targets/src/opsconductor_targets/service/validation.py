"""Input DTOs (plain dataclasses the GraphQL layer fills) and the rules that need no database.

Pure functions, unit-tested without a database. Parsing a private key is CPU work an attacker
could size (review H8): ``plan_target`` / ``plan_method`` / ``check_credential`` run it off the
event loop, bounded by ``ssh_key_check_timeout_seconds``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from opsconductor_shared.errors import ValidationError
from opsconductor_targets.service import keyparse
from opsconductor_targets.service.catalog import (
    CREDENTIAL_TYPES,
    ENVIRONMENTS,
    MAX_METHODS,
    MAX_TAGS,
    METHOD_CONFIG_DEFAULTS,
    METHOD_CONFIG_SPEC,
    METHOD_CREDENTIALS,
    METHOD_PORTS,
    STATUSES,
)
from opsconductor_targets.service.exposure import check_winrm_security
from opsconductor_targets.settings import Settings

_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
# config keys that look like secrets: those belong in the credential, never in config
_SECRET_KEY_RE = re.compile(
    r"pass(word|phrase)?|secret|private_?key|token|community|api_?key|credential", re.IGNORECASE
)


@dataclass
class NewCredential:
    type: str
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)


@dataclass
class NewMethod:
    type: str
    host: str
    port: int | None = None
    is_primary: bool | None = None
    priority: int | None = None
    config: dict[str, Any] | None = None
    credential: NewCredential | None = None


@dataclass
class NewTarget:
    name: str
    os_type: str
    methods: list[NewMethod]
    environment: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    status: str | None = None
    location: str | None = None
    data_center: str | None = None
    region: str | None = None
    serial: str | None = None  # importers only: keep a legacy serial
    uuid: str | None = None  # importers only: keep a legacy target_uuid


@dataclass
class TargetQuery:
    search: str | None = None
    os_type: str | None = None
    environment: str | None = None
    status: str | None = None
    tags: list[str] | None = None
    health: str | None = None
    method_type: str | None = None
    location: str | None = None
    sort_field: str = "id"
    descending: bool = False


@dataclass
class TargetPatch:
    """Basic fields to change; None means unchanged (empty string clears an optional text)."""

    name: str | None = None
    os_type: str | None = None
    environment: str | None = None
    status: str | None = None
    description: str | None = None
    location: str | None = None
    data_center: str | None = None
    region: str | None = None
    tags: list[str] | None = None
    add_tags: list[str] | None = None
    remove_tags: list[str] | None = None


@dataclass
class MethodPatch:
    host: str | None = None
    port: int | None = None
    config: dict[str, Any] | None = None
    priority: int | None = None
    is_active: bool | None = None
    credential: NewCredential | None = None


@dataclass
class DeviceTypeData:
    value: str | None = None
    label: str | None = None
    category: str | None = None
    description: str | None = None
    communication_methods: list[str] | None = None


# ---- validation (pure: unit-tested without a database) ----------------------------------------


def normalize_host(value: str, field_name: str = "host") -> str:
    """A hostname (RFC 1123 labels, lower-cased) or an IP address (normalized); else ValidationError."""
    if not isinstance(value, str):
        raise ValidationError("host must be a string", field=field_name)
    host = value.strip()
    if not host:
        raise ValidationError("host is required", field=field_name)
    if host != value or any(c.isspace() for c in host):
        raise ValidationError("host may not contain spaces", field=field_name)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253:
        raise ValidationError("host is longer than 253 characters", field=field_name)
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if not name or not all(_LABEL_RE.match(label) for label in labels):
        raise ValidationError(f"{value!r} is not a valid hostname or IP address", field=field_name)
    if labels[-1].isdigit():  # 999.1.1.1, 10.0.0: looks like an IP but is not one
        raise ValidationError(f"{value!r} is not a valid hostname or IP address", field=field_name)
    return name


def validate_port(port: int | None, method_type: str, field_name: str = "port") -> int:
    if port is None:
        return METHOD_PORTS[method_type]
    low = 0 if method_type == "sqlite" else 1
    if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
        raise ValidationError(f"port must be between {low} and 65535", field=field_name)
    return port


def validate_sqlite_path(value: str, field_name: str) -> str:
    path = value.strip()
    if not path or len(path) > 255 or any(ord(c) < 32 for c in path):
        raise ValidationError(
            "sqlite methods need a database file path (1-255 characters) as host", field=field_name
        )
    return path


def validate_config(config: dict[str, Any] | None, method_type: str, field_name: str) -> dict[str, Any]:
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValidationError("config must be a JSON object", field=field_name)

    def check(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if _SECRET_KEY_RE.search(str(key)):
                    raise ValidationError(
                        f"config key {path}{key!r} looks like a secret: put secrets in the "
                        "credential, config is not encrypted",
                        field=field_name,
                    )
                check(item, f"{path}{key}.")
        elif isinstance(value, list):
            for item in value:
                check(item, path)

    check(config, "")
    spec = METHOD_CONFIG_SPEC[method_type]
    merged = dict(METHOD_CONFIG_DEFAULTS.get(method_type, {}))
    for key, value in config.items():
        if key in ("host", "port"):
            continue  # legacy clients repeat them in config; the method's own fields win
        rule = spec.get(key)
        if rule is None:
            raise ValidationError(
                f"unknown {method_type} config key {key!r} (known: {', '.join(sorted(spec))})",
                field=f"{field_name}.{key}",
            )
        merged[key] = _check_config_value(value, rule, f"{field_name}.{key}")
    return merged


def _check_config_value(value: Any, rule: tuple[Any, ...], field_name: str) -> Any:
    kind = rule[0]
    if value is None:
        raise ValidationError("config values may not be null", field=field_name)
    if kind in ("int", "num"):
        ok_type = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type or not rule[1] <= value <= rule[2]:
            what = "an integer" if kind == "int" else "a number"
            raise ValidationError(f"must be {what} between {rule[1]} and {rule[2]}", field=field_name)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValidationError("must be true or false", field=field_name)
        return value
    if kind == "enum":
        choices = rule[1]
        if not isinstance(value, str) or value not in choices:
            raise ValidationError(f"must be one of {', '.join(choices)}", field=field_name)
        return value
    if not isinstance(value, str) or len(value) > rule[1] or any(ord(c) < 32 for c in value):
        raise ValidationError(f"must be a string of at most {rule[1]} characters", field=field_name)
    return value


@dataclass(frozen=True)
class KeyLimits:
    """Caps on the KDF work an encrypted private key may ask for (settings ssh_key_max_*)."""

    max_rounds: int = keyparse.DEFAULT_MAX_KDF_ROUNDS
    max_iterations: int = keyparse.DEFAULT_MAX_PBKDF2_ITERATIONS


def _check_private_key(private_key: str, passphrase: str | None, prefix: str, limits: KeyLimits) -> None:
    """Import the key (CPU work: call it off the event loop, see plan_method)."""
    try:  # refuse attacker-sized KDF work before any of it is done (review H8)
        keyparse.check_kdf_cost(
            private_key, max_rounds=limits.max_rounds, max_iterations=limits.max_iterations
        )
    except keyparse.KeyCostError as exc:
        raise ValidationError(f"privateKey refused: {exc}", field=f"{prefix}.privateKey") from None
    try:
        asyncssh.import_private_key(private_key, passphrase or None)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        text = str(exc)
        # asyncssh's messages describe the failure, never the key material.
        if "assphrase" in text or "decrypt" in text.lower() or isinstance(exc, asyncssh.KeyEncryptionError):
            raise ValidationError(
                f"the private key could not be decrypted: {text}", field=f"{prefix}.passphrase"
            ) from None
        raise ValidationError(
            f"privateKey is not a valid private key: {text}", field=f"{prefix}.privateKey"
        ) from None
    except Exception:  # any parser failure on hostile input is a validation failure
        raise ValidationError("privateKey is not a valid private key", field=f"{prefix}.privateKey") from None


def validate_credential(
    cred: NewCredential, method_type: str, prefix: str, limits: KeyLimits = KeyLimits()
) -> dict[str, Any]:
    """Check one credential; returns the secret JSON to encrypt."""
    if cred.type not in CREDENTIAL_TYPES:
        raise ValidationError(f"unknown credential type {cred.type!r}", field=f"{prefix}.type")
    allowed = METHOD_CREDENTIALS.get(method_type)
    if allowed is not None and cred.type not in allowed:
        raise ValidationError(
            f"a {method_type} method needs a credential of type {' or '.join(allowed)}",
            field=f"{prefix}.type",
        )
    username = (cred.username or "").strip()
    if len(username) > 255:
        raise ValidationError("username is longer than 255 characters", field=f"{prefix}.username")
    if not username and cred.type in ("password", "ssh_key"):
        raise ValidationError("username is required", field=f"{prefix}.username")
    if cred.type == "ssh_key":
        if not cred.private_key or not cred.private_key.strip():
            raise ValidationError("an ssh_key credential needs privateKey", field=f"{prefix}.privateKey")
        _check_private_key(cred.private_key, cred.passphrase, prefix, limits)
        return {"password": None, "privateKey": cred.private_key, "passphrase": cred.passphrase or None}
    if not cred.password:
        what = {
            "password": "password",
            "snmp_community": "the community string",
            "api_key": "the API key",
            "api_token": "the token",
        }[cred.type]
        raise ValidationError(
            f"a {cred.type} credential needs {what} in password", field=f"{prefix}.password"
        )
    return {"password": cred.password, "privateKey": None, "passphrase": None}


@dataclass
class PlannedMethod:
    type: str
    host: str
    port: int
    is_primary: bool
    priority: int
    config: dict[str, Any]
    credential: NewCredential | None
    secret: dict[str, Any] | None = field(default=None, repr=False)


@dataclass
class PlannedTarget:
    name: str
    os_type: str
    environment: str
    description: str | None
    tags: list[str]
    status: str
    methods: list[PlannedMethod]
    location: str | None = None
    data_center: str | None = None
    region: str | None = None


def clean_name(value: str | None) -> str:
    name = (value or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("name must be 1-100 characters", field="name")
    return name


def clean_os_type(value: str | None, field_name: str = "osType") -> str:
    os_type = (value or "").strip().lower()
    if not 1 <= len(os_type) <= 50 or not re.fullmatch(r"[a-z0-9_.-]+", os_type):
        raise ValidationError("osType must be 1-50 characters of a-z, 0-9, '_', '-', '.'", field=field_name)
    return os_type


def clean_environment(value: str | None) -> str:
    environment = (value or "development").strip().lower()
    if environment not in ENVIRONMENTS:
        raise ValidationError(f"environment must be one of {', '.join(ENVIRONMENTS)}", field="environment")
    return environment


def clean_status(value: str | None) -> str:
    status = (value or "active").strip().lower()
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
    return status


def clean_description(value: str | None) -> str | None:
    description = value.strip() if value else None
    if description and len(description) > 10_000:
        raise ValidationError("description is longer than 10000 characters", field="description")
    return description or None


def clean_place(value: str | None, field_name: str) -> str | None:
    text = value.strip() if value else None
    if text and (len(text) > 100 or any(ord(c) < 32 for c in text)):
        raise ValidationError(f"{field_name} must be at most 100 printable characters", field=field_name)
    return text or None


def clean_tags(values: Sequence[str] | None) -> list[str]:
    tags: list[str] = []
    for tag in values or []:
        clean = tag.strip()
        if not 1 <= len(clean) <= 50:
            raise ValidationError("tags must be 1-50 characters each", field="tags")
        if clean.lower() not in (t.lower() for t in tags):
            tags.append(clean)
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"at most {MAX_TAGS} tags", field="tags")
    return tags


def validate_method(
    m: NewMethod, prefix: str, default_priority: int, limits: KeyLimits = KeyLimits()
) -> PlannedMethod:
    """One method: type, host, port, priority, typed config, credential (is_primary decided by caller)."""
    if m.type not in METHOD_PORTS:
        raise ValidationError(f"unknown method type {m.type!r}", field=f"{prefix}.type")
    if m.type == "sqlite":
        host = validate_sqlite_path(m.host or "", f"{prefix}.host")
    else:
        host = normalize_host(m.host, f"{prefix}.host")
    port = validate_port(m.port, m.type, f"{prefix}.port")
    priority = m.priority if m.priority is not None else default_priority
    if not 1 <= priority <= 1000:
        raise ValidationError("priority must be between 1 and 1000", field=f"{prefix}.priority")
    config = validate_config(m.config, m.type, f"{prefix}.config")
    if m.type == "ssh" and m.credential is None:
        raise ValidationError(
            "an ssh method needs a credential (password or ssh_key)", field=f"{prefix}.credential"
        )
    check_winrm_security(m.type, config, f"{prefix}.config")
    secret = (
        validate_credential(m.credential, m.type, f"{prefix}.credential", limits) if m.credential else None
    )
    return PlannedMethod(
        type=m.type,
        host=host,
        port=port,
        is_primary=bool(m.is_primary),
        priority=priority,
        config=config,
        credential=m.credential,
        secret=secret,
    )


def validate_new_target(new: NewTarget, limits: KeyLimits = KeyLimits()) -> PlannedTarget:
    """Every rule that needs no database; raises ValidationError naming the offending input."""
    name = clean_name(new.name)
    os_type = clean_os_type(new.os_type)
    environment = clean_environment(new.environment)
    status = clean_status(new.status)
    description = clean_description(new.description)
    tags = clean_tags(new.tags)
    places = {f: clean_place(getattr(new, f), f) for f in ("location", "data_center", "region")}
    if not new.methods:
        raise ValidationError("a target needs at least one communication method", field="methods")
    if len(new.methods) > MAX_METHODS:
        raise ValidationError(f"at most {MAX_METHODS} communication methods", field="methods")
    flagged = [i for i, m in enumerate(new.methods) if m.is_primary]
    if len(flagged) > 1:
        raise ValidationError("exactly one communication method may be primary", field="methods")
    primary = flagged[0] if flagged else 0
    methods: list[PlannedMethod] = []
    for i, m in enumerate(new.methods):
        planned = validate_method(m, f"methods[{i}]", i + 1, limits)
        planned.is_primary = i == primary
        methods.append(planned)
    return PlannedTarget(
        name=name,
        os_type=os_type,
        environment=environment,
        description=description,
        tags=tags,
        status=status,
        methods=methods,
        **places,
    )


# ---- validation that may parse private keys: off the event loop, bounded (review H8) -----------


def key_limits(settings: Settings) -> KeyLimits:
    return KeyLimits(settings.ssh_key_max_kdf_rounds, settings.ssh_key_max_pbkdf2_iterations)


async def _off_loop(settings: Settings, fn: Callable[..., Any], *args: Any, field: str) -> Any:
    return await keyparse.off_loop(fn, *args, timeout=settings.ssh_key_check_timeout_seconds, field=field)


async def plan_target(*, new: NewTarget, settings: Settings) -> PlannedTarget:
    limits = key_limits(settings)
    if any(m.credential is not None and m.credential.private_key for m in new.methods):
        return await _off_loop(settings, validate_new_target, new, limits, field="methods")
    return validate_new_target(new, limits)


async def plan_method(
    *, new: NewMethod, prefix: str, default_priority: int, settings: Settings
) -> PlannedMethod:
    limits = key_limits(settings)
    if new.credential is not None and new.credential.private_key:
        return await _off_loop(
            settings,
            validate_method,
            new,
            prefix,
            default_priority,
            limits,
            field=f"{prefix}.credential.privateKey",
        )
    return validate_method(new, prefix, default_priority, limits)


async def check_credential(
    *, cred: NewCredential, method_type: str, prefix: str, settings: Settings
) -> dict[str, Any]:
    limits = key_limits(settings)
    if cred.private_key:
        return await _off_loop(
            settings, validate_credential, cred, method_type, prefix, limits, field=f"{prefix}.privateKey"
        )
    return validate_credential(cred, method_type, prefix, limits)
