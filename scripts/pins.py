"""Regenerate constraints.txt and [tool.uv] constraint-dependencies from the working .venv."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# Every package the workspace installs, pinned (generated from a working .venv with 'make pins').\n"
    "# uv reads these through [tool.uv] constraint-dependencies in pyproject.toml; "
    "pip users: pip install -c constraints.txt\n"
)


def main() -> int:
    uv = shutil.which("uv") or "uv"
    frozen = subprocess.run(  # noqa: S603 - our own fixed argv
        [uv, "pip", "freeze", "-p", sys.executable], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    pins = sorted(line for line in frozen if "==" in line and not line.startswith(("opsconductor", "-e")))
    (ROOT / "constraints.txt").write_text(HEADER + "\n".join(pins) + "\n")
    pyproject = ROOT / "pyproject.toml"
    block = "constraint-dependencies = [\n" + "".join(f'  "{p}",\n' for p in pins) + "]\n"
    text = re.sub(r"constraint-dependencies = \[\n(?:  \".*\",\n)*\]\n", block, pyproject.read_text())
    pyproject.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
