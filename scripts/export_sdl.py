"""Write each subgraph's SDL to subgraphs/<name>/schema.graphql (the router composes from these).

`--check` exits 1 when a committed file differs from what the code produces (drift).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBGRAPHS = ("auth", "users", "targets", "jobs", "executions", "schedules", "audit")


def sdl(name: str) -> str:
    return importlib.import_module(f"opsconductor_{name}.schema").schema.as_str().rstrip() + "\n"


def main() -> int:
    check = "--check" in sys.argv
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(SUBGRAPHS)
    drift = []
    for name in names:
        path = ROOT / "subgraphs" / name / "schema.graphql"
        text = sdl(name)
        if check:
            if not path.exists() or path.read_text() != text:
                drift.append(name)
        else:
            path.write_text(text)
    if drift:
        print(f"SDL drift in: {', '.join(drift)} (run `make sdl`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
