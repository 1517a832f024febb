"""`requires`, `Authenticated`, `Public`, error masking and query limits, through a real schema
built with `build_schema` (the same factory, extensions and masking every subgraph uses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import strawberry

from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import (
    AUTHENTICATED,
    FORBIDDEN,
    UNAUTHENTICATED,
    Authenticated,
    Identity,
    Public,
    entity_permission,
    entity_permission_of,
    requires,
)
from opsconductor_shared.errors import DomainError, PublicGraphQLError

SECRET_DETAIL = "password=hunter2 at db.internal:5432"


@dataclass
class Context:
    """The two attributes the permission classes read (RequestContext has them too)."""

    identity: Identity | None = None
    auth_error: str | None = None


@strawberry.type
class Node:
    value: int

    @strawberry.field
    def child(self) -> Node:
        return Node(value=self.value + 1)


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[Public])
    def hello(self) -> str:
        return "hi"

    @strawberry.field(permission_classes=[Authenticated])
    def whoami(self, info: strawberry.Info) -> str:
        return info.context.identity.subject

    @strawberry.field(permission_classes=[requires("things:read")])
    def things(self) -> list[str]:
        return ["a", "b"]

    @strawberry.field(permission_classes=[requires("things:write")])
    def write_things(self) -> str:
        return "written"

    @strawberry.field(permission_classes=[Public])
    def broken(self) -> str:
        raise RuntimeError(SECRET_DETAIL)

    @strawberry.field(permission_classes=[Public])
    def public_error(self) -> str:
        raise PublicGraphQLError("the export is still running; retry in a minute")

    @strawberry.field(permission_classes=[Public])
    def domain_error(self) -> str:
        raise DomainError("that name is taken")

    @strawberry.field(permission_classes=[Public])
    def root(self) -> Node:
        return Node(value=0)


schema = build_schema(query=Query)


def user(*permissions: str) -> Identity:
    return Identity(subject="user-1", kind="user", permissions=frozenset(permissions))


async def run(query: str, context: Context) -> tuple[Any, list[dict[str, Any]]]:
    result = await schema.execute(query, context_value=context)
    return result.data, [e.formatted for e in result.errors or []]


async def test_public_field_needs_no_identity() -> None:
    data, errors = await run("{ hello }", Context())
    assert errors == []
    assert data == {"hello": "hi"}


async def test_anonymous_gets_unauthenticated() -> None:
    for field in ("whoami", "things"):
        data, errors = await run(f"{{ {field} }}", Context())
        assert data is None
        assert len(errors) == 1
        assert errors[0]["extensions"] == {"code": UNAUTHENTICATED}
        assert errors[0]["message"] == "authentication required"
        assert errors[0]["path"] == [field]


async def test_why_the_token_was_refused_reaches_the_caller() -> None:
    _data, errors = await run("{ whoami }", Context(auth_error="token expired"))
    assert errors[0]["message"] == "token expired"
    assert errors[0]["extensions"]["code"] == UNAUTHENTICATED


async def test_authenticated_field_accepts_any_identity() -> None:
    data, errors = await run("{ whoami }", Context(identity=user()))
    assert errors == []
    assert data == {"whoami": "user-1"}


async def test_missing_permission_is_forbidden_and_names_it() -> None:
    data, errors = await run("{ things }", Context(identity=user("other:read")))
    assert data is None
    assert errors[0]["message"] == "permission 'things:read' required"
    assert errors[0]["extensions"] == {"code": FORBIDDEN, "permission": "things:read"}


@pytest.mark.parametrize("granted", ["things:read", "things:*", "*"])
async def test_granted_permission(granted: str) -> None:
    data, errors = await run("{ things }", Context(identity=user(granted)))
    assert errors == []
    assert data == {"things": ["a", "b"]}


async def test_one_denied_field_does_not_hide_the_others() -> None:
    data, errors = await run("{ things writeThings: hello }", Context(identity=user("things:read")))
    assert errors == []
    data, errors = await run("{ hello writeThings }", Context(identity=user("things:read")))
    assert data is None  # non-null field failed: the error bubbles to the root
    assert [e["extensions"]["code"] for e in errors] == [FORBIDDEN]


async def test_unexpected_exception_is_masked() -> None:
    data, errors = await run("{ broken }", Context())
    assert data is None
    assert len(errors) == 1
    message = errors[0]["message"]
    assert message.startswith("Internal server error")
    assert "hunter2" not in message
    assert "RuntimeError" not in str(errors[0])
    assert SECRET_DETAIL not in str(errors[0])


async def test_public_graphql_error_and_domain_error_are_not_masked() -> None:
    _data, errors = await run("{ publicError }", Context())
    assert errors[0]["message"] == "the export is still running; retry in a minute"
    _data, errors = await run("{ domainError }", Context())
    assert errors[0]["message"] == "that name is taken"
    assert errors[0]["extensions"] == {"code": "BAD_REQUEST"}


async def test_syntax_and_validation_errors_are_not_masked() -> None:
    _data, errors = await run("{ nope }", Context())
    assert "Cannot query field 'nope'" in errors[0]["message"]
    _data, errors = await run("{ hello ", Context())
    assert "Syntax Error" in errors[0]["message"]


def nested(depth: int) -> str:
    """A query whose deepest field sits ``depth`` levels below the root field (which is level 0)."""
    body = "value"
    for _ in range(depth - 1):
        body = f"child {{ {body} }}"
    return f"{{ root {{ {body} }} }}"


async def test_depth_limit() -> None:
    data, errors = await run(nested(15), Context())
    assert errors == []
    assert data is not None

    data, errors = await run(nested(16), Context())
    assert data is None
    assert len(errors) == 1
    assert "exceeds maximum operation depth of 15" in errors[0]["message"]


async def test_alias_limit() -> None:
    query = "{ " + " ".join(f"a{i}: hello" for i in range(31)) + " }"
    data, errors = await run(query, Context())
    assert data is None
    assert "aliases" in errors[0]["message"].lower()


# ---- entity resolvers ---------------------------------------------------------------------------


@strawberry.federation.type(keys=["id"])
class Widget:
    id: strawberry.ID

    @classmethod
    @entity_permission("widgets:read")
    async def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID) -> Widget:
        assert info.context is not None  # the resolver still gets `info` when it asks for it
        return cls(id=id)


@strawberry.federation.type(keys=["id"])
class Gadget:
    id: strawberry.ID

    @classmethod
    @entity_permission(AUTHENTICATED)
    def resolve_reference(cls, id: strawberry.ID) -> Gadget:  # no `info`: sync stub
        return cls(id=id)


@strawberry.type
class EntityQuery:
    @strawberry.field(permission_classes=[Public])
    def widget(self) -> Widget:
        return Widget(id=strawberry.ID("w0"))

    @strawberry.field(permission_classes=[Public])
    def gadget(self) -> Gadget:
        return Gadget(id=strawberry.ID("g0"))


entity_schema = build_schema(query=EntityQuery, types=[Widget, Gadget])
ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on Widget { id } ... on Gadget { id } } }"""


