"""Auth domain logic: signing keys, login, sessions, refresh rotation, service tokens.

No strawberry here. Functions write; the resolver owns the transaction.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from opsconductor_auth.guards import ServiceSecrets, not_held, snapshot_version
from opsconductor_auth.models import (
    ApiKey,
    Credential,
    LoginAttempt,
    Outbox,
    PasswordHistory,
    RefreshToken,
    Session,
    SigningKey,
)
from opsconductor_auth.settings import Settings
from opsconductor_shared.auth import (
    API_KEY_SID_PREFIX,
    BOOTSTRAP_ADMIN_ID,
    BOOTSTRAP_ADMIN_USERNAME,
    RevocationStore,
)
from opsconductor_shared.crypto import KeyRing
from opsconductor_shared.errors import DomainError, NotFoundError, ValidationError
from opsconductor_shared.events import EventEnvelope, record_event
from opsconductor_shared.logging import get_logger
from opsconductor_shared.settings import InsecureSettings

log = get_logger("opsconductor.auth")

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

# What each internal service may do with its service token (audience-bound, short-lived).
SERVICE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "users": ("auth:credentials:write",),
    "targets": ("targets:read",),
    "jobs": ("targets:read",),
    "executions": ("jobs:read", "targets:read", "targets:connect"),
    # runJob for each fire; the owner's status and permissions (users:read); the job's active runs
    "schedules": ("jobs:read", "jobs:execute", "executions:read", "users:read"),
    "auth": (),
}
SERVICE_TOKEN_MINUTES = 10


# A dummy hash so a login for an unknown user costs the same as for a known one.
@functools.cache
def _dummy_hash() -> str:
    """Made on first use, not at import (argon2 costs ~0.2 s of CPU)."""
    return _hasher.hash(secrets.token_hex(16))


def now() -> datetime:
    return datetime.now(UTC)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# ---- signing keys -----------------------------------------------------------------------------


class KeyManager:
    """RS256 signing keys stored encrypted in auth's database; JWKS lists every non-retired key.

    The newest active row is the current key. ``sign`` looks it up on every call (one indexed
    query on a tiny table), so a rotation made by ``opsconductor rotate-signing-key`` (another
    process) takes effect at once in every auth replica, without a restart.
    """

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._private: dict[str, Any] = {}

    async def ensure_key(self) -> None:
        if await self._current() is None:
            await self.rotate(retain_seconds=0)

    async def _current(self) -> SigningKey | None:
        return await SigningKey.filter(active=True, superseded_at=None).order_by("-created_at").first()

    def _load(self, row: SigningKey) -> Any:
        if row.kid not in self._private:
            pem = self.keyring.decrypt(row.private_key_encrypted, aad=row.kid.encode())
            self._private[row.kid] = serialization.load_pem_private_key(pem, password=None)
        return self._private[row.kid]

    async def rotate(self, *, retain_seconds: int) -> RotationResult:
        """Create a new current key. Earlier keys stay in JWKS (tokens they signed keep verifying)
        until they have been superseded for longer than ``retain_seconds`` (the longest lifetime of a
        token signed with them) and no live API key was signed with them; then they are retired:
        out of JWKS, private key erased."""
        at = now()
        await SigningKey.filter(active=True, superseded_at=None).update(superseded_at=at)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"k-{at:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        await SigningKey.create(
            kid=kid, private_key_encrypted=self.keyring.encrypt(pem, aad=kid.encode()), public_jwk=jwk
        )
        retired = []
        cutoff = at - timedelta(seconds=retain_seconds)
        for old in await SigningKey.filter(active=True, superseded_at__lte=cutoff):
            # API keys live for months and carry the kid of the key current when they were made.
            in_use = await ApiKey.filter(
                revoked_at=None,
                expires_at__gt=at,
                created_at__gte=old.created_at,
                created_at__lt=old.superseded_at,
            ).exists()
            if in_use:
                continue
            old.active = False
            old.private_key_encrypted = ""
            await old.save(update_fields=["active", "private_key_encrypted"])
            self._private.pop(old.kid, None)
            retired.append(old.kid)
        listed = [r.kid for r in await SigningKey.filter(active=True).order_by("-created_at")]
        return RotationResult(kid=kid, listed=listed, retired=retired)

    async def jwks(self) -> dict[str, Any]:
        rows = await SigningKey.filter(active=True).order_by("-created_at")
        return {"keys": [r.public_jwk for r in rows]}

    async def sign(self, claims: dict[str, Any]) -> str:
        row = await self._current()
        if row is None:
            raise RuntimeError("no signing key: auth has not started")
        return jwt.encode(claims, self._load(row), algorithm="RS256", headers={"kid": row.kid})


@dataclass(frozen=True)
class RotationResult:
    kid: str  # the new current key
    listed: list[str]  # what JWKS lists now, newest first
    retired: list[str]  # removed from JWKS by this rotation


def token_retention_seconds(settings: Settings) -> int:
    """How long a superseded key must stay in JWKS: the longest access/service token lifetime + 1 min."""
    return max(settings.access_token_minutes, SERVICE_TOKEN_MINUTES) * 60 + 60


# ---- tokens -----------------------------------------------------------------------------------


@dataclass
class IssuedTokens:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    credential: Credential
    session_id: str


class LoginFailed(DomainError):
    """Uniform answer for unknown user and wrong password."""


class AccountLocked(DomainError):
    def __init__(self, until: datetime) -> None:
        super().__init__("account locked after repeated failed logins")
        self.until = until


class AccountDisabled(DomainError):
    pass


class InvalidRefresh(DomainError):
    pass


@dataclass(frozen=True)
class PasswordCheck:
    """A login's password verification, done before its transaction (see ``AuthService.check_password``)."""

    hash_seen: str | None  # the stored hash it was verified against (None: no such user)
    ok: bool
    new_hash: str | None = None  # argon2id rehash of a legacy/outdated hash, made outside the transaction


