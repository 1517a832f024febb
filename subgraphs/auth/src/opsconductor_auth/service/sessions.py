"""Login (with lockout), sessions (sliding idle timeout), refresh-token rotation, logout, revocation,
and the login attempts they record."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from tortoise.functions import Max

from opsconductor_auth import events
from opsconductor_auth.errors import (
    AccountDisabled,
    AccountLocked,
    InvalidRefresh,
    LoginFailed,
    SessionEndedError,
)
from opsconductor_auth.models import Credential, LoginAttempt, Outbox, RefreshToken, Session
from opsconductor_auth.service.hashing import PasswordCheck, check_password, verify_async
from opsconductor_auth.service.keys import now
from opsconductor_auth.settings import Settings
from opsconductor_shared.auth import API_KEY_SID_PREFIX, Identity
from opsconductor_shared.errors import DomainError, ForbiddenError, NotFoundError, ValidationError
from opsconductor_shared.events import record_event

if TYPE_CHECKING:
    from opsconductor_auth.service.deps import Deps

T = TypeVar("T")


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class SessionPolicy:
    """Session lifetimes and the lockout rule (from settings)."""

    idle_timeout_minutes: int = 60
    idle_warning_minutes: int = 2
    refresh_token_days: int = 7
    lockout_threshold: int = 5
    lockout_minutes: int = 15

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(
            idle_timeout_minutes=settings.idle_timeout_minutes,
            idle_warning_minutes=settings.idle_warning_minutes,
            refresh_token_days=settings.refresh_token_days,
            lockout_threshold=settings.lockout_threshold,
            lockout_minutes=settings.lockout_minutes,
        )

    def idle_deadline(self, session: Session) -> datetime:
        """When inactivity ends the session (legacy sliding-inactivity semantics), at most its expiry."""
        return min(
            session.last_activity_at + timedelta(minutes=self.idle_timeout_minutes), session.expires_at
        )

    def is_active(self, session: Session) -> bool:
        return session.revoked_at is None and self.idle_deadline(session) > now()

    def remaining_seconds(self, session: Session) -> int:
        return max(0, int((self.idle_deadline(session) - now()).total_seconds()))

    def warns(self, remaining_seconds: int) -> bool:
        return remaining_seconds <= self.idle_warning_minutes * 60


@dataclass
class IssuedTokens:
    access_token: str
    refresh_token: str
    access_expires_at: datetime
    credential: Credential
    session_id: str


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """The result of a flow whose failure must be committed too (a login's attempt and lockout
    counter, the revocation a reused refresh token causes): the value, or the domain error that
    :meth:`get` raises once the caller's transaction has committed."""

    value: T | None = None
    error: DomainError | None = None

    def get(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


# ---- login ------------------------------------------------------------------------------------


async def _ghost_lock(policy: SessionPolicy, username: str) -> datetime | None:
    """When an unknown username "locks", as a real account would after the same failures.

    Without this, `AccountLocked` after N guesses would tell an attacker the name exists. The
    failed attempts recorded for the name within the lockout window stand in for the counter.
    """
    window_start = now() - timedelta(minutes=policy.lockout_minutes)
    failures = cast(
        list[datetime],
        await LoginAttempt.filter(username=username[:100], reason="unknown_user", at__gte=window_start)
        .order_by("at")
        .limit(policy.lockout_threshold)
        .values_list("at", flat=True),
    )
    if len(failures) < policy.lockout_threshold:
        return None
    until = failures[-1] + timedelta(minutes=policy.lockout_minutes)
    return until if until > now() else None


async def _new_refresh(session: Session) -> str:
    raw = secrets.token_urlsafe(32)
    await RefreshToken.create(id=uuid.uuid4(), session=session, token_hash=sha256(raw))
    return raw


async def login(
    *,
    deps: Deps,
    username: str,
    password: str,
    ip: str | None,
    user_agent: str | None,
    check: PasswordCheck | None = None,
) -> Outcome[IssuedTokens]:
    """The login's transaction (the caller's), after :func:`~.hashing.check_password` (done here if
    not given). A failure is returned, not raised, so its attempt and lockout counter commit."""
    try:
        return Outcome(value=await _login(deps, username, password, ip, user_agent, check))
    except (AccountLocked, AccountDisabled, LoginFailed) as exc:
        return Outcome(error=exc)


async def _login(
    deps: Deps,
    username: str,
    password: str,
    ip: str | None,
    user_agent: str | None,
    check: PasswordCheck | None,
) -> IssuedTokens:
    policy = deps.sessions
    if check is None:
        check = await check_password(username=username, password=password)
    # The row is locked for the login's transaction (the caller's): a deactivation being
    # applied (its sessions already on the revocation list) makes this wait for its commit and
    # see the account disabled, instead of starting a session that revoke_all never saw; and
    # concurrent wrong passwords count one after another towards the lockout.
    cred = await Credential.select_for_update().get_or_none(username=username)
    if cred is not None and cred.password_hash is not None and cred.password_hash != check.hash_seen:
        # The password changed between the check and the lock (rare): verify against the new one.
        check = PasswordCheck(cred.password_hash, await verify_async(cred.password_hash, password))

    async def attempt(success: bool, reason: str) -> None:
        await LoginAttempt.create(
            username=username[:100],
            user_id=cred.user_id if cred else None,
            success=success,
            reason=reason,
            ip_address=ip,
            user_agent=user_agent,
        )
        if not success:  # audited (the success is auth.login_succeeded below)
            await record_event(
                Outbox,
                events.login_failed(
                    username=username,
                    user_id=cred.user_id if cred else None,
                    reason=reason,
                    ip=ip,
                    user_agent=user_agent,
                ),
            )

    if cred is None or cred.password_hash is None:
        until = await _ghost_lock(policy, username)
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
        if cred.failed_logins >= policy.lockout_threshold:
            cred.locked_until = now() + timedelta(minutes=policy.lockout_minutes)
            cred.failed_logins = 0
            await record_event(
                Outbox,
                events.account_locked(
                    username=username,
                    user_id=cred.user_id,
                    until=cred.locked_until.isoformat(),
                    ip=ip,
                    user_agent=user_agent,
                ),
            )
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
        expires_at=now() + timedelta(days=policy.refresh_token_days),
        ip_address=ip,
        user_agent=user_agent,
    )
    await attempt(True, "ok")
    await record_event(
        Outbox,
        events.login_succeeded(
            user_id=cred.user_id,
            session_id=str(session.id),
            ip=ip,
            username=cred.username,
            user_agent=user_agent,
        ),
    )
    access, expires = await deps.tokens.access(cred, str(session.id))
    return IssuedTokens(access, await _new_refresh(session), expires, cred, str(session.id))


