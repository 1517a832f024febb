"""Parameter declarations, type checks and quoting (pure), checked against real shells where installed.

The shell round-trips run the rendered command with /bin/sh (and bash / pwsh / python when
present) and compare what the program received with the original value: the quoting is only
right if the shell agrees.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from opsconductor_jobs.service.render import (
    ParameterDef,
    as_text,
    coerce,
    placeholders,
    preview_values,
    quote_powershell,
    quote_python,
    quote_sh,
    quoter_for,
    render,
    resolve_parameters,
    validate_parameters,
)
from opsconductor_shared.errors import ValidationError

NASTY = [
    "plain",
    "",
    "two words",
    "it's",
    "'",
    "''",
    '"double"',
    "$(id)",
    "`id`",
    "$HOME ${PATH}",
    "a; rm -rf /",
    "x && reboot",
    "| sh",
    "back\\slash\\",
    "new\nline",
    "tab\there",
    "*?[glob]",
    "~root",
    "-n",
    "--help",
    "{{ other }}",
    "ünïcödé ✓",
    "\u2019typographic\u2018 quotes\u201b\u201a",
    "!history",
    "%PATH%",
]


# ---- placeholders -----------------------------------------------------------------------------


def test_placeholders_are_found_with_or_without_spaces() -> None:
    assert placeholders("echo {{ a }} {{b}} {{  c_1  }} {{ a }}") == ["a", "b", "c_1", "a"]
    assert placeholders("no {{ 1x }} {{ }} {x} {{ a-b }}") == []
    assert placeholders(None) == []


def test_render_without_quoting_is_verbatim() -> None:
    assert render("/srv/{{ app }}/current", {"app": "my app"}) == "/srv/my app/current"


def test_render_leaves_text_around_placeholders_alone() -> None:
    assert render("echo {{ a }}-{{a}}!", {"a": "x y"}, quote_sh) == "echo 'x y'-'x y'!"


def test_a_substituted_value_is_not_rendered_again() -> None:
    # The value contains a placeholder: it must stay literal text, not expand a second time.
    assert render("echo {{ a }}", {"a": "{{ b }}", "b": "boom"}, quote_sh) == "echo '{{ b }}'"


def test_quoter_follows_step_type_and_interpreter() -> None:
    assert quoter_for("command", None) is quote_sh
    assert quoter_for("script", "bash") is quote_sh
    assert quoter_for("script", "sh") is quote_sh
    assert quoter_for("script", "powershell") is quote_powershell
    assert quoter_for("script", "python") is quote_python


# ---- quoting, checked by real interpreters ----------------------------------------------------


@pytest.mark.parametrize("value", NASTY)
def test_sh_quoting_round_trips_through_sh(value: str) -> None:
    command = render("printf '%s' {{ v }}", {"v": value}, quote_sh)
    out = subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=True, timeout=10)
    assert out.stdout.decode() == value


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("value", NASTY)
def test_sh_quoting_round_trips_through_bash(value: str) -> None:
    command = render("printf '%s' {{ v }}", {"v": value}, quote_sh)
    out = subprocess.run(["bash", "-c", command], capture_output=True, check=True, timeout=10)
    assert out.stdout.decode() == value


@pytest.mark.parametrize("value", NASTY)
def test_python_quoting_round_trips(value: str) -> None:
    body = render("import sys; sys.stdout.write({{ v }})", {"v": value}, quote_python)
    out = subprocess.run([sys.executable, "-c", body], capture_output=True, check=True, timeout=20)
    assert out.stdout.decode() == value


# PowerShell is not a Debian package here; the quoting rules are also covered by the string tests above.
@pytest.mark.skipif(shutil.which("pwsh") is None, reason="PowerShell (pwsh) not installed")
@pytest.mark.parametrize("value", [v for v in NASTY if "\n" not in v])
def test_powershell_quoting_round_trips(value: str) -> None:
    body = render("[Console]::Out.Write({{ v }})", {"v": value}, quote_powershell)
    out = subprocess.run(
        ["pwsh", "-NoProfile", "-NonInteractive", "-Command", body],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.decode() == value


def test_powershell_quoting_doubles_every_single_quote_kind() -> None:
    assert quote_powershell("it's") == "'it''s'"
    assert quote_powershell("a\u2019b") == "'a\u2019\u2019b'"
    assert quote_powershell("$env:X `n") == "'$env:X `n'"  # no expansion inside '...'
    assert quote_powershell("") == "''"


def test_sh_quoting_is_one_word() -> None:
    assert quote_sh("a; rm -rf /") == "'a; rm -rf /'"
    assert quote_sh("it's") == "'it'\"'\"'s'"
    assert quote_sh("") == "''"


# ---- declarations -----------------------------------------------------------------------------


def p(name: str = "x", type: str = "string", **kw: object) -> ParameterDef:
    return ParameterDef(name=name, type=type, **kw)  # type: ignore[arg-type]


def field_of(defs: list[ParameterDef]) -> str | None:
    with pytest.raises(ValidationError) as info:
        validate_parameters(defs)
    assert info.value.message
    return info.value.field


@pytest.mark.parametrize(
    ("defs", "field"),
    [
        ([p(name="")], "parameters[0].name"),
        ([p(name="1abc")], "parameters[0].name"),
        ([p(name="a-b")], "parameters[0].name"),
        ([p(name="x" * 65)], "parameters[0].name"),
        ([p(name="a"), p(name="a")], "parameters[1].name"),
        ([p(type="float")], "parameters[0].type"),
        ([p(type="choice")], "parameters[0].choices"),
        ([p(type="string", choices=("a",))], "parameters[0].choices"),
        ([p(type="choice", choices=("",))], "parameters[0].choices"),
        ([p(type="int", default="abc")], "parameters[0].default"),
        ([p(type="bool", default="maybe")], "parameters[0].default"),
        ([p(type="choice", choices=("a", "b"), default="c")], "parameters[0].default"),
        ([p(description="d" * 1001)], "parameters[0].description"),
        ([p(name=f"p{i}") for i in range(51)], "parameters"),
    ],
)
def test_bad_declarations_name_the_field(defs: list[ParameterDef], field: str) -> None:
    assert field_of(defs) == field


def test_good_declarations_are_normalised() -> None:
    out = validate_parameters(
        [
            p(name=" env ", type="choice", choices=("dev", "prod", "dev"), default="dev"),
            p(name="count", type="int", default="3", description="  "),
            p(name="force", type="bool", required=True),
        ]
    )
    assert out[0].name == "env" and out[0].choices == ("dev", "prod")
    assert out[1].description is None
    assert ParameterDef.from_json(out[2].to_json()) == out[2]


# ---- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type", "value", "expected"),
    [
        ("int", 5, 5),
        ("int", "42", 42),
        ("int", " -7 ", -7),
        ("int", 3.0, 3),
        ("bool", True, True),
        ("bool", "yes", True),
        ("bool", "FALSE", False),
        ("bool", "0", False),
        ("string", "x y", "x y"),
    ],
)
def test_coerce_accepts(type: str, value: object, expected: object) -> None:
    assert coerce(p(type=type), value) == expected


@pytest.mark.parametrize(
    ("defn", "value"),
    [
        (p(type="int"), True),
        (p(type="int"), "4.5"),
        (p(type="int"), 4.5),
        (p(type="int"), "1e3"),
        (p(type="int"), [1]),
        (p(type="bool"), "maybe"),
        (p(type="bool"), 1),
        (p(type="string"), 5),
        (p(type="string"), "nul\x00byte"),
        (p(type="string"), "x" * (64 * 1024 + 1)),
        (p(type="choice", choices=("a", "b")), "c"),
        (p(type="choice", choices=("a", "b")), "A"),
    ],
)
def test_coerce_refuses(defn: ParameterDef, value: object) -> None:
    with pytest.raises(ValueError, match="must"):
        coerce(defn, value)


def test_resolve_applies_defaults_and_checks_required_and_unknown() -> None:
    defs = [
        p(name="env", type="choice", choices=("dev", "prod"), default="dev"),
        p(name="count", type="int", default="2"),
        p(name="note"),
        p(name="force", type="bool", required=True),
    ]
    assert resolve_parameters(defs, {"force": "true", "count": 9}) == {
        "env": "dev",
        "count": 9,
        "note": None,
        "force": True,
    }
    with pytest.raises(ValidationError) as info:
        resolve_parameters(defs, {})
    assert info.value.field == "parameters.force"
    with pytest.raises(ValidationError) as info:
        resolve_parameters(defs, {"force": True, "typo": 1})
    assert info.value.field == "parameters.typo"
    with pytest.raises(ValidationError) as info:
        resolve_parameters(defs, {"force": True, "env": "staging"})
    assert info.value.field == "parameters.env" and "dev, prod" in info.value.message


def test_as_text_and_preview_values() -> None:
    assert [as_text(v) for v in (True, False, 7, "s", None)] == ["true", "false", "7", "s", ""]
    assert preview_values(
        [p(name="a", default="x"), p(name="b"), p(name="c", type="bool", default="yes")]
    ) == {
        "a": "x",
        "b": "PARAM_b",
        "c": "true",
    }