class AuthService:
    def __init__(
        self,
        settings: Settings,
        keys: KeyManager,
        revocations: RevocationStore,
        service_secrets: ServiceSecrets | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.revocations = revocations
        self.service_secrets = service_secrets or ServiceSecrets.from_settings(settings, SERVICE_PERMISSIONS)

    async def _access_claims(self, cred: Credential, session_id: str) -> tuple[str, datetime]:
        issued = now()
        expires = issued + timedelta(minutes=self.settings.access_token_minutes)
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": cred.user_id,
            "kind": "user",
            "username": cred.username,
            "roles": list(cred.roles),
            "permissions": list(cred.permissions),
            "sid": session_id,
            "jti": uuid.uuid4().hex,
            "iat": int(issued.timestamp()),
            "nbf": int(issued.timestamp()) - 5,
            "exp": int(expires.timestamp()),
        }
        return await self.keys.sign(claims), expires

    async def _ghost_lock(self, username: str) -> datetime | None:
        """When an unknown username "locks", as a real account would after the same failures.

        Without this, `AccountLocked` after N guesses would tell an attacker the name exists. The
        failed attempts recorded for the name within the lockout window stand in for the counter.
        """
        window_start = now() - timedelta(minutes=self.settings.lockout_minutes)
        failures = (
            await LoginAttempt.filter(username=username[:100], reason="unknown_user", at__gte=window_start)
            .order_by("at")
            .limit(self.settings.lockout_threshold)
            .values_list("at", flat=True)
        )
        if len(failures) < self.settings.lockout_threshold:
            return None
        until = failures[-1] + timedelta(minutes=self.settings.lockout_minutes)
        return until if until > now() else None

    async def _new_refresh(self, session: Session) -> str:
        raw = secrets.token_urlsafe(32)
        await RefreshToken.create(id=uuid.uuid4(), session=session, token_hash=_sha256(raw))
        return raw

    async def check_password(self, username: str, password: str) -> PasswordCheck:
        """A login's first step, before (outside) its transaction: argon2 runs in a thread while no
        transaction, row lock or (SQLite) connection lock is held, so one slow login never stalls
        auth's other database work. Every login verifies exactly one hash, whatever follows
        (unknown name: a dummy hash; locked account: its own hash), so the answer's timing tells
        nothing about the name."""
        cred = await Credential.get_or_none(username=username)
        hashed = cred.password_hash if cred is not None else None
        ok = await _verify_async(hashed or _dummy_hash(), password) and hashed is not None
        new_hash = None
        if ok and hashed is not None and (is_legacy_hash(hashed) or _hasher.check_needs_rehash(hashed)):
            # Legacy bcrypt (imported from the monolith) or old argon2 parameters: rehash now,
            # while the clear password is at hand; the login's commit stores it.
            new_hash = await asyncio.to_thread(hash_password, password)
        return PasswordCheck(hashed, ok, new_hash)

    async def login(
        self,
        username: str,
        password: str,
        *,
        ip: str | None,
        user_agent: str | None,
        check: PasswordCheck | None = None,
    ) -> IssuedTokens:
        """The login's transaction (the caller's), after :meth:`check_password` (done here if not given)."""
        if check is None:
            check = await self.check_password(username, password)
        # The row is locked for the login's transaction (the caller's): a deactivation being
        # applied (its sessions already on the revocation list) makes this wait for its commit and
        # see the account disabled, instead of starting a session that revoke_all never saw; and
        # concurrent wrong passwords count one after another towards the lockout.
        cred = await Credential.select_for_update().get_or_none(username=username)
        if cred is not None and cred.password_hash is not None and cred.password_hash != check.hash_seen:
            # The password changed between the check and the lock (rare): verify against the new one.
            check = PasswordCheck(cred.password_hash, await _verify_async(cred.password_hash, password))

        async def attempt(success: bool, reason: str) -> None:
            await LoginAttempt.create(
                username=username[:100],
                user_id=cred.user_id if cred else None,
                success=success,
                reason=reason,
                ip_address=ip,
                user_agent=user_agent,
            )

        if cred is None or cred.password_hash is None:
            until = await self._ghost_lock(username)
            if until is not None:
                await attempt(False, "locked")
                raise AccountLocked(until)
            await attempt(False, "unknown_user")
            raise LoginFailed("invalid username or password")
        if cred.locked_until and cred.locked_until > now():
            await attempt(False, "locked")
            raise AccountLocked(cred.locked_until)
        if not check.ok:
            cred.failed_logins += 1
            if cred.failed_logins >= self.settings.lockout_threshold:
                cred.locked_until = now() + timedelta(minutes=self.settings.lockout_minutes)
                cred.failed_logins = 0
            await cred.save(update_fields=["failed_logins", "locked_until", "updated_at"])
            await attempt(False, "bad_password")
            raise LoginFailed("invalid username or password")
        if not cred.is_active:
            await attempt(False, "disabled")
            raise AccountDisabled("account is disabled")
        if check.new_hash is not None:
            cred.password_hash = check.new_hash
        cred.failed_logins = 0
        cred.locked_until = None
        cred.last_login_at = now()
        await cred.save()
        session = await Session.create(
            id=uuid.uuid4(),
            user_id=cred.user_id,
            last_activity_at=now(),
            expires_at=now() + timedelta(days=self.settings.refresh_token_days),
            ip_address=ip,
            user_agent=user_agent,
        )
        await attempt(True, "ok")
        await record_event(
            Outbox,
            EventEnvelope(
                type="auth.login_succeeded",
                source="auth",
                subject=cred.user_id,
                actor=cred.user_id,
                data={"sessionId": str(session.id), "ip": ip},
            ),
        )
        access, expires = await self._access_claims(cred, str(session.id))
        return IssuedTokens(access, await self._new_refresh(session), expires, cred, str(session.id))

    async def refresh(self, raw: str) -> IssuedTokens:
        token = await RefreshToken.get_or_none(token_hash=_sha256(raw)).prefetch_related("session")
        if token is None:
            raise InvalidRefresh("unknown refresh token")
        session: Session = token.session
        if token.used_at is not None:
            # A rotated token came back: someone holds a copy. End the whole session.
            await self.revoke_session(session, "refresh_token_reuse")
            raise InvalidRefresh("refresh token reuse detected; the session was revoked")
        if not self.is_active(session):
            raise InvalidRefresh("session ended")
        cred = await Credential.get_or_none(user_id=session.user_id)
        if cred is None or not cred.is_active:
            raise InvalidRefresh("account unavailable")
        # Claim the token atomically: of two concurrent refreshes with one token exactly one
        # updates the row (the other waits for its commit on PostgreSQL, then matches nothing) and
        # the loser is treated as the reuse it is.
        claimed = await RefreshToken.filter(id=token.id, used_at=None).update(used_at=now())
        if claimed != 1:
            await self.revoke_session(session, "refresh_token_reuse")
            raise InvalidRefresh("refresh token reuse detected; the session was revoked")
        session.last_activity_at = now()
        await session.save(update_fields=["last_activity_at"])
        access, expires = await self._access_claims(cred, str(session.id))
        return IssuedTokens(access, await self._new_refresh(session), expires, cred, str(session.id))

    async def revoke_session(self, session: Session, reason: str) -> None:
        if session.revoked_at is None:
            session.revoked_at = now()
            session.revoked_reason = reason
            await session.save(update_fields=["revoked_at", "revoked_reason"])
        await self.revocations.revoke_session(str(session.id), self.settings.access_token_minutes * 60 + 60)
        await record_event(
            Outbox,
            EventEnvelope(
                type="auth.session_revoked",
                source="auth",
                subject=session.user_id,
                data={"sessionId": str(session.id), "reason": reason},
            ),
        )

    # -- sessions (legacy sliding-inactivity semantics) ---------------------------------------------

    def idle_deadline(self, session: Session) -> datetime:
        return min(
            session.last_activity_at + timedelta(minutes=self.settings.idle_timeout_minutes),
            session.expires_at,
        )

    def is_active(self, session: Session) -> bool:
        return session.revoked_at is None and self.idle_deadline(session) > now()

    async def session_of(self, session_id: str, *, user_id: str | None) -> Session:
        """The session, if it belongs to ``user_id`` (``None``: any user's, for admins)."""
        try:
            session = await Session.get_or_none(id=uuid.UUID(session_id))
        except ValueError:
            session = None
        if session is None or (user_id is not None and session.user_id != user_id):
            raise NotFoundError(f"session {session_id} not found", id=session_id)
        return session

    async def extend(self, session_id: str) -> Session:
        session = await Session.get(id=session_id)
        if not self.is_active(session):
            raise InvalidRefresh("session ended")
        session.last_activity_at = now()
        await session.save(update_fields=["last_activity_at"])
        return session

    async def sessions_of(self, user_id: str, *, include_ended: bool = False) -> list[Session]:
        rows = await Session.filter(user_id=user_id).order_by("-created_at").limit(200)
        return rows if include_ended else [r for r in rows if self.is_active(r)]

    async def revoke_all(self, user_id: str, reason: str, *, keep: str | None = None) -> int:
        sessions = await Session.filter(user_id=user_id, revoked_at=None).exclude(id=keep or uuid.UUID(int=0))
        for session in sessions:
            await self.revoke_session(session, reason)
        return len(sessions)

    # -- API keys ---------------------------------------------------------------------------------

    async def create_api_key(
        self, owner: Credential, name: str, permissions: list[str], days: int
    ) -> tuple[ApiKey, str]:
        """A signed token (verifiable everywhere like an access token) whose `sid` is the key's id,
        so revoking the key uses the same revocation list as sessions. Only its hash is stored."""
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise ValidationError("name must be 1-100 characters", field="name")
        if not 1 <= days <= 365:
            raise ValidationError("expiresInDays must be between 1 and 365", field="expiresInDays")
        wanted = sorted(set(permissions))
        if not wanted:
            raise ValidationError("an API key needs at least one permission", field="permissions")
        beyond = not_held(wanted, owner.permissions)
        if beyond:
            raise ValidationError(f"you do not hold: {', '.join(beyond)}", field="permissions")
        key_id = uuid.uuid4()
        issued = now()
        expires = issued + timedelta(days=days)
        token = await self.keys.sign(
            {
                "iss": self.settings.jwt_issuer,
                "aud": self.settings.jwt_audience,
                "sub": owner.user_id,
                "kind": "api_key",
                "username": owner.username,
                "roles": [],
                "permissions": wanted,
                "sid": f"apikey:{key_id}",
                "jti": uuid.uuid4().hex,
                "iat": int(issued.timestamp()),
                "exp": int(expires.timestamp()),
            }
        )
        row = await ApiKey.create(
            id=key_id,
            user_id=owner.user_id,
            name=name,
            permissions=wanted,
            token_hash=_sha256(token),
            expires_at=expires,
        )
        await record_event(
            Outbox,
            EventEnvelope(
                type="auth.api_key_created",
                source="auth",
                subject=owner.user_id,
                actor=owner.user_id,
                data={"apiKeyId": str(key_id), "name": name, "permissions": wanted},
            ),
        )
        return row, token

    async def revoke_api_key(self, row: ApiKey, reason: str) -> None:
        if row.revoked_at is None:
            row.revoked_at = now()
            await row.save(update_fields=["revoked_at"])
        ttl = int((row.expires_at - now()).total_seconds()) + 60
        await self.revocations.revoke_session(f"apikey:{row.id}", max(ttl, 60))
        await record_event(
            Outbox,
            EventEnvelope(
                type="auth.api_key_revoked",
                source="auth",
                subject=row.user_id,
                data={"apiKeyId": str(row.id), "reason": reason},
            ),
        )

    async def revoke_api_keys(self, user_id: str, reason: str, *, held: list[str] | None = None) -> int:
        """Revoke the user's live API keys; with ``held``, only those carrying a permission beyond it."""
        count = 0
        for api_key in await ApiKey.filter(user_id=user_id, revoked_at=None):
            if held is None or not_held(api_key.permissions, held):
                await self.revoke_api_key(api_key, reason)
                count += 1
        return count

    async def api_key_active(self, key_id: str, token_hash: str) -> bool:
        """What every service asks (cached a few seconds) before accepting an API key: the stored
        key matches the token, is neither revoked nor expired, its owner is active and still holds
        every permission the key carries."""
        try:
            row = await ApiKey.get_or_none(id=uuid.UUID(key_id))
        except ValueError:
            return False
        if row is None or row.revoked_at is not None or row.expires_at <= now():
            return False
        if not hmac_equal(row.token_hash, token_hash):
            return False
        cred = await Credential.get_or_none(user_id=row.user_id)
        return cred is not None and cred.is_active and not not_held(row.permissions, cred.permissions)

    async def apply_user_event(self, envelope: EventEnvelope) -> None:
        """Keep the claims auth puts in tokens in step with the users service; deactivation ends
        every session and API key of the user, losing a permission revokes the keys that carry it.
        A snapshot older than the one applied (users' ``version``) is ignored."""
        data = envelope.data
        user_id = envelope.subject or data.get("id")
        if not user_id:
            return
        version = snapshot_version(data)
        cred = await Credential.select_for_update().get_or_none(user_id=user_id)
        created = cred is None
        if cred is None:
            if envelope.type != "users.user_created":
                return
            cred = Credential(user_id=user_id, username=data["username"])
        elif version is not None and cred.claims_version is not None and version < cred.claims_version:
            log.info(
                "stale user snapshot ignored",
                event_type=envelope.type,
                user_id=user_id,
                version=version,
                applied=cred.claims_version,
            )
            return
        changed = []
        for key, attr in (
            ("username", "username"),
            ("roles", "roles"),
            ("permissions", "permissions"),
            ("isActive", "is_active"),
        ):
            if key in data:
                setattr(cred, attr, data[key])
                changed.append(attr)
        if version is not None:
            cred.claims_version = version
            changed.append("claims_version")
        # Only the replicated claims: a full-row save would write back a password hash, lockout
        # counter or login time read before a concurrent login or password change committed.
        await (cred.save() if created else cred.save(update_fields=[*changed, "updated_at"]))
        if data.get("isActive") is False:
            await self.revoke_api_keys(user_id, "user_deactivated")
            await self.revoke_all(user_id, "user_deactivated")
        elif "permissions" in data and not created:
            await self.revoke_api_keys(user_id, "permissions_reduced", held=list(cred.permissions))

    async def logout(self, session_id: str) -> bool:
        if session_id.startswith(API_KEY_SID_PREFIX):
            raise ValidationError("an API key has no session to end: revoke it with revokeApiKey")
        try:
            session = await Session.get_or_none(id=uuid.UUID(session_id))
        except ValueError:
            return False
        if session is None:
            return False
        await self.revoke_session(session, "logout")
        return True

    async def service_token(self, service: str, secret: str) -> tuple[str, float]:
        if service not in SERVICE_PERMISSIONS or not self.service_secrets.accepts(service, secret):
            raise LoginFailed("service credentials rejected")
        issued = now()
        expires = issued + timedelta(minutes=SERVICE_TOKEN_MINUTES)
        claims = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": f"service:{service}",
            "kind": "service",
            "permissions": list(SERVICE_PERMISSIONS[service]),
            "jti": uuid.uuid4().hex,
            "iat": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return await self.keys.sign(claims), expires.timestamp()


