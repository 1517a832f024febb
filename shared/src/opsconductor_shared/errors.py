"""The one `Error` interface every expected failure implements, and the domain exceptions.

Mutations return unions (`TargetCreated | ValidationFailed | NotFound | PermissionDenied`): the
error members implement `Error`, so clients can always select `... on Error { message }`.
Services raise :class:`DomainError` subclasses; resolvers turn them into the matching type with
the subgraph's `ErrorTable`
(:mod:`opsconductor_shared.unit_of_work`). Anything else is unexpected: logged with the correlation id and masked.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from opsconductor_shared.logging import correlation_id, get_logger

log = get_logger("opsconductor.errors")


@strawberry.federation.interface(
    description="Every expected failure implements this; select `... on Error { message }`."
)
class Error:
    message: str


@strawberry.federation.type(
    shareable=True, description="The input is invalid; `field` names the offending input when known."
)
class ValidationFailed(Error):
    field: str | None = None


@strawberry.federation.type(shareable=True, description="No object with that id exists (or it was deleted).")
class NotFound(Error):
    id: strawberry.ID | None = None


@strawberry.federation.type(
    shareable=True, description="The caller lacks the permission this operation declares."
)
class PermissionDenied(Error):
    permission: str | None = None


@strawberry.federation.type(
    shareable=True, description="A service this operation needs is unreachable; retry later."
)
class DependencyUnavailable(Error):
    service: str | None = None


# ---- domain exceptions (no strawberry in service code: services raise these) -----------------


class DomainError(Exception):
    """An expected failure with a message that is safe to show to the caller.

    Raised out of a resolver that has no union for it, it becomes a top-level GraphQL error with
    ``extensions`` (graphql-core copies the attribute), never a masked one.
    """

    code = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, object]:
        return {"code": self.code}


class ValidationError(DomainError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @property
    def extensions(self) -> dict[str, object]:
        return {"code": self.code, "field": self.field}


class NotFoundError(DomainError):
    code = "NOT_FOUND"

    def __init__(self, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.id = id


class ForbiddenError(DomainError):
    code = "FORBIDDEN"

    def __init__(self, message: str, permission: str | None = None) -> None:
        super().__init__(message)
        self.permission = permission


class DependencyUnavailableError(DomainError):
    code = "DEPENDENCY_UNAVAILABLE"

    def __init__(self, message: str, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


class PublicGraphQLError(GraphQLError):
    """A top-level GraphQL error whose message is meant for the client (never masked)."""


def is_client_error(error: GraphQLError) -> bool:
    """graphql-core's error about the request itself (syntax, validation, variable coercion): it
    has no field path and no exception of ours behind it."""
    original = error.original_error
    return not error.path and (original is None or isinstance(original, GraphQLError))


class ClientErrorsQuietSchema(strawberry.federation.Schema):
    """Strawberry logs every error with its traceback; the caller's mistakes (:func:`is_client_error`)
    get the one line `_should_mask` writes instead (review item 6)."""

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        super().process_errors([e for e in errors if not is_client_error(e)], execution_context)


def _should_mask(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None and error.path:  # graphql-core's own errors in a field: safe and useful
        return False
    if isinstance(original, PublicGraphQLError | DomainError):
        return False
    if is_client_error(error):
        # graphql-core's own client errors outside any field (review item 6): a variable that does not
        # coerce (NaN, 1e400, 5.5 for an Int, a Float that would lose precision) - the caller's mistake,
        # answered as a normal GraphQL error; one log line, no traceback.
        log.info("invalid request", error=error.message[:500], correlation_id=correlation_id.get())
        return False
    from strawberry.exceptions import StrawberryGraphQLError

    if isinstance(original, StrawberryGraphQLError):  # permission denials and other deliberate errors
        return False
    log.error(
        "unexpected error in resolver",
        path=error.path,
        error_type=type(original).__name__,
        error=str(original),
        correlation_id=correlation_id.get(),
        exc_info=original,
    )
    return True


def mask_errors_extension() -> MaskErrors:
    return MaskErrors(
        should_mask_error=_should_mask,
        error_message="Internal server error (see the service log with this request's correlation id)",
    )