# ---- refresh ----------------------------------------------------------------------------------


async def refresh(*, deps: Deps, refresh_token: str) -> Outcome[IssuedTokens]:
    """Rotate a refresh token (in the caller's transaction). A failure is returned, not raised, so
    the revocation that a reused token causes commits."""
    try:
        issued = await _refresh(deps, refresh_token)
    except InvalidRefresh as exc:
        token = await RefreshToken.get_or_none(token_hash=sha256(refresh_token)).prefetch_related("session")
        session = token.session if token is not None else None
        await record_event(
            Outbox,
            events.refresh_failed(
                user_id=session.user_id if session else None,
                session_id=str(session.id) if session else None,
                reason=str(exc),
            ),
        )
        return Outcome(error=exc)
    await record_event(
        Outbox, events.session_refreshed(user_id=issued.credential.user_id, session_id=issued.session_id)
    )
    return Outcome(value=issued)


async def _refresh(deps: Deps, raw: str) -> IssuedTokens:
    token = await RefreshToken.get_or_none(token_hash=sha256(raw)).prefetch_related("session")
    if token is None:
        raise InvalidRefresh("unknown refresh token")
    session: Session = token.session
    if token.used_at is not None:
        # A rotated token came back: someone holds a copy. End the whole session.
        await end_session(deps=deps, session=session, reason="refresh_token_reuse")
        raise InvalidRefresh("refresh token reuse detected; the session was revoked")
    if not deps.sessions.is_active(session):
        raise InvalidRefresh("session ended")
    cred = await Credential.get_or_none(user_id=session.user_id)
    if cred is None or not cred.is_active:
        raise InvalidRefresh("account unavailable")
    # Claim the token atomically: of two concurrent refreshes with one token exactly one
    # updates the row (the other waits for its commit on PostgreSQL, then matches nothing) and
    # the loser is treated as the reuse it is.
    claimed = await RefreshToken.filter(id=token.id, used_at=None).update(used_at=now())
    if claimed != 1:
        await end_session(deps=deps, session=session, reason="refresh_token_reuse")
        raise InvalidRefresh("refresh token reuse detected; the session was revoked")
    session.last_activity_at = now()
    await session.save(update_fields=["last_activity_at"])
    access, expires = await deps.tokens.access(cred, str(session.id))
    return IssuedTokens(access, await _new_refresh(session), expires, cred, str(session.id))


# ---- sessions ---------------------------------------------------------------------------------


async def end_session(*, deps: Deps, session: Session, reason: str) -> None:
    """Revoke the session: its access tokens stop working at once (revocation list) everywhere."""
    if session.revoked_at is None:
        session.revoked_at = now()
        session.revoked_reason = reason
        await session.save(update_fields=["revoked_at", "revoked_reason"])
    await deps.revocations.revoke_session(str(session.id), deps.tokens.revocation_seconds)
    await record_event(
        Outbox, events.session_revoked(user_id=session.user_id, session_id=str(session.id), reason=reason)
    )