def hmac_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


async def _verify_async(hashed: str, password: str) -> bool:
    """argon2 takes ~0.2 s of CPU: off the event loop, which every service in the process shares."""
    return await asyncio.to_thread(_verify, hashed, password)


LEGACY_PREFIXES = ("$2a$", "$2b$", "$2y$")


def is_legacy_hash(hashed: str) -> bool:
    """A bcrypt hash as the monolith stored them (passlib ``CryptContext(["bcrypt"])``)."""
    return hashed.startswith(LEGACY_PREFIXES)


def check_importable_hash(hashed: str) -> str:
    """The hash, if login can verify it: bcrypt (``$2a$ $2b$ $2y$``) or argon2id; else ValidationError."""
    hashed = hashed.strip()
    if is_legacy_hash(hashed):
        if len(hashed) != 60:
            raise ValidationError("a bcrypt hash is 60 characters long", field="passwordHash")
        return hashed
    if hashed.startswith("$argon2id$"):
        return hashed
    raise ValidationError("only bcrypt ($2b$) and argon2id hashes can be imported", field="passwordHash")


def _verify(hashed: str, password: str) -> bool:
    if is_legacy_hash(hashed):
        # passlib silently used the first 72 bytes (bcrypt's limit); bcrypt 5 refuses longer input.
        try:
            return bcrypt.checkpw(password.encode()[:72], hashed.encode())
        except ValueError:
            return False
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


