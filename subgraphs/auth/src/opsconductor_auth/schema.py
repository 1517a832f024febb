"""Auth subgraph: login, refreshSession, logout, me, sessions, passwords, API keys (resolvers only)."""

from __future__ import annotations

import strawberry
from strawberry.exceptions import StrawberryGraphQLError

from opsconductor_auth import service
from opsconductor_auth.types import (
    ERRORS,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRevoked,
    ChangePasswordResult,
    CreateApiKeyResult,
    CredentialSet,
    ExtendSessionResult,
    Info,
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
    SessionInfo,
    SessionRevoked,
    SessionsRevoked,
    SessionStatus,
    SetUserCredentialInput,
    SetUserCredentialResult,
    User,
)
from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import Authenticated, Identity, Public, require_identity, requires
from opsconductor_shared.client_ip import client_ip
from opsconductor_shared.paging import build_connection, check_first, decode_cursor
from opsconductor_shared.unit_of_work import maps_errors, transactional, unit_of_work


def _client(info: Info) -> tuple[str | None, str | None]:
    request = info.context.request
    if request is None:
        return None, None
    settings = info.context.settings
    # L2: the router's signed x-opsc-client-ip, never a client-written X-Forwarded-For.
    ip = client_ip(
        request.headers,
        request.client.host if request.client else None,
        trusted_proxies=settings.trusted_proxies,
        secret=settings.client_ip_secret.get_secret_value() if settings.client_ip_secret else None,
    )
    return ip, request.headers.get("user-agent")


