"""Connection grants: HMAC-signed, expiring permission for the engine to fetch the credentials of
named targets (``issue_grant``), and the credential resolver that honours them (``resolve_many``,
served at ``POST /internal/credentials`` by ``routes.py``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as MetricCounter

from opsconductor_shared.crypto import DecryptionError, KeyRing
from opsconductor_shared.errors import NotFoundError, ValidationError
from opsconductor_shared.events import record_event
from opsconductor_shared.logging import get_logger
from opsconductor_targets import events
from opsconductor_targets.errors import AddressDenied, GrantRejected
from opsconductor_targets.models import CommunicationMethod, Credential, GrantKey, Outbox, Target
from opsconductor_targets.service.catalog import METHOD_CONFIG_DEFAULTS
from opsconductor_targets.service.exposure import winrm_insecurity
from opsconductor_targets.service.netpolicy import NetPolicy
from opsconductor_targets.service.reads import (
    GrantMethod,
    GrantTarget,
    active_credential,
    best_method,
    grant_method,
    grant_targets,
)
from opsconductor_targets.settings import Settings

if TYPE_CHECKING:
    from opsconductor_targets.service.deps import Deps

log = get_logger("opsconductor.targets")

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

    def __init__(self, keyring: KeyRing, *, metrics: CollectorRegistry | None = None) -> None:
        self.keyring = keyring
        self._keys: dict[str, bytes] = {}
        self._active: str | None = None
        self._issued = (
            MetricCounter(
                "opsc_connection_grants_issued",
                "Connection grants issued (each lets the engine fetch credentials of its targets)",
                ["purpose"],
                registry=metrics,
            )
            if metrics is not None
            else None
        )

    def count_issued(self, purpose: str) -> None:
        if self._issued is not None:
            self._issued.labels(purpose).inc()

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


@dataclass
class IssuedGrant:
    grant: str
    resolver_url: str
    expires_at: datetime
    targets: list[tuple[GrantTarget, GrantMethod]]


async def issue_grant(
    *,
    grants: GrantSigner,
    settings: Settings,
    target_ids: Sequence[str],
    purpose: str,
    ttl_seconds: int | None = None,
    methods: dict[str, str] | None = None,
    actor: str | None = None,
) -> IssuedGrant:
    """A signed, expiring grant to fetch these targets' credentials (NotFoundError if one is missing).

    The authoritative existence check of a run's targets: executions asks for the grant before it
    creates any row, and an unknown or deleted target answers NotFound here."""
    ids = list(dict.fromkeys(str(i) for i in target_ids))
    if len(ids) > settings.max_grant_targets:
        raise ValidationError(f"at most {settings.max_grant_targets} targets per grant", field="targetIds")
    found = await grant_targets(ids)  # a grant names methods, never secrets
    by_id = {t.id: t for t in found}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise NotFoundError(f"target {missing[0]} not found", id=missing[0])
    listed: list[tuple[GrantTarget, GrantMethod]] = []
    for target in found:
        chosen = grant_method(target, (methods or {}).get(target.id))
        if chosen is None:
            raise NotFoundError(f"target {target.id} has no usable communication method", id=target.id)
        listed.append((target, chosen))
    issued = time.time()
    expires = issued + (ttl_seconds or settings.grant_ttl_seconds)
    claims: dict[str, Any] = {
        "tid": ids,
        "iat": int(issued),
        "exp": int(expires),
        "pur": purpose,
        "jti": secrets.token_hex(8),
    }
    if methods:
        claims["m"] = methods
    grant = await grants.sign(claims)
    log.info("connection grant issued", grant_id=claims["jti"], purpose=purpose, targets=len(ids))
    grants.count_issued(purpose)
    await record_event(
        Outbox,
        events.connection_granted(
            grant_id=str(claims["jti"]),
            purpose=purpose,
            target_ids=ids,
            expires_at=datetime.fromtimestamp(int(expires), UTC).isoformat(),
            actor=actor,
        ),
    )
    return IssuedGrant(
        grant=grant,
        resolver_url=settings.resolver_url,
        expires_at=datetime.fromtimestamp(int(expires), UTC),
        targets=listed,
    )


async def resolve_many(
    *, deps: Deps, grant: str, target_ids: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Decrypted credentials for many targets of one grant, in a few queries.

    Returns (answers by target id, refusal message by target id): a target the grant does
    not cover, that is gone or has no usable credential is refused on its own; an invalid
    grant refuses them all (GrantRejected). The engine asks once per batch, not per target.
    """
    claims = await deps.grants.verify(grant)
    wanted = list(dict.fromkeys(str(t) for t in target_ids))
    covered = set(claims.target_ids)
    refused = {tid: "the connection grant does not cover this target" for tid in wanted if tid not in covered}
    # Only what answering needs: four columns of the targets (no model with a dozen parsed
    # datetimes per row), their active methods with credentials, then the host keys.
    by_id = {
        t.id: t
        for t in await Target.filter(id__in=[t for t in wanted if t in covered], is_active=True).only(
            "id", "serial", "name", "environment"
        )
    }
    methods: dict[str, list[CommunicationMethod]] = {}
    if by_id:
        for m in await CommunicationMethod.filter(target_id__in=list(by_id), is_active=True).prefetch_related(
            "credentials"
        ):
            methods.setdefault(m.target_id, []).append(m)  # type: ignore[attr-defined]
    chosen: dict[str, tuple[Target, CommunicationMethod, Credential]] = {}
    for tid in wanted:
        if tid in refused:
            continue
        target = by_id.get(tid)
        if target is None:
            refused[tid] = "target not available"
            continue
        method_id = claims.methods.get(tid)
        active = methods.get(tid, [])
        method = next((m for m in active if m.id == method_id), None) if method_id else best_method(active)
        credential = active_credential(method) if method is not None else None
        if method is None or credential is None:
            refused[tid] = "target has no credential for its communication method"
            continue
        if method.type == "winrm":  # rows written before the L5 rule are refused, not served
            problem = winrm_insecurity(method.config or {})
            if problem is not None:
                refused[tid] = problem[1]
                continue
        chosen[tid] = (target, method, credential)
    for tid, why in (
        await _denied_addresses(deps.netpolicy, [m for _, m, _ in chosen.values()], list(chosen))
    ).items():
        refused[tid] = why
        del chosen[tid]
    ssh = [(target, method) for target, method, _ in chosen.values() if method.type == "ssh"]
    known = await deps.host_keys.known_hosts_many(ssh)
    answers: dict[str, dict[str, Any]] = {}
    for tid, (_target, method, credential) in chosen.items():
        host_keys = known.get(method.id)
        if isinstance(host_keys, GrantRejected):
            refused[tid] = host_keys.message
            continue
        if method.type == "ssh" and not isinstance(host_keys, str):
            # never an SSH credential without the host key to verify (review H3)
            refused[tid] = "no verified SSH host key for this target"
            continue
        try:
            secret = deps.vault.decrypt(credential)
        except DecryptionError:
            log.error(
                "credential does not decrypt (key ring mismatch?)",
                target_id=tid,
                credential_id=credential.id,
            )
            refused[tid] = "credential unavailable"
            continue
        answer: dict[str, Any] = {
            "username": credential.username,
            "password": secret.get("password"),
            "privateKey": secret.get("privateKey"),
            "passphrase": secret.get("passphrase"),
        }
        if method.type == "winrm":
            # rows written before a setting existed get its default
            cfg = {**METHOD_CONFIG_DEFAULTS["winrm"], **(method.config or {})}
            answer["transport"] = str(cfg["transport"])
            answer["scheme"] = str(cfg["scheme"])
            answer["serverCertValidation"] = str(cfg["server_cert_validation"])
            # the engine refuses basic over http / unvalidated TLS unless told the method
            # opted in (L5); rows that break the rule were refused above
            answer["allowInsecure"] = bool(cfg.get("allow_insecure_basic") or cfg.get("allow_unverified_tls"))
        if isinstance(host_keys, str):
            answer["knownHosts"] = host_keys
        answers[tid] = answer
    log.info(
        "credentials resolved",
        grant_id=claims.grant_id,
        purpose=claims.purpose,
        targets=len(answers),
        refused=len(refused),
        target_ids=sorted(answers),
    )
    return answers, refused


async def _denied_addresses(
    netpolicy: NetPolicy, methods: Sequence[CommunicationMethod], keys: Sequence[str]
) -> dict[str, str]:
    """By key: why the method's address may not be connected to (network policy, M11)."""
    limit = asyncio.Semaphore(16)
    out: dict[str, str] = {}

    async def one(key: str, method: CommunicationMethod) -> None:
        if method.type == "sqlite":
            return
        async with limit:
            try:
                await netpolicy.check(method.host, method.port)
            except AddressDenied as exc:
                out[key] = exc.message

    await asyncio.gather(*(one(k, m) for k, m in zip(keys, methods, strict=True)))
    return out
