"""Targets domain logic: validation, creation, reads, the credential vault and connection grants.

No strawberry here. Write functions expect the caller (the resolver) to own the transaction.
Secrets (passwords, private keys, passphrases) are validated, encrypted and stored here; they
leave the service only through :meth:`TargetService.resolve`, which the engine reaches with a
connection grant at connect time. They never go into events, logs or GraphQL types.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncssh
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery
from tortoise.transactions import in_transaction

from opsconductor_shared.crypto import DecryptionError, KeyRing
from opsconductor_shared.errors import DomainError, NotFoundError, ValidationError
from opsconductor_shared.events import EventEnvelope, new_uuid7, record_event
from opsconductor_shared.logging import get_logger
from opsconductor_targets.models import (
    CommunicationMethod,
    Counter,
    Credential,
    GrantKey,
    Outbox,
    Target,
    TargetTag,
)
from opsconductor_targets.queries import active_credential, get_targets, primary_method
from opsconductor_targets.settings import Settings

log = get_logger("opsconductor.targets")

# method type -> default port (legacy getDefaultCommunicationMethodConfig)
METHOD_PORTS: dict[str, int] = {
    "ssh": 22,
    "winrm": 5985,
    "snmp": 161,
    "telnet": 23,
    "rest_api": 80,
    "smtp": 587,
    "mysql": 3306,
    "postgresql": 5432,
    "mssql": 1433,
    "oracle": 1521,
    "sqlite": 0,
    "mongodb": 27017,
    "redis": 6379,
    "elasticsearch": 9200,
}
METHOD_TYPES = tuple(METHOD_PORTS)
# Non-secret defaults merged under the caller's config (legacy defaults minus host/port/secrets).
METHOD_CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "ssh": {"timeout": 30},
    "winrm": {"timeout": 30, "transport": "ntlm", "scheme": "http"},
    "snmp": {"timeout": 10, "version": "2c", "retries": 3},
    "telnet": {"timeout": 30, "encoding": "utf-8", "newline": "CRLF"},
    "rest_api": {"timeout": 30, "protocol": "http", "base_path": "/", "verify_ssl": True},
    "smtp": {"timeout": 30, "use_tls": True, "use_ssl": False, "auth_required": True},
    "mysql": {"charset": "utf8mb4", "connection_pool_size": 5},
    "postgresql": {"database": "postgres", "ssl_mode": "prefer", "connection_pool_size": 5},
    "mssql": {"database": "master", "connection_pool_size": 5},
    "oracle": {"connection_pool_size": 5},
    "sqlite": {"journal_mode": "WAL", "synchronous": "NORMAL"},
    "mongodb": {"database": "admin", "auth_source": "admin", "ssl": False, "connection_pool_size": 10},
    "redis": {"database": 0, "ssl": False, "connection_pool_size": 10},
    "elasticsearch": {"ssl": False, "verify_certs": True, "connection_pool_size": 10},
}
CREDENTIAL_TYPES = ("password", "ssh_key", "snmp_community", "api_key", "api_token")
# which credential types a method accepts (methods not listed accept any type)
METHOD_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "ssh": ("password", "ssh_key"),
    "winrm": ("password",),
    "snmp": ("snmp_community", "password"),
}
ENVIRONMENTS = ("production", "staging", "development", "testing")
STATUSES = ("active", "inactive", "maintenance")
HEALTH_STATUSES = ("unknown", "healthy", "warning", "critical")
# config keys that look like secrets: those belong in the credential, never in config
_SECRET_KEY_RE = re.compile(
    r"pass(word|phrase)?|secret|private_?key|token|community|api_?key|credential", re.IGNORECASE
)
_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
MAX_TAGS = 50


def now() -> datetime:
    return datetime.now(UTC)


# ---- inputs (plain dataclasses; the GraphQL layer fills them) --------------------------------


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


@dataclass
class TargetQuery:
    search: str | None = None
    os_type: str | None = None
    environment: str | None = None
    status: str | None = None
    tags: list[str] | None = None


class HostAlreadyInUse(DomainError):
    def __init__(self, host: str, target_id: str) -> None:
        super().__init__(f"host {host!r} is already used by another active target")
        self.host = host
        self.target_id = target_id


class GrantRejected(DomainError):
    """A connection grant is malformed, forged, expired, or does not cover the target."""


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


def _validate_sqlite_path(value: str, field_name: str) -> str:
    path = value.strip()
    if not path or len(path) > 255 or any(ord(c) < 32 for c in path):
        raise ValidationError(
            "sqlite methods need a database file path (1-255 characters) as host", field=field_name
        )
    return path


def _validate_config(config: dict[str, Any] | None, method_type: str, field_name: str) -> dict[str, Any]:
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
    merged = dict(METHOD_CONFIG_DEFAULTS.get(method_type, {}))
    merged.update({k: v for k, v in config.items() if k not in ("host", "port")})
    return merged


def _check_private_key(private_key: str, passphrase: str | None, prefix: str) -> None:
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


def validate_credential(cred: NewCredential, method_type: str, prefix: str) -> dict[str, Any]:
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
        _check_private_key(cred.private_key, cred.passphrase, prefix)
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


def validate_new_target(new: NewTarget) -> PlannedTarget:
    """Every rule that needs no database; raises ValidationError naming the offending input."""
    name = (new.name or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("name must be 1-100 characters", field="name")
    os_type = (new.os_type or "").strip().lower()
    if not 1 <= len(os_type) <= 50 or not re.fullmatch(r"[a-z0-9_.-]+", os_type):
        raise ValidationError("osType must be 1-50 characters of a-z, 0-9, '_', '-', '.'", field="osType")
    environment = (new.environment or "development").strip().lower()
    if environment not in ENVIRONMENTS:
        raise ValidationError(f"environment must be one of {', '.join(ENVIRONMENTS)}", field="environment")
    status = (new.status or "active").strip().lower()
    if status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}", field="status")
    description = new.description.strip() if new.description else None
    if description and len(description) > 10_000:
        raise ValidationError("description is longer than 10000 characters", field="description")
    tags: list[str] = []
    for tag in new.tags or []:
        clean = tag.strip()
        if not 1 <= len(clean) <= 50:
            raise ValidationError("tags must be 1-50 characters each", field="tags")
        if clean.lower() not in (t.lower() for t in tags):
            tags.append(clean)
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"at most {MAX_TAGS} tags", field="tags")
    if not new.methods:
        raise ValidationError("a target needs at least one communication method", field="methods")
    if len(new.methods) > 20:
        raise ValidationError("at most 20 communication methods", field="methods")
    flagged = [i for i, m in enumerate(new.methods) if m.is_primary]
    if len(flagged) > 1:
        raise ValidationError("exactly one communication method may be primary", field="methods")
    primary = flagged[0] if flagged else 0
    methods: list[PlannedMethod] = []
    for i, m in enumerate(new.methods):
        prefix = f"methods[{i}]"
        if m.type not in METHOD_PORTS:
            raise ValidationError(f"unknown method type {m.type!r}", field=f"{prefix}.type")
        if m.type == "sqlite":
            host = _validate_sqlite_path(m.host or "", f"{prefix}.host")
        else:
            host = normalize_host(m.host, f"{prefix}.host")
        port = validate_port(m.port, m.type, f"{prefix}.port")
        priority = m.priority if m.priority is not None else i + 1
        if not 1 <= priority <= 1000:
            raise ValidationError("priority must be between 1 and 1000", field=f"{prefix}.priority")
        config = _validate_config(m.config, m.type, f"{prefix}.config")
        if m.type == "ssh" and m.credential is None:
            raise ValidationError(
                "an ssh method needs a credential (password or ssh_key)", field=f"{prefix}.credential"
            )
        secret = validate_credential(m.credential, m.type, f"{prefix}.credential") if m.credential else None
        methods.append(
            PlannedMethod(
                type=m.type,
                host=host,
                port=port,
                is_primary=i == primary,
                priority=priority,
                config=config,
                credential=m.credential,
                secret=secret,
            )
        )
    return PlannedTarget(
        name=name,
        os_type=os_type,
        environment=environment,
        description=description,
        tags=tags,
        status=status,
        methods=methods,
    )


# ---- connection grants ------------------------------------------------------------------------

GRANT_PREFIX = "ocg1"


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class GrantClaims:
    target_ids: list[str]
    expires_at: float
    issued_at: float
    purpose: str
    grant_id: str
    methods: dict[str, str]  # target id -> method id, when not the primary method


class GrantSigner:
    """HMAC-SHA256 signed grants: ``ocg1.<kid>.<b64url(json claims)>.<b64url(mac)>``.

    The HMAC keys sit in the ``grant_keys`` table encrypted with the key ring, so every replica
    of the service verifies every other's grants and keys rotate like credentials do.
    """

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._keys: dict[str, bytes] = {}
        self._active: str | None = None

    async def ensure_key(self) -> None:
        row = await GrantKey.filter(active=True).order_by("-created_at").first()
        if row is None:
            kid = secrets.token_hex(6)
            row = await GrantKey.create(
                kid=kid, key_encrypted=self.keyring.encrypt(os.urandom(32), aad=f"grant-key:{kid}".encode())
            )
        self._load(row)
        self._active = row.kid

    def _load(self, row: GrantKey) -> bytes:
        key = self.keyring.decrypt(row.key_encrypted, aad=f"grant-key:{row.kid}".encode())
        self._keys[row.kid] = key
        return key

    async def _key(self, kid: str) -> bytes | None:
        if kid in self._keys:
            return self._keys[kid]
        row = await GrantKey.get_or_none(kid=kid, active=True)
        return self._load(row) if row is not None else None

    async def sign(self, claims: dict[str, Any]) -> str:
        if self._active is None:
            await self.ensure_key()
        assert self._active is not None
        body = _b64e(json.dumps(claims, separators=(",", ":")).encode())
        signed = f"{GRANT_PREFIX}.{self._active}.{body}"
        mac = hmac.new(self._keys[self._active], signed.encode(), hashlib.sha256).digest()
        return f"{signed}.{_b64e(mac)}"

    async def verify(self, grant: str, *, at: float | None = None) -> GrantClaims:
        parts = grant.split(".") if isinstance(grant, str) else []
        if len(parts) != 4 or parts[0] != GRANT_PREFIX or not re.fullmatch(r"[0-9a-f]{1,32}", parts[1]):
            raise GrantRejected("malformed connection grant")
        key = await self._key(parts[1])
        if key is None:
            raise GrantRejected("connection grant signed by an unknown key")
        expected = hmac.new(key, f"{parts[0]}.{parts[1]}.{parts[2]}".encode(), hashlib.sha256).digest()
        try:
            given = _b64d(parts[3])
        except ValueError:
            raise GrantRejected("malformed connection grant") from None
        if not hmac.compare_digest(expected, given):
            raise GrantRejected("connection grant signature is invalid")
        try:
            claims = json.loads(_b64d(parts[2]))
            result = GrantClaims(
                target_ids=[str(t) for t in claims["tid"]],
                expires_at=float(claims["exp"]),
                issued_at=float(claims["iat"]),
                purpose=str(claims.get("pur", "")),
                grant_id=str(claims.get("jti", "")),
                methods={str(k): str(v) for k, v in (claims.get("m") or {}).items()},
            )
        except (ValueError, KeyError, TypeError):
            raise GrantRejected("malformed connection grant") from None
        if result.expires_at <= (time.time() if at is None else at):
            raise GrantRejected("connection grant expired")
        return result


# ---- the service ------------------------------------------------------------------------------


@dataclass
class IssuedGrant:
    grant: str
    resolver_url: str
    expires_at: datetime
    targets: list[tuple[Target, CommunicationMethod]]


@dataclass
class ConnectionTestOutcome:
    ok: bool
    latency_ms: float | None
    message: str
    method_type: str | None
    method_id: str | None = None


class TargetService:
    def __init__(self, settings: Settings, keyring: KeyRing) -> None:
        self.settings = settings
        self.keyring = keyring
        self.grants = GrantSigner(keyring)

    async def startup(self) -> None:
        await self.grants.ensure_key()
        with contextlib.suppress(IntegrityError):  # another replica created it first
            await Counter.get_or_create(name="targets", defaults={"value": 0})

    # -- create ------------------------------------------------------------------------------

    async def _next_serial(self) -> str:
        # The UPDATE takes the counter row's lock until commit, which also serializes the host check
        # below between concurrent creates (on SQLite the write lock does the same).
        while True:
            if not await Counter.filter(name="targets").update(value=F("value") + 1):
                await Counter.create(name="targets", value=1)
            counter = await Counter.get(name="targets")
            serial = f"TGT-{counter.value:06d}"
            if not await Target.filter(serial=serial).exists():  # imported legacy serials
                return serial

    async def create_target(self, new: NewTarget, *, actor: str | None = None) -> Target:
        plan = validate_new_target(new)
        serial = await self._next_serial()
        hosts = sorted({m.host for m in plan.methods if m.type != "sqlite"})
        if hosts:
            clash = (
                await CommunicationMethod.filter(host__in=hosts, is_active=True, target__is_active=True)
                .exclude(type="sqlite")
                .first()
            )
            if clash is not None:
                raise HostAlreadyInUse(clash.host, str(clash.target_id))  # type: ignore[attr-defined]
        target_id = str(new_uuid7())
        target = await Target.create(
            id=target_id,
            serial=serial,
            uuid=uuid.UUID(target_id),
            name=plan.name,
            description=plan.description,
            os_type=plan.os_type,
            environment=plan.environment,
            status=plan.status,
            tags=plan.tags,
        )
        for tag in {t.lower() for t in plan.tags}:
            await TargetTag.create(target=target, tag=tag)
        summary = []
        for pm in plan.methods:
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
                    secret_encrypted=self.keyring.encrypt(
                        json.dumps(pm.secret).encode(), aad=cred_id.encode()
                    ),
                )
                entry["credential"] = {"id": cred_id, "type": pm.credential.type}
            summary.append(entry)
        # The event carries metadata only: no secret, no username.
        await record_event(
            Outbox,
            EventEnvelope(
                type="targets.target_created",
                source="targets",
                subject=target.id,
                actor=actor,
                data={
                    "id": target.id,
                    "serial": serial,
                    "name": plan.name,
                    "osType": plan.os_type,
                    "environment": plan.environment,
                    "status": plan.status,
                    "tags": plan.tags,
                    "methods": summary,
                },
            ),
        )
        log.info("target created", target_id=target.id, serial=serial, actor=actor)
        return (await self.get_targets([target.id]))[0]

    # -- reads -------------------------------------------------------------------------------

    @staticmethod
    async def get_targets(ids: Sequence[str], *, include_inactive: bool = False) -> list[Target]:
        return await get_targets(ids, include_inactive=include_inactive)

    @staticmethod
    async def list_targets(
        query: TargetQuery, *, first: int, after: str | None
    ) -> tuple[list[Target], bool, int]:
        base = Target.filter(is_active=True)
        if query.search:
            term = query.search.strip()
            host_match = Subquery(CommunicationMethod.filter(host__icontains=term).values("target_id"))
            base = base.filter(
                Q(name__icontains=term)
                | Q(serial__icontains=term)
                | Q(description__icontains=term)
                | Q(id__in=host_match)
            )
        if query.os_type:
            base = base.filter(os_type=query.os_type.strip().lower())
        if query.environment:
            base = base.filter(environment=query.environment.strip().lower())
        if query.status:
            base = base.filter(status=query.status)
        for tag in query.tags or []:
            base = base.filter(id__in=Subquery(TargetTag.filter(tag=tag.strip().lower()).values("target_id")))
        total = await base.count()
        page = base.filter(id__gt=after) if after else base
        rows = await page.order_by("id").limit(first + 1).prefetch_related("methods__credentials")
        return rows[:first], len(rows) > first, total

    # -- the vault -----------------------------------------------------------------------------

    def decrypt(self, credential: Credential) -> dict[str, Any]:
        return json.loads(self.keyring.decrypt(credential.secret_encrypted, aad=credential.id.encode()))

    async def issue_grant(
        self,
        target_ids: Sequence[str],
        purpose: str,
        *,
        ttl_seconds: int | None = None,
        methods: dict[str, str] | None = None,
    ) -> IssuedGrant:
        """A signed, expiring grant to fetch these targets' credentials (NotFoundError if one is missing)."""
        ids = list(dict.fromkeys(str(i) for i in target_ids))
        if len(ids) > self.settings.max_grant_targets:
            raise ValidationError(
                f"at most {self.settings.max_grant_targets} targets per grant", field="targetIds"
            )
        found = await self.get_targets(ids)
        by_id = {t.id: t for t in found}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise NotFoundError(f"target {missing[0]} not found", id=missing[0])
        listed: list[tuple[Target, CommunicationMethod]] = []
        for target in found:
            chosen = None
            if methods and target.id in methods:
                chosen = next((m for m in target.methods if m.id == methods[target.id] and m.is_active), None)
            else:
                chosen = primary_method(target)
            if chosen is None:
                raise NotFoundError(f"target {target.id} has no usable communication method", id=target.id)
            listed.append((target, chosen))
        issued = time.time()
        expires = issued + (ttl_seconds or self.settings.grant_ttl_seconds)
        claims: dict[str, Any] = {
            "tid": ids,
            "iat": int(issued),
            "exp": int(expires),
            "pur": purpose,
            "jti": secrets.token_hex(8),
        }
        if methods:
            claims["m"] = methods
        grant = await self.grants.sign(claims)
        log.info("connection grant issued", grant_id=claims["jti"], purpose=purpose, targets=len(ids))
        return IssuedGrant(
            grant=grant,
            resolver_url=self.settings.resolver_url,
            expires_at=datetime.fromtimestamp(int(expires), UTC),
            targets=listed,
        )

    async def resolve(self, grant: str, target_id: str) -> dict[str, Any]:
        """The decrypted credential for one target of a valid grant (GrantRejected otherwise)."""
        claims = await self.grants.verify(grant)
        if target_id not in claims.target_ids:
            raise GrantRejected("the connection grant does not cover this target")
        found = await self.get_targets([target_id])
        if not found:
            raise GrantRejected("target not available")
        target = found[0]
        method_id = claims.methods.get(target_id)
        method = (
            next((m for m in target.methods if m.id == method_id and m.is_active), None)
            if method_id
            else primary_method(target)
        )
        credential = active_credential(method) if method is not None else None
        if credential is None:
            raise GrantRejected("target has no credential for its communication method")
        try:
            secret = self.decrypt(credential)
        except DecryptionError:
            log.error(
                "credential does not decrypt (key ring mismatch?)",
                target_id=target_id,
                credential_id=credential.id,
            )
            raise GrantRejected("credential unavailable") from None
        log.info(
            "credential resolved",
            grant_id=claims.grant_id,
            purpose=claims.purpose,
            target_id=target_id,
            credential_id=credential.id,
        )
        return {
            "username": credential.username,
            "password": secret.get("password"),
            "privateKey": secret.get("privateKey"),
            "passphrase": secret.get("passphrase"),
        }

    # -- connection test -----------------------------------------------------------------------

    async def test_connection(
        self, engine: Any, target_id: str, method_id: str | None
    ) -> ConnectionTestOutcome:
        found = await self.get_targets([target_id])
        if not found:
            return ConnectionTestOutcome(False, None, f"target {target_id} not found", None)
        target = found[0]
        if method_id:
            method = next((m for m in target.methods if m.id == method_id and m.is_active), None)
            if method is None:
                return ConnectionTestOutcome(
                    False, None, f"communication method {method_id} not found on this target", None
                )
        else:
            method = primary_method(target)
            if method is None:
                return ConnectionTestOutcome(False, None, "target has no active communication method", None)
        if engine is None:
            return ConnectionTestOutcome(
                False, None, "execution engine not available", method.type, method.id
            )
        from opsconductor_ray.protocol import CredentialRef, TargetSpec  # deferred: the engine is optional

        issued = await self.issue_grant(
            [target.id],
            "connection-test",
            ttl_seconds=self.settings.test_grant_ttl_seconds,
            methods={target.id: method.id},
        )
        spec = TargetSpec(
            target_id=target.id, name=target.name, host=method.host, port=method.port, method=method.type
        )
        try:
            result = await asyncio.wait_for(
                engine.test_connection(
                    spec, CredentialRef(resolver_url=issued.resolver_url, grant=issued.grant)
                ),
                self.settings.test_timeout_seconds,
            )
        except TimeoutError:
            outcome = ConnectionTestOutcome(
                False,
                None,
                f"connection test timed out after {self.settings.test_timeout_seconds:g}s",
                method.type,
                method.id,
            )
        except Exception as exc:
            log.warning(
                "connection test failed in the engine", target_id=target.id, error_type=type(exc).__name__
            )
            outcome = ConnectionTestOutcome(
                False, None, f"execution engine error: {type(exc).__name__}: {exc}", method.type, method.id
            )
        else:
            outcome = ConnectionTestOutcome(
                bool(result.ok), result.latency_ms, str(result.message), method.type, method.id
            )
        async with in_transaction():
            await self._record_health(target, "healthy" if outcome.ok else "critical")
        return outcome

    @staticmethod
    async def _record_health(target: Target, health: str) -> None:
        if target.health_status == health:
            return
        previous = target.health_status
        await Target.filter(id=target.id).update(health_status=health, updated_at=now())
        target.health_status = health
        await record_event(
            Outbox,
            EventEnvelope(
                type="targets.target_health_changed",
                source="targets",
                subject=target.id,
                data={"id": target.id, "healthStatus": health, "previous": previous},
            ),
        )