# ---- credentials and the replica of user claims ----------------------------------------------


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = 8
    min_classes: int = 2
    history: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        return cls(settings.password_min_length, settings.password_min_classes, settings.password_history)

    def check(self, password: str) -> None:
        if len(password) < self.min_length:
            raise ValidationError(f"password must be at least {self.min_length} characters", field="password")
        classes = sum(
            any(test(c) for c in password)
            for test in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
        )
        if classes < self.min_classes:
            raise ValidationError(
                f"password must mix at least {self.min_classes} of: lower case, upper case, digits, symbols",
                field="password",
            )


async def _recently_used(cred: Credential, password: str, policy: PasswordPolicy) -> bool:
    if policy.history <= 0 or cred.password_hash is None:
        return False
    earlier = await PasswordHistory.filter(user_id=cred.user_id).order_by("-id").limit(policy.history - 1)
    for hashed in [cred.password_hash, *(h.password_hash for h in earlier)]:
        if await _verify_async(hashed, password):
            return True
    return False


async def set_credential(
    *,
    user_id: str,
    username: str,
    password: str | None,
    roles: list[str],
    permissions: list[str],
    is_active: bool = True,
    policy: PasswordPolicy | None = None,
) -> Credential:
    policy = policy or PasswordPolicy()
    if password is not None:
        policy.check(password)
    cred = await Credential.get_or_none(user_id=user_id)
    if cred is None:
        cred = Credential(user_id=user_id, username=username)
    cred.username = username
    cred.roles = roles
    cred.permissions = permissions
    cred.is_active = is_active
    if password is not None:
        await _set_password(cred, password, policy)
    await cred.save()
    return cred


