"""GraphQL types of the auth subgraph (separate from ORM rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.federation.schema_directives import Key
from tortoise.functions import Max

from opsconductor_auth.models import Session
from opsconductor_shared.auth import AUTHENTICATED, check_permission, entity_permission, require_identity
from opsconductor_shared.errors import Error, NotFound, PermissionDenied, ValidationFailed
from opsconductor_shared.paging import Connection


async def _load_last_seen(user_ids: list[str]) -> list[datetime | None]:
    """Latest session activity per user, for many users in one grouped query."""
    rows = (
        await Session.filter(user_id__in=user_ids)
        .annotate(latest=Max("last_activity_at"))
        .group_by("user_id")
        .values("user_id", "latest")
    )
    found = {str(r["user_id"]): r["latest"] for r in rows}
    return [found.get(i) for i in user_ids]


@strawberry.federation.type(
    keys=[Key(fields="id")],
    description="A user; the users subgraph owns it, auth adds when they were last seen.",
)
class User:
    id: strawberry.ID

    @strawberry.field(
        description="The latest activity of any of the user's sessions (login, refresh, extend, "
        "session status); null when they never logged in. Yourself, or with `users:read`."
    )
    async def last_seen_at(self, info: strawberry.Info) -> datetime | None:
        identity = require_identity(info.context)
        if identity.subject != str(self.id):
            check_permission(info.context, "users:read")
        # a page of users asks once (one grouped query), not once per user
        loaders: dict[str, Any] = info.context.loaders
        loader = loaders.get("auth.last_seen")
        if loader is None:
            loader = loaders["auth.last_seen"] = DataLoader(load_fn=_load_last_seen)
        return await loader.load(str(self.id))

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


@strawberry.type(description="Time left before the calling session ends for inactivity.")
class SessionStatus:
    session_id: strawberry.ID
    remaining_seconds: int
    warning: bool = strawberry.field(description="True within the warning threshold: offer 'stay logged in'.")
    ends_at: datetime


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
    ip_address: str | None = strawberry.field(description="Client address (first X-Forwarded-For hop).")
    user_agent: str | None
    at: datetime


LoginAttemptConnection = Connection[LoginAttemptInfo]
