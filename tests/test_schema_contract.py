"""Contracts over every subgraph's schema: permissions declared, SDL and supergraph in sync with the code."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBGRAPHS = ("auth", "users", "targets", "jobs", "executions")
FEDERATION_FIELDS = {"_entities", "_service"}


def _schema(name: str):
    return importlib.import_module(f"opsconductor_{name}.schema").schema


@pytest.mark.parametrize("name", SUBGRAPHS)
def test_every_root_field_declares_a_permission(name: str) -> None:
    schema = _schema(name)
    missing = []
    for root in ("query", "mutation", "subscription"):
        root_type = getattr(schema.schema_converter.type_map.get(root.capitalize()), "definition", None)
        if root_type is None:
            continue
        for field in root_type.fields:
            if field.python_name in FEDERATION_FIELDS or field.name in FEDERATION_FIELDS:
                continue
            if not field.permission_classes:
                missing.append(f"{root}.{field.name}")
    assert not missing, f"{name}: root fields without a permission: {missing}"


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
