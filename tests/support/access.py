"""Helpers for access tests: the composed schema, declared permissions, dummy arguments, role users.

Everything is generated from the live schema (router/supergraph.graphql for what the router serves,
each subgraph's Strawberry schema for what each field declares), so operations added later are
covered without editing the tests.
"""

from __future__ import annotations

import importlib
import json
import uuid
from pathlib import Path
from typing import Any

import websockets
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    get_named_type,
    is_required_argument,
    is_required_input_field,
)

from tests.support.platform import RunningPlatform, gql, login

ROOT = Path(__file__).resolve().parents[2]
SUBGRAPHS = ("auth", "users", "targets", "jobs", "executions", "schedules", "audit")
SYSTEM_ROLES = ("admin", "operator", "job_manager", "viewer", "auditor")
FEDERATION_FIELDS = {"_entities", "_service"}
DENIAL_CODES = {"FORBIDDEN", "UNAUTHENTICATED"}
DENIAL_TYPES = {"PermissionDenied", "Unauthenticated"}
PUBLIC = None
AUTHENTICATED = "authenticated"
ROLE_PASSWORD = "Matrix-Pass-1"


def supergraph() -> GraphQLSchema:
    """What the router serves: the composed schema without its ``@inaccessible`` root fields
    (service-only operations, reached only on their subgraph)."""
    schema = build_schema((ROOT / "router" / "supergraph.graphql").read_text(), assume_valid=True)
    for root in (schema.query_type, schema.mutation_type, schema.subscription_type):
        for name, field in list((root.fields if root else {}).items()):
            directives = getattr(field.ast_node, "directives", None) or []
            if any(d.name.value == "inaccessible" for d in directives):
                del root.fields[name]  # type: ignore[union-attr]
    return schema


OWNERS: dict[str, set[str]] = {}
"""``"Mutation.createUser" -> {"users"}``: filled by :func:`declared_permissions`."""


def declared_permissions() -> dict[str, tuple[str | None, ...]]:
    """``"Mutation.createUser" -> ("users:write",)`` from every subgraph's code (``None`` = Public)."""
    found: dict[str, tuple[str | None, ...]] = {}
    for name in SUBGRAPHS:
        schema = importlib.import_module(f"opsconductor_{name}.schema").schema
        graphql = schema._schema
        roots = (
            ("Query", graphql.query_type),
            ("Mutation", graphql.mutation_type),
            ("Subscription", graphql.subscription_type),
        )
        for root, root_type in roots:
            # By the GraphQL name: a subgraph may merge classes into e.g. `RootMutation`.
            definition = (
                getattr(schema.schema_converter.type_map.get(root_type.name), "definition", None)
                if root_type
                else None
            )
            for field in getattr(definition, "fields", ()):
                graphql_name = schema.config.name_converter.from_field(field)
                if graphql_name in FEDERATION_FIELDS:
                    continue
                OWNERS.setdefault(f"{root}.{graphql_name}", set()).add(name)
                found[f"{root}.{graphql_name}"] = tuple(
                    getattr(p, "required_permission", None) for p in field.permission_classes
                )
    return found


def holds(permissions: frozenset[str] | None, required: tuple[str | None, ...]) -> bool:
    """Whether a caller with ``permissions`` (``None`` = anonymous) passes every declared check."""
    from opsconductor_shared.auth import Identity

    for needed in required:
        if needed is PUBLIC:
            continue
        if permissions is None:
            return False
        if needed == AUTHENTICATED:
            continue
        if not Identity(subject="x", kind="user", permissions=permissions).has(needed):
            return False
    return True


# ---- dummy arguments and selections -------------------------------------------------------------


def dummy_value(gql_type: Any) -> Any:
    """A syntactically valid value of ``gql_type``: required input fields filled, ids random."""
    if isinstance(gql_type, GraphQLNonNull):
        return dummy_value(gql_type.of_type)
    if isinstance(gql_type, GraphQLList):
        return [dummy_value(gql_type.of_type)]
    if isinstance(gql_type, GraphQLEnumType):
        return next(iter(gql_type.values))
    if isinstance(gql_type, GraphQLInputObjectType):
        return {
            name: dummy_value(field.type)
            for name, field in gql_type.fields.items()
            if is_required_input_field(field)
        }
    assert isinstance(gql_type, GraphQLScalarType), gql_type
    return {
        "ID": str(uuid.uuid4()),
        "String": f"matrix-{uuid.uuid4().hex[:8]}",
        "Int": 1,
        "Float": 1.0,
        "Boolean": False,
        "JSON": {},
        "DateTime": "2026-01-01T00:00:00+00:00",
    }.get(gql_type.name, "x")


