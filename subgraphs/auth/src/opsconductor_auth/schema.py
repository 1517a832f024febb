"""Auth subgraph: login, refreshSession, logout, me."""

from __future__ import annotations

import uuid

import strawberry
from strawberry.exceptions import StrawberryGraphQLError
from tortoise.transactions import in_transaction

from opsconductor_auth import service
from opsconductor_auth.client_ip import client_ip
from opsconductor_auth.models import ApiKey, Credential, LoginAttempt, Session
from opsconductor_auth.types import (
    AccountDisabled,
    AccountLocked,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRevoked,
    ChangePasswordResult,
    CreateApiKeyResult,
    CredentialSet,
    ExtendSessionResult,
    InvalidCredentials,
    InvalidRefreshToken,
    LoggedOut,
    LoginAttemptConnection,
    LoginAttemptInfo,
    LoginResult,
    LoginSuccess,
    LogoutResult,
    PasswordChanged,
    RefreshResult,
    ResetPasswordResult,
    RevokeAllSessionsResult,
    RevokeApiKeyResult,
    RevokeSessionResult,
    SessionEnded,
    SessionInfo,
    SessionRevoked,
    SessionsRevoked,
    SessionStatus,
    SetUserCredentialInput,
    SetUserCredentialResult,
    User,
)
from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import Authenticated, Identity, Public, require_identity, requires
from opsconductor_shared.errors import (
    DomainError,
    NotFound,
    NotFoundError,
    PermissionDenied,
    ValidationError,
    ValidationFailed,
    to_graphql_error,
)
from opsconductor_shared.paging import build_connection, check_first, decode_cursor

Info = strawberry.Info[RequestContext, None]


def _auth(info: Info) -> service.AuthService:
    return info.context.deps.auth


def _success(tokens: service.IssuedTokens) -> LoginSuccess:
    return LoginSuccess(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        access_token_expires_at=tokens.access_expires_at,
        session_id=strawberry.ID(tokens.session_id),
        user=User(id=strawberry.ID(tokens.credential.user_id)),
    )


def _client(info: Info) -> tuple[str | None, str | None]:
    request = info.context.request
    if request is None:
        return None, None
    # L2: the router's signed x-opsc-client-ip, never a client-written X-Forwarded-For.
    ip = client_ip(request.headers, request.client.host if request.client else None)
    return ip, request.headers.get("user-agent")


def _identity(info: Info) -> Identity:
    identity = info.context.identity
    if identity is None or identity.kind != "user" or identity.session_id is None:
        raise StrawberryGraphQLError("a user session is required", extensions={"code": "UNAUTHENTICATED"})
    return identity


def _not_held(identity: Identity, user_id: str, permissions: list[str]) -> str | None:
    """H6: the first permission of user ``user_id`` (auth's replica of their claims) the caller does
    not hold (``*`` only with ``*``); None when the caller covers them all, or acts on itself."""
    if identity.subject == user_id:
        return None
    for perm in permissions:
        held = "*" in identity.permissions if perm == "*" else identity.has(perm)
        if not held:
            return perm
    return None


def _session_info(auth: service.AuthService, row: Session, current: str | None) -> SessionInfo:
    return SessionInfo(
        id=strawberry.ID(str(row.id)),
        user=User(id=strawberry.ID(row.user_id)),
        created_at=row.created_at,
        last_activity_at=row.last_activity_at,
        ends_at=auth.idle_deadline(row),
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
        ip_address=row.ip_address,
        user_agent=row.user_agent,
        active=auth.is_active(row),
        current=str(row.id) == current,
    )


def _status(auth: service.AuthService, row: Session) -> SessionStatus:
    ends = auth.idle_deadline(row)
    remaining = max(0, int((ends - service.now()).total_seconds()))
    return SessionStatus(
        session_id=strawberry.ID(str(row.id)),
        remaining_seconds=remaining,
        warning=remaining <= auth.settings.idle_warning_minutes * 60,
        ends_at=ends,
    )


