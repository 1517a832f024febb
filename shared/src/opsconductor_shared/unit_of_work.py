"""The resolver owns the transaction, written once.

Every mutation follows one rule: open a transaction, call the service, commit, wake the outbox
relay, and turn an expected :class:`~opsconductor_shared.errors.DomainError` into a member of the
mutation's result union. ``@transactional(ERRORS)`` does all of it::

    @strawberry.mutation(permission_classes=[requires("users:write")])
    @transactional(ERRORS)
    async def delete_user(self, info: Info, id: strawberry.ID) -> DeleteUserResult:
        record = await service.delete_user(user_id=str(id), actor=info.context.identity)
        return UserDeleted(id=strawberry.ID(record.id))

``ERRORS`` is the subgraph's one :class:`ErrorTable` (in its ``types.py``: it builds GraphQL types);
the shared errors (validation, not found, permission, dependency) are always in it. A domain error
whose GraphQL type is not a member of the resolver's union is raised on, and becomes a top-level
error carrying its ``extensions.code`` (never masked). Work that has no resolver (followers,
sweeps, consumers) uses :func:`unit_of_work` with the runtime.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import strawberry
from tortoise.transactions import in_transaction

from opsconductor_shared.errors import (
    DependencyUnavailable,
    DependencyUnavailableError,
    DomainError,
    ForbiddenError,
    NotFound,
    NotFoundError,
    PermissionDenied,
    ValidationError,
    ValidationFailed,
)

__all__ = ["ErrorTable", "maps_errors", "transactional", "unit_of_work"]

E = TypeVar("E", bound=DomainError)
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Committer(Protocol):
    """What knows that events were committed (the service's `Runtime`)."""

    def events_committed(self) -> None: ...


def _validation(exc: ValidationError) -> object:
    return ValidationFailed(message=exc.message, field=exc.field)


def _not_found(exc: NotFoundError) -> object:
    return NotFound(message=exc.message, id=strawberry.ID(exc.id) if exc.id else None)


def _forbidden(exc: ForbiddenError) -> object:
    return PermissionDenied(message=exc.message, permission=exc.permission)


def _unavailable(exc: DependencyUnavailableError) -> object:
    return DependencyUnavailable(message=exc.message, service=exc.service)


class ErrorTable:
    """Domain exception class -> the GraphQL error object it becomes (one table per subgraph).

    Lookup walks the exception's MRO, so a handler for a base class covers its subclasses and the
    most specific handler wins.
    """

    def __init__(self, handlers: Mapping[type[DomainError], Callable[[Any], object]] | None = None) -> None:
        self._handlers: dict[type[DomainError], Callable[[Any], object]] = {
            ValidationError: _validation,
            NotFoundError: _not_found,
            ForbiddenError: _forbidden,
            DependencyUnavailableError: _unavailable,
        }
        self._handlers.update(handlers or {})

    def extend(self, handlers: Mapping[type[DomainError], Callable[[Any], object]]) -> ErrorTable:
        table = ErrorTable(self._handlers)
        table._handlers.update(handlers)
        return table

    def to_graphql(self, exc: DomainError) -> object | None:
        for cls in type(exc).__mro__:
            handler = self._handlers.get(cls)  # type: ignore[arg-type]
            if handler is not None:
                return handler(exc)
        return None


SHARED_ERRORS = ErrorTable()
"""The shared error types only (a subgraph without errors of its own)."""


@asynccontextmanager
async def unit_of_work(runtime: Committer) -> AsyncGenerator[None, None]:
    """One transaction; after it commits, the relay is told that events wait in the outbox."""
    async with in_transaction():
        yield
    runtime.events_committed()


def _union_members(fn: Callable[..., Any]) -> frozenset[type] | None:
    """The classes of the resolver's result union, or None when it returns no union."""
    try:
        hint = typing.get_type_hints(fn, include_extras=True).get("return")
    except Exception:  # an unresolvable forward reference: be permissive, never wrong
        return None
    if hint is None:
        return None
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    members = [m for m in typing.get_args(hint) if isinstance(m, type)]
    return frozenset(members) if members else None


def _wrap(fn: F, errors: ErrorTable, *, transaction: bool) -> F:
    members: list[frozenset[type] | None] = []

    def allowed(result: object) -> bool:
        if not members:
            members.append(_union_members(fn))
        union = members[0]
        return union is not None and type(result) in union

    @functools.wraps(fn)
    async def resolver(*args: Any, **kwargs: Any) -> Any:
        info = kwargs.get("info")
        if info is None:
            info = next(a for a in args if hasattr(a, "context") and hasattr(a, "field_name"))
        runtime = info.context.runtime
        try:
            if transaction:
                async with in_transaction():
                    result = await fn(*args, **kwargs)
            else:
                result = await fn(*args, **kwargs)
        except DomainError as exc:
            mapped = errors.to_graphql(exc)
            if mapped is None or not allowed(mapped):
                raise
            return mapped
        if transaction:
            runtime.events_committed()
        return result

    return typing.cast(F, resolver)


def transactional(errors: ErrorTable = SHARED_ERRORS) -> Callable[[F], F]:
    """The resolver runs in one transaction; events are announced after the commit; domain errors
    become the union's error members (a raised error rolls the transaction back)."""
    return lambda fn: _wrap(fn, errors, transaction=True)


def maps_errors(errors: ErrorTable = SHARED_ERRORS) -> Callable[[F], F]:
    """Like :func:`transactional` for resolvers that only read: no transaction, same mapping."""
    return lambda fn: _wrap(fn, errors, transaction=False)
