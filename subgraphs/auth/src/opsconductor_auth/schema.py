"""Auth subgraph: login, refreshSession, logout, me."""

from __future__ import annotations

import strawberry
from tortoise.transactions import in_transaction

from opsconductor_auth import service
from opsconductor_auth.types import (
    AccountDisabled,
    AccountLocked,
    CredentialSet,
    InvalidCredentials,
    InvalidRefreshToken,
    LoggedOut,
    LoginResult,
    LoginSuccess,
    LogoutResult,
    RefreshResult,
    SetUserCredentialInput,
    SetUserCredentialResult,
    User,
)
from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import Authenticated, Public, requires
from opsconductor_shared.errors import DomainError, NotFound, ValidationError, to_graphql_error

Info = strawberry.Info[RequestContext, None]


def _auth(info: Info) -> service.AuthService:
    return info.context.deps.auth


def _success(tokens: service.IssuedTokens, session_id: str) -> LoginSuccess:
    return LoginSuccess(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        access_token_expires_at=tokens.access_expires_at,
        session_id=strawberry.ID(session_id),
        user=User(id=strawberry.ID(tokens.credential.user_id)),
    )


def _client(info: Info) -> tuple[str | None, str | None]:
    request = info.context.request
    if request is None:
        return None, None
    forwarded = request.headers.get("x-forwarded-for")
    ip = forwarded.split(",")[0].strip() if forwarded else (request.client.host if request.client else None)
    return ip, request.headers.get("user-agent")


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[Authenticated], description="The calling user.")
    def me(self, info: Info) -> User | None:
        identity = info.context.identity
        if identity is None or identity.kind != "user":
            return None
        return User(id=strawberry.ID(identity.subject))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[Public], description="Start a session with username and password."
    )
    async def login(self, info: Info, username: str, password: str) -> LoginResult:
        ip, agent = _client(info)
        async with in_transaction():
            try:
                tokens = await _auth(info).login(username, password, ip=ip, user_agent=agent)
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
        return _success(tokens, _session_of(tokens.access_token))

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
        return _success(tokens, _session_of(tokens.access_token))

    @strawberry.mutation(permission_classes=[Authenticated], description="End the calling session.")
    async def logout(self, info: Info) -> LogoutResult:
        identity = info.context.identity
        if identity is None or identity.session_id is None:
            return NotFound(message="no session to end")
        async with in_transaction():
            ok = await _auth(info).logout(identity.session_id)
        info.context.runtime.events_committed()
        if not ok:
            return NotFound(message="session not found", id=strawberry.ID(identity.session_id))
        return LoggedOut(session_id=strawberry.ID(identity.session_id))

    @strawberry.mutation(
        permission_classes=[requires("auth:credentials:write")],
        description="Service-only (users service): set a user's password and token claims.",
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
                )
        except ValidationError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        return CredentialSet(user_id=input.user_id)


def _session_of(access_token: str) -> str:
    import jwt

    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


schema = build_schema(query=Query, mutation=Mutation, types=[User])