async def _set_password(cred: Credential, password: str, policy: PasswordPolicy) -> None:
    if await _recently_used(cred, password, policy):
        raise ValidationError(f"password was one of the last {policy.history} used", field="password")
    if cred.password_hash is not None:
        await PasswordHistory.create(user_id=cred.user_id, password_hash=cred.password_hash)
    cred.password_hash = await asyncio.to_thread(hash_password, password)
    cred.failed_logins = 0
    cred.locked_until = None


async def import_legacy_credential(
    *,
    user_id: str,
    username: str,
    password_hash: str,
    roles: list[str],
    permissions: list[str],
    is_active: bool = True,
) -> Credential:
    """For the legacy migration: store a user's existing hash as is (bcrypt from the monolith).

    The first successful login verifies it with bcrypt and replaces it with argon2id. The claims
    are the users service's (the migration imports the user there with
    ``opsconductor_users.service.import_legacy_user``); its later events keep them current.
    Runs in the caller's transaction (auth's database).
    """
    cred = await Credential.get_or_none(user_id=user_id) or Credential(user_id=user_id, username=username)
    cred.username = username
    cred.password_hash = check_importable_hash(password_hash)
    cred.roles = roles
    cred.permissions = permissions
    cred.is_active = is_active
    cred.failed_logins = 0
    cred.locked_until = None
    await cred.save()
    return cred