def selection(gql_type: Any) -> str:
    named = get_named_type(gql_type)
    return "" if isinstance(named, GraphQLScalarType | GraphQLEnumType) else " { __typename }"


def operation_document(root: str, name: str, field: GraphQLField) -> tuple[str, dict[str, Any]]:
    """``mutation M($a: T!) { name(a: $a) { __typename } }`` and its variables (required args only)."""
    required = {arg: spec for arg, spec in field.args.items() if is_required_argument(spec)}
    decls = ", ".join(f"${arg}: {spec.type}" for arg, spec in required.items())
    call = ", ".join(f"{arg}: ${arg}" for arg in required)
    doc = f"{root.lower()} Op{f'({decls})' if decls else ''} {{ {name}{f'({call})' if call else ''}{selection(field.type)} }}"
    return doc, {arg: dummy_value(spec.type) for arg, spec in required.items()}


def denial(body: dict[str, Any], name: str) -> str | None:
    """The denial in a response (an error code or a PermissionDenied member), else None."""
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if code in DENIAL_CODES:
            return f"{code}: {error.get('message')}"
    value = (body.get("data") or {}).get(name)
    if isinstance(value, dict) and value.get("__typename") in DENIAL_TYPES:
        return str(value["__typename"])
    return None


async def subscription_denial(
    ws_url: str, doc: str, variables: dict[str, Any], token: str | None
) -> str | None:
    """Open a subscription; a refused connection or a denial error is a denial. Bounded (~5 s)."""
    import asyncio

    params = {"authorization": f"Bearer {token}"} if token else {}
    try:
        async with websockets.connect(
            ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], open_timeout=10
        ) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": params}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if ack["type"] != "connection_ack":
                return f"connection refused: {ack}"
            await ws.send(
                json.dumps(
                    {"id": "1", "type": "subscribe", "payload": {"query": doc, "variables": variables}}
                )
            )
            try:
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 4))
                    if msg["type"] == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                        continue
                    errors = (
                        msg["payload"] if msg["type"] == "error" else (msg.get("payload") or {}).get("errors")
                    )
                    for error in errors or []:
                        code = (error.get("extensions") or {}).get("code")
                        if code in DENIAL_CODES:
                            return f"{code}: {error.get('message')}"
                    if msg["type"] in ("next", "error", "complete"):
                        return None
            except TimeoutError:
                return None  # running, nothing to say yet: not denied
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
        return f"closed {code}" if code in (4401, 4403) else None


# ---- users --------------------------------------------------------------------------------------

CREATE_USER = """mutation($i: CreateUserInput!) { createUser(input: $i) {
  __typename ... on UserCreated { user { id } } ... on Error { message } } }"""


async def create_user(platform: RunningPlatform, admin_token: str, username: str, roles: list[str]) -> str:
    """Create a user through the users subgraph; returns its id."""
    body = await gql(
        platform.url("users"),
        CREATE_USER,
        {
            "i": {
                "username": username,
                "email": f"{username}@example.com",
                "password": ROLE_PASSWORD,
                "roles": roles,
            }
        },
        token=admin_token,
    )
    result = body["data"]["createUser"]
    assert result["__typename"] == "UserCreated", body
    return str(result["user"]["id"])


async def role_users(platform: RunningPlatform, admin_token: str) -> dict[str, str]:
    """One fresh user per system role: role -> username (password ROLE_PASSWORD)."""
    suffix = uuid.uuid4().hex[:6]
    names = {}
    for role in SYSTEM_ROLES:
        username = f"m{role.replace('_', '')}{suffix}"
        await create_user(platform, admin_token, username, [role])
        names[role] = username
    return names


async def role_login(platform: RunningPlatform, username: str) -> str:
    return await login(platform.url("auth"), username, ROLE_PASSWORD)


CREATE_API_KEY = """mutation($n: String!, $p: [String!]!) { createApiKey(name: $n, permissions: $p, expiresInDays: 1) {
  __typename ... on ApiKeyCreated { secret } ... on Error { message } } }"""


async def api_key(url: str, token: str, permissions: list[str], *, name: str = "test") -> str:
    """The secret of a new one-day API key holding ``permissions`` (created by ``token``'s user at ``url``)."""
    body = await gql(url, CREATE_API_KEY, {"n": name, "p": permissions}, token=token)
    assert body["data"]["createApiKey"]["__typename"] == "ApiKeyCreated", body
    return str(body["data"]["createApiKey"]["secret"])