def _api_key_info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=strawberry.ID(str(row.id)),
        name=row.name,
        permissions=list(row.permissions),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[Authenticated], description="The calling user.")
    def me(self, info: Info) -> User | None:
        identity = info.context.identity
        if identity is None or identity.kind != "user":
            return None
        return User(id=strawberry.ID(identity.subject))

    @strawberry.field(permission_classes=[Authenticated], description="Time left in the calling session.")
    async def session_status(self, info: Info) -> SessionStatus:
        identity = _identity(info)
        return _status(_auth(info), await Session.get(id=identity.session_id))

    @strawberry.field(permission_classes=[Authenticated], description="The caller's sessions, newest first.")
    async def my_sessions(self, info: Info, include_ended: bool = False) -> list[SessionInfo]:
        identity = _identity(info)
        rows = await _auth(info).sessions_of(identity.subject, include_ended=include_ended)
        return [_session_info(_auth(info), r, identity.session_id) for r in rows]

    @strawberry.field(
        permission_classes=[requires("sessions:manage")], description="Any user's sessions (admin)."
    )
    async def user_sessions(
        self, info: Info, user_id: strawberry.ID, include_ended: bool = False
    ) -> list[SessionInfo]:
        rows = await _auth(info).sessions_of(str(user_id), include_ended=include_ended)
        current = info.context.identity.session_id if info.context.identity else None
        return [_session_info(_auth(info), r, current) for r in rows]

    @strawberry.field(
        permission_classes=[requires("audit:read")],
        description="Login attempts, newest first (Relay connection), optionally for one username.",
    )
    async def login_attempts(
        self, info: Info, first: int | None = 50, after: str | None = None, username: str | None = None
    ) -> LoginAttemptConnection:
        limit = check_first(first, maximum=200)
        key = decode_cursor(after)
        if key is not None and not key.isdigit():
            raise ValidationError("invalid cursor", field="after")
        qs = LoginAttempt.filter(username=username) if username else LoginAttempt.all()
        total = await qs.count()
        page = qs.filter(id__lt=int(key)) if key is not None else qs
        found = await page.order_by("-id").limit(limit + 1)
        return build_connection(
            found[:limit],
            node=lambda r: LoginAttemptInfo(
                id=strawberry.ID(str(r.id)),
                username=r.username,
                user=User(id=strawberry.ID(r.user_id)) if r.user_id else None,
                success=r.success,
                reason=r.reason,
                ip_address=r.ip_address,
                user_agent=r.user_agent,
                at=r.at,
            ),
            key=lambda r: str(r.id),
            has_next=len(found) > limit,
            total=total,
            after=key,
        )

    @strawberry.field(permission_classes=[Authenticated], description="Your API keys (never their secrets).")
    async def api_keys(self, info: Info) -> list[ApiKeyInfo]:
        identity = _identity(info)
        rows = await ApiKey.filter(user_id=identity.subject).order_by("-created_at")
        return [_api_key_info(r) for r in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[Public], description="Start a session with username and password."
    )
    async def login(self, info: Info, username: str, password: str) -> LoginResult:
        ip, agent = _client(info)
        # argon2 first, outside the transaction: no lock (nor SQLite's one connection) is held
        # while it runs; the transaction then takes the row lock and decides (M1).
        check = await _auth(info).check_password(username, password)
        async with in_transaction():
            try:
                tokens = await _auth(info).login(username, password, ip=ip, user_agent=agent, check=check)
            except (service.AccountLocked, service.AccountDisabled, service.LoginFailed) as exc:
                failure: DomainError | None = exc  # commit what a failure writes: attempt, lock
            else:
                failure = None
        info.context.runtime.events_committed()
        if isinstance(failure, service.AccountLocked):
            return AccountLocked(message=failure.message, until=failure.until)
        if isinstance(failure, service.AccountDisabled):
            return AccountDisabled(message=failure.message)
        if failure is not None:
            return InvalidCredentials(message=failure.message)
        return _success(tokens)

    @strawberry.mutation(permission_classes=[Public], description="Exchange a refresh token for new tokens.")
    async def refresh_session(self, info: Info, refresh_token: str) -> RefreshResult:
        async with in_transaction():
            try:
                tokens = await _auth(info).refresh(refresh_token)
            except service.InvalidRefresh as exc:
                failure: service.InvalidRefresh | None = exc  # commit the revocation a reused token causes
            else:
                failure = None
        info.context.runtime.events_committed()
        if failure is not None:
            return InvalidRefreshToken(message=failure.message)
        return _success(tokens)

    @strawberry.mutation(permission_classes=[Authenticated], description="End the calling session.")
    async def logout(self, info: Info) -> LogoutResult:
        identity = info.context.identity
        if identity is None or identity.session_id is None:
            return NotFound(message="no session to end")
        try:
            async with in_transaction():
                ok = await _auth(info).logout(identity.session_id)
        except ValidationError as exc:  # an API key: it has no session (revokeApiKey ends it)
            return NotFound(message=exc.message, id=strawberry.ID(identity.session_id))
        info.context.runtime.events_committed()
        if not ok:
            return NotFound(message="session not found", id=strawberry.ID(identity.session_id))
        return LoggedOut(session_id=strawberry.ID(identity.session_id))

    @strawberry.federation.mutation(
        permission_classes=[requires("auth:credentials:write")],
        description="Service-only (users service): set a user's password and token claims. "
        "@inaccessible: not part of the public API; the users service calls this subgraph directly.",
        inaccessible=True,
    )
    async def set_user_credential(self, info: Info, input: SetUserCredentialInput) -> SetUserCredentialResult:
        try:
            async with in_transaction():
                await service.set_credential(
                    user_id=str(input.user_id),
                    username=input.username,
                    password=input.password,
                    roles=input.roles,
                    permissions=input.permissions,
                    is_active=input.is_active,
                    policy=service.PasswordPolicy.from_settings(info.context.runtime.settings),
                )
        except ValidationError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        return CredentialSet(user_id=input.user_id)

    @strawberry.mutation(
        permission_classes=[Authenticated], description="Stay logged in: restart the idle timer."
    )
    async def extend_session(self, info: Info) -> ExtendSessionResult:
        identity = _identity(info)
        try:
            async with in_transaction():
                row = await _auth(info).extend(str(identity.session_id))
        except service.InvalidRefresh as exc:
            return SessionEnded(message=exc.message)
        return _status(_auth(info), row)

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="End one session at once: your own, or anyone's with sessions:manage.",
    )
    async def revoke_session(self, info: Info, id: strawberry.ID) -> RevokeSessionResult:
        identity = _identity(info)
        owner = None if identity.has("sessions:manage") else identity.subject
        try:
            async with in_transaction():
                row = await _auth(info).session_of(str(id), user_id=owner)
                await _auth(info).revoke_session(row, "revoked" if owner else "revoked_by_admin")
        except NotFoundError as exc:
            return NotFound(message=exc.message, id=id)
        info.context.runtime.events_committed()
        return SessionRevoked(session=_session_info(_auth(info), row, identity.session_id))

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="End every session of a user: yourself (no userId), or anyone with sessions:manage.",
    )
    async def revoke_all_sessions(
        self, info: Info, user_id: strawberry.ID | None = None
    ) -> RevokeAllSessionsResult:
        identity = _identity(info)
        target = str(user_id) if user_id else identity.subject
        if target != identity.subject and not identity.has("sessions:manage"):
            return PermissionDenied(
                message="permission 'sessions:manage' required", permission="sessions:manage"
            )
        async with in_transaction():
            count = await _auth(info).revoke_all(target, "revoked_all")
        info.context.runtime.events_committed()
        return SessionsRevoked(count=count)

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="Change your own password (needs the current one); your other sessions end.",
    )
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> ChangePasswordResult:
        identity = _identity(info)
        policy = service.PasswordPolicy.from_settings(info.context.runtime.settings)
        try:
            async with in_transaction():
                await service.change_password(identity.subject, current_password, new_password, policy)
                revoked = await _auth(info).revoke_all(
                    identity.subject, "password_changed", keep=identity.session_id
                )
                # A key made by whoever knew the old password must not outlive it (H5).
                await _auth(info).revoke_api_keys(identity.subject, "password_changed")
        except service.LoginFailed as exc:
            return InvalidCredentials(message=exc.message)
        except ValidationError as exc:
            return ValidationFailed(message=exc.message, field=exc.field)
        info.context.runtime.events_committed()
        return PasswordChanged(user_id=strawberry.ID(identity.subject), revoked_sessions=revoked)

    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Set a user's password (admin); all of that user's sessions end. Only of a user "
        "whose permissions you all hold (PermissionDenied otherwise).",
    )
    async def reset_password(
        self, info: Info, user_id: strawberry.ID, new_password: str
    ) -> ResetPasswordResult:
        policy = service.PasswordPolicy.from_settings(info.context.runtime.settings)
        identity = require_identity(info.context)
        try:
            async with in_transaction():
                target = await Credential.get_or_none(user_id=str(user_id))
                missing = _not_held(identity, str(user_id), list(target.permissions) if target else [])
                if missing is not None:
                    return PermissionDenied(
                        message=f"you cannot reset the password of a user who holds permission "
                        f"'{missing}', which you do not hold",
                        permission=missing,
                    )
                await service.reset_password(str(user_id), new_password, policy)
                revoked = await _auth(info).revoke_all(str(user_id), "password_reset")
                await _auth(info).revoke_api_keys(str(user_id), "password_reset")
        except NotFoundError as exc:
            return NotFound(message=exc.message, id=user_id)
        except ValidationError as exc:
            return ValidationFailed(message=exc.message, field=exc.field)
        info.context.runtime.events_committed()
        return PasswordChanged(user_id=user_id, revoked_sessions=revoked)

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="Create an API key with some of your permissions; the secret is returned only now.",
    )
    async def create_api_key(
        self, info: Info, name: str, permissions: list[str], expires_in_days: int = 90
    ) -> CreateApiKeyResult:
        identity = _identity(info)
        try:
            async with in_transaction():
                owner = await Credential.get(user_id=identity.subject)
                row, secret = await _auth(info).create_api_key(owner, name, permissions, expires_in_days)
        except ValidationError as exc:
            return ValidationFailed(message=exc.message, field=exc.field)
        info.context.runtime.events_committed()
        return ApiKeyCreated(api_key=_api_key_info(row), secret=secret)

    @strawberry.mutation(
        permission_classes=[Authenticated], description="Revoke one of your API keys at once."
    )
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokeApiKeyResult:
        identity = _identity(info)
        owner = None if identity.has("sessions:manage") else identity.subject
        try:
            row = await ApiKey.get_or_none(id=uuid.UUID(str(id)))
        except ValueError:
            row = None
        if row is None or (owner is not None and row.user_id != owner):
            return NotFound(message=f"API key {id} not found", id=id)
        async with in_transaction():
            await _auth(info).revoke_api_key(row, "revoked")
        info.context.runtime.events_committed()
        return ApiKeyRevoked(api_key=_api_key_info(row))


schema = build_schema(query=Query, mutation=Mutation, types=[User])