def _identity(info: Info) -> Identity:
    identity = info.context.identity
    if identity is None or identity.kind != "user" or identity.session_id is None:
        raise StrawberryGraphQLError("a user session is required", extensions={"code": "UNAUTHENTICATED"})
    return identity


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
        row = await service.get_session(session_id=str(_identity(info).session_id))
        return SessionStatus.from_record(row, policy=info.context.deps.sessions)

    @strawberry.field(permission_classes=[Authenticated], description="The caller's sessions, newest first.")
    async def my_sessions(self, info: Info, include_ended: bool = False) -> list[SessionInfo]:
        identity = _identity(info)
        deps = info.context.deps
        rows = await service.list_sessions(deps=deps, user_id=identity.subject, include_ended=include_ended)
        return [SessionInfo.from_record(r, policy=deps.sessions, current=identity.session_id) for r in rows]

    @strawberry.field(
        permission_classes=[requires("sessions:manage")], description="Any user's sessions (admin)."
    )
    async def user_sessions(
        self, info: Info, user_id: strawberry.ID, include_ended: bool = False
    ) -> list[SessionInfo]:
        deps = info.context.deps
        rows = await service.list_sessions(deps=deps, user_id=str(user_id), include_ended=include_ended)
        current = info.context.identity.session_id if info.context.identity else None
        return [SessionInfo.from_record(r, policy=deps.sessions, current=current) for r in rows]

    @strawberry.field(
        permission_classes=[requires("audit:read")],
        description="Login attempts, newest first (Relay connection), optionally for one username.",
    )
    async def login_attempts(
        self, info: Info, first: int | None = 50, after: str | None = None, username: str | None = None
    ) -> LoginAttemptConnection:
        limit = check_first(first, maximum=200)
        page = await service.list_login_attempts(first=limit, after=decode_cursor(after), username=username)
        return build_connection(
            page.rows,
            node=LoginAttemptInfo.from_record,
            key=lambda r: str(r.id),
            has_next=page.has_next,
            total=page.total,
            after=page.after,
        )

    @strawberry.field(permission_classes=[Authenticated], description="Your API keys (never their secrets).")
    async def api_keys(self, info: Info) -> list[ApiKeyInfo]:
        rows = await service.list_api_keys(user_id=_identity(info).subject)
        return [ApiKeyInfo.from_record(r) for r in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[Public], description="Start a session with username and password."
    )
    @maps_errors(ERRORS)
    async def login(self, info: Info, username: str, password: str) -> LoginResult:
        ip, agent = _client(info)
        # argon2 first, outside the transaction: no lock (nor SQLite's one connection) is held
        # while it runs; the transaction then takes the row lock and decides (M1). A failure
        # commits too (the attempt, the lockout counter) and is raised after the commit.
        check = await service.check_password(username=username, password=password)
        async with unit_of_work(info.context.runtime):
            outcome = await service.login(
                deps=info.context.deps,
                username=username,
                password=password,
                ip=ip,
                user_agent=agent,
                check=check,
            )
        return LoginSuccess.from_record(outcome.get())

    @strawberry.mutation(permission_classes=[Public], description="Exchange a refresh token for new tokens.")
    @maps_errors(ERRORS)
    async def refresh_session(self, info: Info, refresh_token: str) -> RefreshResult:
        # A failure commits too (the revocation a reused token causes) and is raised after the commit.
        async with unit_of_work(info.context.runtime):
            outcome = await service.refresh(deps=info.context.deps, refresh_token=refresh_token)
        return LoginSuccess.from_record(outcome.get())

    @strawberry.mutation(permission_classes=[Authenticated], description="End the calling session.")
    @transactional(ERRORS)
    async def logout(self, info: Info) -> LogoutResult:
        identity = info.context.identity
        session_id = identity.session_id if identity else None
        ended = await service.logout(deps=info.context.deps, session_id=session_id)
        return LoggedOut(session_id=strawberry.ID(ended))

    @strawberry.federation.mutation(
        permission_classes=[requires("auth:credentials:write")],
        description="Service-only (users service): set a user's password and token claims. "
        "@inaccessible: not part of the public API; the users service calls this subgraph directly.",
        inaccessible=True,
    )
    @maps_errors(ERRORS)
    async def set_user_credential(self, info: Info, input: SetUserCredentialInput) -> SetUserCredentialResult:
        policy = info.context.deps.passwords
        # argon2 (policy, history, hash) before the transaction
        password = await service.prepare_password(
            user_id=str(input.user_id), password=input.password, policy=policy
        )
        async with unit_of_work(info.context.runtime):
            await service.set_credential(
                user_id=str(input.user_id),
                username=input.username,
                password=password,
                roles=input.roles,
                permissions=input.permissions,
                is_active=input.is_active,
                policy=policy,
            )
        return CredentialSet(user_id=input.user_id)

    @strawberry.mutation(
        permission_classes=[Authenticated], description="Stay logged in: restart the idle timer."
    )
    @transactional(ERRORS)
    async def extend_session(self, info: Info) -> ExtendSessionResult:
        deps = info.context.deps
        row = await service.extend_session(deps=deps, session_id=str(_identity(info).session_id))
        return SessionStatus.from_record(row, policy=deps.sessions)

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="End one session at once: your own, or anyone's with sessions:manage.",
    )
    @transactional(ERRORS)
    async def revoke_session(self, info: Info, id: strawberry.ID) -> RevokeSessionResult:
        identity = _identity(info)
        deps = info.context.deps
        row = await service.revoke_session(deps=deps, session_id=str(id), actor=identity)
        return SessionRevoked(
            session=SessionInfo.from_record(row, policy=deps.sessions, current=identity.session_id)
        )

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="End every session of a user: yourself (no userId), or anyone with sessions:manage.",
    )
    @transactional(ERRORS)
    async def revoke_all_sessions(
        self, info: Info, user_id: strawberry.ID | None = None
    ) -> RevokeAllSessionsResult:
        count = await service.revoke_all_sessions(
            deps=info.context.deps, user_id=str(user_id) if user_id else None, actor=_identity(info)
        )
        return SessionsRevoked(count=count)

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="Change your own password (needs the current one); your other sessions end.",
    )
    @maps_errors(ERRORS)
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> ChangePasswordResult:
        identity = _identity(info)
        deps = info.context.deps
        # argon2 (current password, history, new hash) before the transaction
        new = await service.prepare_password_change(
            user_id=identity.subject, current=current_password, new=new_password, policy=deps.passwords
        )
        async with unit_of_work(info.context.runtime):
            revoked = await service.change_password(
                deps=deps,
                user_id=identity.subject,
                current=current_password,
                new=new,
                keep_session=identity.session_id,
            )
        return PasswordChanged(user_id=strawberry.ID(identity.subject), revoked_sessions=revoked)

    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Set a user's password (admin); all of that user's sessions end. Only of a user "
        "whose permissions you all hold (PermissionDenied otherwise).",
    )
    @maps_errors(ERRORS)
    async def reset_password(
        self, info: Info, user_id: strawberry.ID, new_password: str
    ) -> ResetPasswordResult:
        identity = require_identity(info.context)
        deps = info.context.deps
        # argon2 (history, new hash) before the transaction
        new = await service.prepare_password_reset(
            user_id=str(user_id), new=new_password, actor=identity, policy=deps.passwords
        )
        async with unit_of_work(info.context.runtime):
            revoked = await service.reset_password(deps=deps, user_id=str(user_id), new=new, actor=identity)
        return PasswordChanged(user_id=user_id, revoked_sessions=revoked)

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="Create an API key with some of your permissions; the secret is returned only now.",
    )
    @transactional(ERRORS)
    async def create_api_key(
        self, info: Info, name: str, permissions: list[str], expires_in_days: int = 90
    ) -> CreateApiKeyResult:
        row, secret = await service.create_api_key(
            deps=info.context.deps,
            user_id=_identity(info).subject,
            name=name,
            permissions=permissions,
            days=expires_in_days,
        )
        return ApiKeyCreated(api_key=ApiKeyInfo.from_record(row), secret=secret)

    @strawberry.mutation(
        permission_classes=[Authenticated], description="Revoke one of your API keys at once."
    )
    @transactional(ERRORS)
    async def revoke_api_key(self, info: Info, id: strawberry.ID) -> RevokeApiKeyResult:
        row = await service.revoke_api_key(deps=info.context.deps, key_id=str(id), actor=_identity(info))
        return ApiKeyRevoked(api_key=ApiKeyInfo.from_record(row))


schema = build_schema(query=Query, mutation=Mutation, types=[User])