async def entities(context: Context, *reps: dict[str, str]) -> tuple[Any, list[dict[str, Any]]]:
    result = await entity_schema.execute(
        ENTITIES, variable_values={"r": [dict(r) for r in reps]}, context_value=context
    )
    return result.data, [e.formatted for e in result.errors or []]


def test_entity_permission_is_recorded() -> None:
    assert entity_permission_of(Widget) == "widgets:read"
    assert entity_permission_of(Gadget) == AUTHENTICATED
    assert entity_permission_of(Node) is None


async def test_entity_lookup_needs_its_permission() -> None:
    w = {"__typename": "Widget", "id": "w1"}
    g = {"__typename": "Gadget", "id": "g1"}
    data, errors = await entities(Context(identity=user("widgets:read")), w, g)
    assert data == {"_entities": [{"id": "w1"}, {"id": "g1"}]} and not errors

    data, errors = await entities(Context(identity=user("other:read")), w, g)
    assert data["_entities"][0] is None and data["_entities"][1] == {"id": "g1"}
    assert [e["extensions"]["code"] for e in errors] == [FORBIDDEN]

    data, errors = await entities(Context(), w, g)
    assert data["_entities"] == [None, None]
    assert sorted(e["extensions"]["code"] for e in errors) == [UNAUTHENTICATED, UNAUTHENTICATED]