async def get_session(*, session_id: str) -> Session:
    return await Session.get(id=session_id)


async def session_of(*, session_id: str, user_id: str | None) -> Session:
    """The session, if it belongs to ``user_id`` (``None``: any user's, for admins)."""
    try:
        session = await Session.get_or_none(id=uuid.UUID(session_id))
    except ValueError:
        session = None
    if session is None or (user_id is not None and session.user_id != user_id):
        raise NotFoundError(f"session {session_id} not found", id=session_id)
    return session


async def extend_session(*, deps: Deps, session_id: str) -> Session:
    """Restart the session's idle timer (SessionEndedError if it has ended)."""
    session = await Session.get(id=session_id)
    if not deps.sessions.is_active(session):
        raise SessionEndedError("session ended")
    session.last_activity_at = now()
    await session.save(update_fields=["last_activity_at"])
    return session


async def list_sessions(*, deps: Deps, user_id: str, include_ended: bool = False) -> list[Session]:
    rows = await Session.filter(user_id=user_id).order_by("-created_at").limit(200)
    return rows if include_ended else [r for r in rows if deps.sessions.is_active(r)]


async def revoke_session(*, deps: Deps, session_id: str, actor: Identity) -> Session:
    """End one session: the actor's own, or anyone's with ``sessions:manage`` (else NotFound)."""
    owner = None if actor.has("sessions:manage") else actor.subject
    session = await session_of(session_id=session_id, user_id=owner)
    await end_session(deps=deps, session=session, reason="revoked" if owner else "revoked_by_admin")
    return session


async def revoke_all(*, deps: Deps, user_id: str, reason: str, keep: str | None = None) -> int:
    """End every live session of the user (but ``keep``); how many."""
    sessions = await Session.filter(user_id=user_id, revoked_at=None).exclude(id=keep or uuid.UUID(int=0))
    for session in sessions:
        await end_session(deps=deps, session=session, reason=reason)
    return len(sessions)


async def revoke_all_sessions(*, deps: Deps, user_id: str | None, actor: Identity) -> int:
    """End every session of a user: the actor (``user_id`` None or their own), or anyone with
    ``sessions:manage``."""
    target = user_id or actor.subject
    if target != actor.subject and not actor.has("sessions:manage"):
        raise ForbiddenError("permission 'sessions:manage' required", permission="sessions:manage")
    return await revoke_all(deps=deps, user_id=target, reason="revoked_all")


async def logout(*, deps: Deps, session_id: str | None) -> str:
    """End the calling session; its id. NotFoundError without a session (an API key has none:
    revokeApiKey ends it)."""
    if session_id is None:
        raise NotFoundError("no session to end")
    if session_id.startswith(API_KEY_SID_PREFIX):
        raise NotFoundError("an API key has no session to end: revoke it with revokeApiKey", id=session_id)
    try:
        session = await Session.get_or_none(id=uuid.UUID(session_id))
    except ValueError:
        session = None
    if session is None:
        raise NotFoundError("session not found", id=session_id)
    await end_session(deps=deps, session=session, reason="logout")
    return session_id


async def last_seen(user_ids: Sequence[str]) -> list[datetime | None]:
    """Latest session activity per user, for many users in one grouped query."""
    rows = (
        await Session.filter(user_id__in=list(user_ids))
        .annotate(latest=Max("last_activity_at"))
        .group_by("user_id")
        .values("user_id", "latest")
    )
    found = {str(r["user_id"]): r["latest"] for r in rows}
    return [found.get(i) for i in user_ids]


# ---- login attempts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptPage:
    rows: list[LoginAttempt]
    has_next: bool
    total: int
    after: str | None


async def list_login_attempts(*, first: int, after: str | None, username: str | None) -> AttemptPage:
    """Login attempts newest first, keyset-paged by id (``after``: the id key of the cursor)."""
    if after is not None and not after.isdigit():
        raise ValidationError("invalid cursor", field="after")
    qs = LoginAttempt.filter(username=username) if username else LoginAttempt.all()
    total = await qs.count()
    page = qs.filter(id__lt=int(after)) if after is not None else qs
    found = await page.order_by("-id").limit(first + 1)
    return AttemptPage(rows=found[:first], has_next=len(found) > first, total=total, after=after)


async def prune_login_attempts(*, retention_days: int) -> int:
    """Delete login attempts older than the retention (the lockout window is minutes: never needed)."""
    cutoff = now() - timedelta(days=retention_days)
    return await LoginAttempt.filter(at__lt=cutoff).delete()
