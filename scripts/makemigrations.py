"""Generate tortoise migrations for one service: `python scripts/makemigrations.py targets [name]`.

Runs tortoise's built-in autodetector against a throwaway SQLite file (the migration files are
database-neutral), writing into subgraphs/<service>/src/opsconductor_<service>/migrations/.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    service = sys.argv[1]
    extra = ["--name", sys.argv[2]] if len(sys.argv) > 2 else []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "cfg.py"
        cfg.write_text(
            "TORTOISE_ORM = {'connections': {'default': 'sqlite://" + tmp + "/db.sqlite3'}, 'apps': {"
            f"'{service}': {{'models': ['opsconductor_{service}.models'], 'default_connection': 'default',"
            f" 'migrations': 'opsconductor_{service}.migrations'}}}}}}\n"
        )
        return subprocess.call(  # noqa: S603 - fixed argv
            [
                str(Path(sys.executable).with_name("tortoise")),
                "-c",
                "cfg.TORTOISE_ORM",
                "makemigrations",
                *extra,
            ],
            cwd=tmp,
            env={"PYTHONPATH": tmp, "PATH": "/usr/bin:/bin"},
        )


if __name__ == "__main__":
    raise SystemExit(main())
