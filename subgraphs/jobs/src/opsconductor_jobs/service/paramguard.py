"""Checks on parameter values a run substitutes where quoting cannot protect them (pure).

* M14: a value must not add ``..`` segments to a file-transfer path (``/opt/app/{{ f }}`` with
  ``f = ../../etc/cron.d/x``): a runner (``jobs:execute``) must not reach files outside what the
  author (``jobs:write``) wrote.
* H7 (jobs side): PowerShell ends a ``'...'`` string on ' and U+2018..U+201B too. Script arguments and
  transfer paths are passed raw to the engine, which quotes them for PowerShell on WinRM targets;
  a value carrying a typographic single quote there is refused, so no engine quoting gap can turn
  it into code. (Script bodies quote every variant themselves: ``render.quote_powershell``.)
* H7 (cmd.exe): ``command`` steps on Windows targets run through cmd.exe, where the POSIX quoting of
  substituted values means nothing: a value with a cmd.exe metacharacter is refused there
  (:func:`cmd_unsafe` names them; the plan refuses them once it knows a target is Windows).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from opsconductor_jobs.service.render import placeholders, render
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.runplan import Step

_SEGMENTS = re.compile(r"[\\/]")
TYPOGRAPHIC_SINGLE_QUOTES = "\u2018\u2019\u201a\u201b"


def _dot_dots(path: str) -> int:
    return sum(1 for segment in _SEGMENTS.split(path) if segment == "..")


def _transfer_paths(step: Step) -> list[tuple[str, str]]:
    t = step.transfer
    if t is None:
        return []
    if t.direction == "download":  # the source is a path, the destination a label
        return [("source", t.source or "")]
    return [("destination", t.destination)]


def check_values(steps: Sequence[Step], values: Mapping[str, str]) -> None:
    """Raise ``ValidationError`` (field ``parameters.<name>``) for a value that traverses a
    transfer path (M14) or carries a typographic single quote into a PowerShell argument or a
    transfer path (H7)."""
    for index, step in enumerate(steps):
        for key, template in _transfer_paths(step):
            names = placeholders(template)
            if not names:
                continue
            for name in names:
                if any(q in values[name] for q in TYPOGRAPHIC_SINGLE_QUOTES):
                    raise ValidationError(
                        f"parameter {name!r}: a file path must not contain typographic single quotes",
                        field=f"parameters.{name}",
                    )
            written = _dot_dots(render(template, dict.fromkeys(names, "x")))
            if _dot_dots(render(template, values)) > written:
                culprit = next((n for n in names if _dot_dots(values[n]) or ".." in values[n]), names[0])
                raise ValidationError(
                    f"parameter {culprit!r}: a value must not add '..' segments to the {key} path of "
                    f"step {index + 1}",
                    field=f"parameters.{culprit}",
                )
        script = step.script
        if script is not None and script.interpreter == "powershell":
            for argument in script.arguments:
                for name in placeholders(argument):
                    if any(q in values[name] for q in TYPOGRAPHIC_SINGLE_QUOTES):
                        raise ValidationError(
                            f"parameter {name!r}: a PowerShell argument must not contain typographic "
                            "single quotes (\u2018 \u2019 \u201a \u201b)",
                            field=f"parameters.{name}",
                        )


CMD_METACHARACTERS = frozenset('&|<>^%"()!\r\n')


def cmd_unsafe(steps: Sequence[Step], values: Mapping[str, str]) -> list[str]:
    """Names of parameters substituted into ``command`` steps whose values cmd.exe would read as
    syntax (``& | < > ^ % " ( ) !``, line breaks): refused for runs on Windows targets (H7)."""
    out: list[str] = []
    for step in steps:
        if step.type != "command":
            continue
        for name in placeholders(step.command):
            value = values.get(name, "")
            if name not in out and any(c in CMD_METACHARACTERS for c in value):
                out.append(name)
    return out
