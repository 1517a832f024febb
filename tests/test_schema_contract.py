"""Contracts over every subgraph's schema: permissions declared, SDL and supergraph in sync with the code."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBGRAPHS = ("auth", "users", "targets", "jobs", "executions", "schedules", "audit")
FEDERATION_FIELDS = {"_entities", "_service"}


def _schema(name: str):
    return importlib.import_module(f"opsconductor_{name}.schema").schema


def _roots(schema):
    """(``"Query"|"Mutation"|"Subscription"``, Strawberry definition) of each root type, whatever its
    Python class is called (a subgraph may merge several classes into e.g. ``RootMutation``)."""
    graphql = schema._schema
    for label, root in (
        ("Query", graphql.query_type),
        ("Mutation", graphql.mutation_type),
        ("Subscription", graphql.subscription_type),
    ):
        definition = (
            getattr(schema.schema_converter.type_map.get(root.name), "definition", None) if root else None
        )
        if definition is not None:
            yield label, definition


@pytest.mark.parametrize("name", SUBGRAPHS)
def test_every_root_field_declares_a_permission(name: str) -> None:
    schema = _schema(name)
    missing = []
    for root, root_type in _roots(schema):
        for field in root_type.fields:
            if field.python_name in FEDERATION_FIELDS or field.name in FEDERATION_FIELDS:
                continue
            if not field.permission_classes:
                missing.append(f"{root}.{field.name}")
    assert not missing, f"{name}: root fields without a permission: {missing}"


def _entity_types(schema) -> dict[str, type]:
    """Types with a resolvable federation ``@key`` in one subgraph: reachable through ``_entities``."""
    from strawberry.federation.schema_directives import Key

    found = {}
    for name, gql_type in schema.schema_converter.type_map.items():
        definition = getattr(gql_type, "definition", None)
        keys = [d for d in getattr(definition, "directives", None) or () if isinstance(d, Key)]
        # `resolvable: false` keys only reference the type: that subgraph serves no `_entities` for it.
        if not any(getattr(k, "resolvable", True) is not False for k in keys):
            continue
        found[name] = definition.origin
    return found


@pytest.mark.parametrize("name", SUBGRAPHS)
def test_every_entity_resolver_declares_a_permission(name: str) -> None:
    """`_entities` is callable by anyone who reaches the subgraph: each entity lookup needs a declared
    (and enforced) permission, recorded by `entity_permission` on `resolve_reference`."""
    from opsconductor_shared.auth import entity_permission_of

    missing = []
    for type_name, origin in _entity_types(_schema(name)).items():
        if not hasattr(origin, "resolve_reference"):
            missing.append(f"{type_name} (no resolve_reference: built from the representation unchecked)")
        elif entity_permission_of(origin) is None:
            missing.append(f"{type_name}.resolve_reference")
    assert not missing, f"{name}: entity types without a declared permission: {missing}"


def _supergraph():
    from graphql import build_schema as build_sdl

    return build_sdl((ROOT / "router" / "supergraph.graphql").read_text(), assume_valid=True)


def test_every_supergraph_operation_and_entity_is_declared_in_its_subgraph() -> None:
    """Walk the composed schema the router serves: each root field must come from a subgraph field
    that declares a permission, and each entity must have a declared resolver in every subgraph
    that keys it. Catches a supergraph composed from code the contract above never saw."""
    from opsconductor_shared.auth import entity_permission_of

    supergraph = _supergraph()
    schemas = {name: _schema(name) for name in SUBGRAPHS}
    declared: dict[str, dict[str, bool]] = {}
    entities: dict[str, list[tuple[str, bool]]] = {}
    for name, schema in schemas.items():
        for root, definition in _roots(schema):
            for field in definition.fields:
                graphql_name = schema.config.name_converter.from_field(field)
                declared.setdefault(f"{root}.{graphql_name}", {})[name] = bool(field.permission_classes)
        for type_name, origin in _entity_types(schema).items():
            entities.setdefault(type_name, []).append((name, entity_permission_of(origin) is not None))

    problems = []
    for root_type in (supergraph.query_type, supergraph.mutation_type, supergraph.subscription_type):
        if root_type is None:
            continue
        for field_name in root_type.fields:
            if field_name in FEDERATION_FIELDS:
                continue
            owners = declared.get(f"{root_type.name}.{field_name}")
            if not owners:
                problems.append(f"{root_type.name}.{field_name}: in the supergraph but in no subgraph's code")
            elif not all(owners.values()):
                problems.append(
                    f"{root_type.name}.{field_name}: no permission in {sorted(k for k, v in owners.items() if not v)}"
                )
    for type_name in supergraph.type_map:
        gql_type = supergraph.type_map[type_name]
        ast = getattr(gql_type, "ast_node", None)
        directives = getattr(ast, "directives", None) or []
        keyed = any(
            d.name.value == "join__type" and any(a.name.value == "key" for a in d.arguments)
            for d in directives
        )
        if not keyed:
            continue
        owners = entities.get(type_name, [])
        if not owners:
            problems.append(f"entity {type_name}: keyed in the supergraph, no subgraph code keys it")
        problems += [f"entity {type_name}: no declared resolver in {svc}" for svc, ok in owners if not ok]
    assert not problems, "\n".join(problems)


def test_supergraph_has_operations() -> None:
    """Guard against an empty walk (the walk above must see real operations to mean anything)."""
    supergraph = _supergraph()
    assert len(supergraph.query_type.fields) > 5 and len(supergraph.mutation_type.fields) > 5


@pytest.mark.parametrize("name", SUBGRAPHS)
def test_schema_uses_federation_2_9(name: str) -> None:
    assert "specs.apollo.dev/federation/v2.9" in _schema(name).as_str()


def test_committed_sdl_matches_code() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "export_sdl.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_committed_supergraph_matches_subgraph_sdl() -> None:
    done = subprocess.run(
        ["node", "compose.mjs", "--check"], cwd=ROOT / "router", capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", SUBGRAPHS)
def test_migrations_apply_on_embedded_sqlite(name: str, tmp_path: Path) -> None:
    """`make dev` runs every service on SQLite: its migrations must apply there too (twice: idempotent)."""
    script = (
        "import asyncio\n"
        "from opsconductor_shared.db import ServiceDatabase\n"
        "async def main():\n"
        "    for _ in range(2):\n"
        f"        db = ServiceDatabase(service='{name}', url='sqlite://{tmp_path}/db.sqlite3',\n"
        f"                             models_module='opsconductor_{name}.models',\n"
        f"                             migrations_module='opsconductor_{name}.migrations')\n"
        "        await db.start()\n"
        "        await db.ping()\n"
        "        await db.stop()\n"
        "import os, traceback\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except BaseException:\n"
        "    traceback.print_exc()\n"
        "    os._exit(1)  # a failed SQLite start leaves aiosqlite's thread behind\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