async def change_password(user_id: str, current: str, new: str, policy: PasswordPolicy) -> Credential:
    """Self-service: needs the current password."""
    cred = await Credential.get_or_none(user_id=user_id)
    if cred is None or cred.password_hash is None or not await _verify_async(cred.password_hash, current):
        raise LoginFailed("current password is wrong")
    policy.check(new)
    await _set_password(cred, new, policy)
    await cred.save()
    return cred


async def reset_password(user_id: str, new: str, policy: PasswordPolicy) -> Credential:
    """Admin: set a user's password without the current one."""
    cred = await Credential.get_or_none(user_id=user_id)
    if cred is None:
        raise NotFoundError(f"user {user_id} has no credential", id=user_id)
    policy.check(new)
    await _set_password(cred, new, policy)
    await cred.save()
    return cred


def check_admin_password(settings: Settings) -> str:
    """OPSC_ADMIN_PASSWORD, if it meets the password policy; else InsecureSettings (auth does not start)."""
    password = settings.admin_password.get_secret_value() if settings.admin_password else ""
    try:
        PasswordPolicy.from_settings(settings).check(password)
    except ValidationError as exc:
        raise InsecureSettings(
            f"OPSC_ADMIN_PASSWORD does not meet the password policy: {exc.message}"
        ) from exc
    return password


async def ensure_bootstrap_admin(settings: Settings) -> str | None:
    """Create the admin credential once; returns a generated password to print, if one was made."""
    existing = await Credential.get_or_none(user_id=BOOTSTRAP_ADMIN_ID)
    if existing is not None and existing.password_hash:
        return None
    generated = None
    policy = PasswordPolicy.from_settings(settings)
    if settings.admin_password is not None:
        password = check_admin_password(settings)
    else:
        for _ in range(20):  # random text nearly always mixes classes; retry the rare one that does not
            password = generated = secrets.token_urlsafe(max(18, policy.min_length))
            try:
                policy.check(password)
                break
            except ValidationError:
                continue
    await set_credential(
        user_id=BOOTSTRAP_ADMIN_ID,
        username=BOOTSTRAP_ADMIN_USERNAME,
        password=password,
        roles=["admin"],
        permissions=["*"],
        policy=PasswordPolicy(policy.min_length, policy.min_classes, history=0),
    )
    return generated
