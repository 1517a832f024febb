"""Job parameters: declarations, type checks, and safe substitution of ``{{ name }}`` placeholders.

Pure functions (no I/O), so the quoting rules can be tested exhaustively.

Why quoting happens here and not in the template: a value such as ``x; rm -rf /`` must reach
the remote shell as one word, whatever the operator wrote around the placeholder. In code
(command steps and script bodies) a value is therefore substituted as a single-quoted literal
of the step's language: ``shlex.quote`` for sh/bash/command steps, PowerShell single-quote
escaping (every kind of single quote doubled) for PowerShell, ``repr`` for Python. Places that
are not code (script arguments, paths, environment values, uploaded content) receive the raw
value: the engine passes them as whole argv elements / paths / data, and the rendered paths are
validated again (absolute, no NUL or newline) before a plan is returned.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsconductor_shared.errors import ValidationError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
PARAMETER_TYPES = ("string", "int", "bool", "choice")
VALUE_MAX_BYTES = 64 * 1024
INT_TEXT = re.compile(r"^[+-]?\d{1,18}$")
TRUE_WORDS = {"true", "yes", "1", "on"}
FALSE_WORDS = {"false", "no", "0", "off"}

Quoter = Callable[[str], str]


@dataclass(frozen=True)
class ParameterDef:
    """A declared job parameter; ``default`` is kept as text (the GraphQL type is ``String``)."""

    name: str
    type: str = "string"
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = field(default_factory=tuple)
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default": self.default,
            "choices": list(self.choices),
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ParameterDef:
        return cls(
            name=str(data["name"]),
            type=str(data.get("type", "string")),
            required=bool(data.get("required", False)),
            default=data.get("default"),
            choices=tuple(data.get("choices") or ()),
            description=data.get("description"),
        )


# ---- quoting ----------------------------------------------------------------------------------


def quote_sh(value: str) -> str:
    """One POSIX shell word (``'...'`` with embedded quotes as ``'"'"'``)."""
    return shlex.quote(value)


# PowerShell treats the typographic single quotes as quote characters too, so each is doubled.
_PS_SINGLE_QUOTES = re.compile("['\u2018\u2019\u201a\u201b]")


def quote_powershell(value: str) -> str:
    """A PowerShell verbatim string: ``'...'`` with every single-quote character doubled."""
    return "'" + _PS_SINGLE_QUOTES.sub(lambda m: m.group(0) * 2, value) + "'"


def quote_python(value: str) -> str:
    """A Python string literal."""
    return repr(value)


def quoter_for(step_type: str, interpreter: str | None) -> Quoter:
    """How values are quoted in the code of a step (command text or script body)."""
    if step_type == "script" and interpreter == "powershell":
        return quote_powershell
    if step_type == "script" and interpreter == "python":
        return quote_python
    return quote_sh


# ---- placeholders -----------------------------------------------------------------------------


def placeholders(text: str | None) -> list[str]:
    """Parameter names referenced by ``{{ name }}`` in ``text``, in order, duplicates kept."""
    return PLACEHOLDER.findall(text or "")


def render(text: str, values: Mapping[str, str], quote: Quoter | None = None) -> str:
    """Replace every ``{{ name }}``; a name without a value is a ``KeyError`` (callers check first)."""

    def one(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        return quote(value) if quote else value

    return PLACEHOLDER.sub(one, text)


# ---- declarations and values ------------------------------------------------------------------


def as_text(value: str | int | bool | None) -> str:
    """The text a typed value is substituted as (bools as ``true``/``false``, no value as ``''``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def coerce(defn: ParameterDef, value: Any) -> str | int | bool:
    """Type-check one value for a parameter; ``ValueError`` with a readable reason otherwise."""
    if defn.type == "int":
        if isinstance(value, bool):
            raise ValueError("must be an integer, not a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and INT_TEXT.match(value.strip()):
            return int(value.strip())
        raise ValueError("must be an integer")
    if defn.type == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise ValueError("must be true or false")
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if len(value.encode()) > VALUE_MAX_BYTES:
        raise ValueError(f"must be at most {VALUE_MAX_BYTES} bytes")
    if defn.type == "choice" and value not in defn.choices:
        raise ValueError(f"must be one of: {', '.join(defn.choices)}")
    return value


def validate_parameters(defs: Sequence[ParameterDef], path: str = "parameters") -> list[ParameterDef]:
    """Check declarations (names, types, choices, defaults); the first problem raises."""
    if len(defs) > 50:
        raise ValidationError("a job has at most 50 parameters", field=path)
    seen: set[str] = set()
    out: list[ParameterDef] = []
    for index, raw in enumerate(defs):
        where = f"{path}[{index}]"
        name = raw.name.strip()
        if not PARAMETER_NAME.match(name):
            raise ValidationError(
                f"parameter name {name!r} must start with a letter or _ and contain only letters, "
                "digits and _ (at most 64)",
                field=f"{where}.name",
            )
        if name in seen:
            raise ValidationError(f"parameter {name!r} is declared twice", field=f"{where}.name")
        seen.add(name)
        if raw.type not in PARAMETER_TYPES:
            raise ValidationError(
                f"parameter {name!r}: type must be one of {', '.join(PARAMETER_TYPES)}", field=f"{where}.type"
            )
        choices = tuple(c for c in dict.fromkeys(raw.choices))
        if raw.type == "choice":
            if not choices:
                raise ValidationError(f"parameter {name!r}: a choice needs choices", field=f"{where}.choices")
            if len(choices) > 100 or any(not c or len(c) > 255 for c in choices):
                raise ValidationError(
                    f"parameter {name!r}: 1..100 choices of 1..255 characters", field=f"{where}.choices"
                )
        elif choices:
            raise ValidationError(
                f"parameter {name!r}: only choice parameters have choices", field=f"{where}.choices"
            )
        defn = ParameterDef(
            name=name,
            type=raw.type,
            required=bool(raw.required),
            default=raw.default,
            choices=choices,
            description=(raw.description or "").strip() or None,
        )
        if defn.description and len(defn.description) > 1000:
            raise ValidationError(
                f"parameter {name!r}: description is at most 1000 characters", field=f"{where}.description"
            )
        if defn.default is not None:
            try:
                coerce(defn, defn.default)
            except ValueError as exc:
                raise ValidationError(f"parameter {name!r}: default {exc}", field=f"{where}.default") from exc
        out.append(defn)
    return out


def resolve_parameters(
    defs: Sequence[ParameterDef], supplied: Mapping[str, Any] | None
) -> dict[str, str | int | bool | None]:
    """The effective typed values: supplied ones type-checked, defaults applied, required enforced.

    A supplied name that is not declared is an error (a typo must not silently fall back to the
    default). Fields are ``parameters.<name>``.
    """
    given = dict(supplied or {})
    known = {d.name for d in defs}
    unknown = [name for name in given if name not in known]
    if unknown:
        raise ValidationError(
            f"unknown parameter(s): {', '.join(sorted(unknown))}", field=f"parameters.{sorted(unknown)[0]}"
        )
    values: dict[str, str | int | bool | None] = {}
    for defn in defs:
        raw = given.get(defn.name)
        if raw is None:
            if defn.default is not None:
                values[defn.name] = coerce(defn, defn.default)
            elif defn.required:
                raise ValidationError(f"parameter {defn.name!r} is required", field=f"parameters.{defn.name}")
            else:
                values[defn.name] = None  # optional without a default: substituted as ''
            continue
        try:
            values[defn.name] = coerce(defn, raw)
        except ValueError as exc:
            raise ValidationError(f"parameter {defn.name!r} {exc}", field=f"parameters.{defn.name}") from exc
    return values


def preview_values(defs: Sequence[ParameterDef]) -> dict[str, str]:
    """Values to render a definition with before any run: defaults, else a harmless marker word.

    Used by ``validateJob`` and ``createJob`` to scan steps for dangerous commands; the real
    values are scanned again by ``jobPlan``.
    """
    values: dict[str, str] = {}
    for defn in defs:
        if defn.default is not None:
            values[defn.name] = as_text(coerce(defn, defn.default))
        else:
            values[defn.name] = f"PARAM_{defn.name}"
    return values
