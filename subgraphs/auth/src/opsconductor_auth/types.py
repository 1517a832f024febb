"""GraphQL types of the auth subgraph (separate from ORM rows), its error types, the one mapping
table from domain errors to them (``ERRORS``), and the typed resolver context (``Info``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet

from opsconductor_auth import errors, loaders, service
from opsconductor_auth.models import ApiKey, LoginAttempt, Session
from opsconductor_auth.settings import Settings
from opsconductor_shared.app import RequestContext
from opsconductor_shared.auth import AUTHENTICATED, check_permission, entity_permission, require_identity
from opsconductor_shared.errors import Error, NotFound, PermissionDenied, ValidationFailed
from opsconductor_shared.paging import Connection
from opsconductor_shared.unit_of_work import ErrorTable

Info = strawberry.Info[RequestContext[Settings, service.Deps], None]


@strawberry.federation.type(
    keys=[Key(fields=FieldSet("id"))],
    description="A user; the users subgraph owns it, auth adds when they were last seen.",
)
class User:
    id: strawberry.ID

    @strawberry.field(
        description="The latest activity of any of the user's sessions (login, refresh, extend, "
        "session status); null when they never logged in. Yourself, or with `users:read`."
    )
    async def last_seen_at(self, info: Info) -> datetime | None:
        identity = require_identity(info.context)
        if identity.subject != str(self.id):
            check_permission(info.context, "users:read")
        # a page of users asks once (one grouped query), not once per user
        return await loaders.last_seen(info.context.loaders).load(str(self.id))

    @classmethod
    @entity_permission(AUTHENTICATED)
    async def resolve_reference(cls, id: strawberry.ID) -> User:
        """Any verified caller may reference a user; `lastSeenAt` checks who is asking."""
        return cls(id=id)


@strawberry.type(description="Tokens for a new or refreshed session.")
class LoginSuccess:
    access_token: str
    refresh_token: str = strawberry.field(description="Opaque; single use: every refresh returns a new one.")
    access_token_expires_at: datetime
    session_id: strawberry.ID
    user: User

    @classmethod
    def from_record(cls, tokens: service.IssuedTokens) -> LoginSuccess:
        return cls(
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            access_token_expires_at=tokens.access_expires_at,
            session_id=strawberry.ID(tokens.session_id),
            user=User(id=strawberry.ID(tokens.credential.user_id)),
        )


@strawberry.type(description="Unknown username or wrong password (the answer does not say which).")
class InvalidCredentials(Error):
    pass


@strawberry.type(description="Too many failed logins; try again after `until`.")
class AccountLocked(Error):
    until: datetime


@strawberry.type(description="The account is deactivated.")
class AccountDisabled(Error):
    pass


@strawberry.type(description="The refresh token is unknown, used, or its session ended.")
class InvalidRefreshToken(Error):
    pass


@strawberry.type(description="The session is revoked; its access tokens stop working at once.")
class LoggedOut:
    session_id: strawberry.ID


LoginResult = Annotated[
    LoginSuccess | InvalidCredentials | AccountLocked | AccountDisabled, strawberry.union("LoginResult")
]
RefreshResult = Annotated[LoginSuccess | InvalidRefreshToken, strawberry.union("RefreshResult")]
LogoutResult = Annotated[LoggedOut | NotFound, strawberry.union("LogoutResult")]


@strawberry.input(description="Service-only: the users service sets a user's password and claims.")
class SetUserCredentialInput:
    user_id: strawberry.ID
    username: str
    password: str | None = None
    roles: list[str] = strawberry.field(default_factory=list)
    permissions: list[str] = strawberry.field(default_factory=list)
    is_active: bool = True


@strawberry.type
class CredentialSet:
    user_id: strawberry.ID


SetUserCredentialResult = Annotated[
    CredentialSet | ValidationFailed, strawberry.union("SetUserCredentialResult")
]


@strawberry.type(
    name="Session", description="A login session; it ends after the idle timeout, or when revoked."
)
class SessionInfo:
    id: strawberry.ID
    user: User
    created_at: datetime
    last_activity_at: datetime
    ends_at: datetime = strawberry.field(
        description="When inactivity ends it (refresh or extendSession move it)."
    )
    revoked_at: datetime | None
    revoked_reason: str | None
    ip_address: str | None
    user_agent: str | None
    active: bool
    current: bool = strawberry.field(description="The session of the token that asked.")

    @classmethod
    def from_record(cls, row: Session, *, policy: service.SessionPolicy, current: str | None) -> SessionInfo:
        return cls(
            id=strawberry.ID(str(row.id)),
            user=User(id=strawberry.ID(row.user_id)),
            created_at=row.created_at,
            last_activity_at=row.last_activity_at,
            ends_at=policy.idle_deadline(row),
            revoked_at=row.revoked_at,
            revoked_reason=row.revoked_reason,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            active=policy.is_active(row),
            current=str(row.id) == current,
        )


@strawberry.type(description="Time left before the calling session ends for inactivity.")
class SessionStatus:
    session_id: strawberry.ID
    remaining_seconds: int
    warning: bool = strawberry.field(description="True within the warning threshold: offer 'stay logged in'.")
    ends_at: datetime

    @classmethod
    def from_record(cls, row: Session, *, policy: service.SessionPolicy) -> SessionStatus:
        remaining = policy.remaining_seconds(row)
        return cls(
            session_id=strawberry.ID(str(row.id)),
            remaining_seconds=remaining,
            warning=policy.warns(remaining),
            ends_at=policy.idle_deadline(row),
        )


@strawberry.type(description="The session has ended (idle timeout or revoked); log in again.")
class SessionEnded(Error):
    pass


@strawberry.type(description="The session is revoked; its access tokens stop working at once.")
class SessionRevoked:
    session: SessionInfo


@strawberry.type(description="How many sessions were revoked.")
class SessionsRevoked:
    count: int


ExtendSessionResult = Annotated[SessionStatus | SessionEnded, strawberry.union("ExtendSessionResult")]
RevokeSessionResult = Annotated[
    SessionRevoked | NotFound | PermissionDenied, strawberry.union("RevokeSessionResult")
]
RevokeAllSessionsResult = Annotated[
    SessionsRevoked | PermissionDenied, strawberry.union("RevokeAllSessionsResult")
]


@strawberry.type(description="The password is changed; other sessions of the user were ended.")
class PasswordChanged:
    user_id: strawberry.ID
    revoked_sessions: int


ChangePasswordResult = Annotated[
    PasswordChanged | InvalidCredentials | ValidationFailed, strawberry.union("ChangePasswordResult")
]
ResetPasswordResult = Annotated[
    PasswordChanged | NotFound | ValidationFailed | PermissionDenied, strawberry.union("ResetPasswordResult")
]


@strawberry.type(description="An API key for automation (the secret is shown once, at creation).")
class ApiKeyInfo:
    id: strawberry.ID
    name: str
    permissions: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, row: ApiKey) -> ApiKeyInfo:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            permissions=list(row.permissions),
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(description="Use `secret` as `Authorization: Bearer <secret>`; it is not shown again.")
class ApiKeyCreated:
    api_key: ApiKeyInfo
    secret: str


@strawberry.type(description="The API key stops working at once.")
class ApiKeyRevoked:
    api_key: ApiKeyInfo


CreateApiKeyResult = Annotated[ApiKeyCreated | ValidationFailed, strawberry.union("CreateApiKeyResult")]
RevokeApiKeyResult = Annotated[ApiKeyRevoked | NotFound, strawberry.union("RevokeApiKeyResult")]


@strawberry.type(
    name="LoginAttempt", description="One login try, successful or not (the password is never kept)."
)
class LoginAttemptInfo:
    id: strawberry.ID
    username: str = strawberry.field(description="The username as typed (also when no such user exists).")
    user: User | None = strawberry.field(description="The user it matched; null for an unknown username.")
    success: bool
    reason: str = strawberry.field(description="ok, bad_password, unknown_user, locked or disabled.")
    ip_address: str | None = strawberry.field(
        description="Client address: the router's signed x-opsc-client-ip, else the socket peer "
        "(X-Forwarded-For is never believed)."
    )
    user_agent: str | None
    at: datetime

    @classmethod
    def from_record(cls, row: LoginAttempt) -> LoginAttemptInfo:
        return cls(
            id=strawberry.ID(str(row.id)),
            username=row.username,
            user=User(id=strawberry.ID(row.user_id)) if row.user_id else None,
            success=row.success,
            reason=row.reason,
            ip_address=row.ip_address,
            user_agent=row.user_agent,
            at=row.at,
        )


LoginAttemptConnection = Connection[LoginAttemptInfo]


ERRORS = ErrorTable(
    {
        errors.LoginFailed: lambda e: InvalidCredentials(message=e.message),
        errors.AccountLocked: lambda e: AccountLocked(message=e.message, until=e.until),
        errors.AccountDisabled: lambda e: AccountDisabled(message=e.message),
        errors.InvalidRefresh: lambda e: InvalidRefreshToken(message=e.message),
        errors.SessionEndedError: lambda e: SessionEnded(message=e.message),
    }
)
"""Auth's domain errors -> their GraphQL types (the shared ones are in every table)."""
