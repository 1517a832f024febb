"""The password half of a user, in auth: setUserCredential with this service's token.

createUser calls auth inside its transaction (README "createUser consistency"):
``async with credentials.withdrawn_on_failure() as credential, unit_of_work(runtime)`` - when the
call fails in a way that may have left a credential in auth, or the commit fails after auth
answered, the credential is withdrawn once the transaction has rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from opsconductor_shared.client import ServiceCallError, ServiceClient
from opsconductor_shared.logging import get_logger
from opsconductor_users.errors import CredentialRejected, CredentialUnavailable
from opsconductor_users.service.records import UserRecord

log = get_logger("opsconductor.users")

SET_CREDENTIAL = """
mutation SetUserCredential($input: SetUserCredentialInput!) {
  setUserCredential(input: $input) {
    __typename
    ... on ValidationFailed { message field }
  }
}"""


class AuthCredentials:
    """The users service's calls to auth's setUserCredential (service token, never retried)."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _set(self, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            data = await self.client.execute(SET_CREDENTIAL, {"input": variables}, retries=0)
        except ServiceCallError as exc:
            raise CredentialUnavailable(f"the auth service did not store the password: {exc}") from exc
        return dict(data["setUserCredential"])

    async def set(self, record: UserRecord, password: str) -> None:
        result = await self._set(
            {
                "userId": record.id,
                "username": record.username,
                "password": password,
                "roles": list(record.roles),
                "permissions": list(record.permissions),
                "isActive": record.is_active,
            }
        )
        if result["__typename"] == "ValidationFailed":
            raise CredentialRejected(
                result.get("message") or "auth refused the credential",
                field=result.get("field") or "password",
            )
        if result["__typename"] != "CredentialSet":
            raise CredentialUnavailable(f"unexpected answer from auth: {result['__typename']}")

    async def withdraw(self, record: UserRecord) -> None:
        """Compensation after a failed create: disable whatever auth may have stored for this id and
        free the username there (the users row was rolled back). Best effort; logged on failure."""
        try:
            await self._set(
                {
                    "userId": record.id,
                    "username": f"~withdrawn~{record.id}",
                    "password": None,
                    "roles": [],
                    "permissions": [],
                    "isActive": False,
                }
            )
        except CredentialUnavailable as exc:
            log.error(
                "could not withdraw a possibly stored credential; disable it in auth by hand",
                user_id=record.id,
                username=record.username,
                error=str(exc),
            )

    @asynccontextmanager
    async def withdrawn_on_failure(self) -> AsyncIterator[PendingCredential]:
        """Wrap createUser's transaction: whatever fails after :meth:`PendingCredential.set` was
        called (auth unreachable, an unexpected answer, the commit itself) withdraws the credential,
        except auth's refusal (``CredentialRejected``: it stored nothing). Auth unreachable becomes
        ``CredentialUnavailable("user not created: ...; nothing was saved, try again")``."""
        pending = PendingCredential(self)
        try:
            yield pending
        except CredentialRejected:
            raise
        except CredentialUnavailable as exc:
            if pending.record is not None:
                await self.withdraw(pending.record)
            raise CredentialUnavailable(
                f"user not created: {exc.message}; nothing was saved, try again"
            ) from exc
        except BaseException:
            if pending.record is not None:
                await self.withdraw(pending.record)
            raise


class PendingCredential:
    """The credential of one user being created: remembers the user once auth may hold something."""

    def __init__(self, credentials: AuthCredentials) -> None:
        self._credentials = credentials
        self.record: UserRecord | None = None

    async def set(self, record: UserRecord, password: str) -> None:
        self.record = record
        await self._credentials.set(record, password)
