"""What a step becomes on Windows: a WinRS command line (PowerShell encoded, arguments quoted),
what to feed its stdin, and the CLIXML PowerShell writes to stderr turned back into text."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from opsconductor_shared.runplan import MAX_UPLOAD_BYTES, Step

UTF8_CODEPAGE = 65001
MAX_COMMAND_LINE = 8000
"""cmd.exe refuses command lines over 8191 characters; an encoded PowerShell script must fit."""
STDIN_CHUNK = 64 * 1024
"""Bytes of stdin per WS-Man Send: base64 again in the envelope, well under 150 KiB."""
MAX_POWERSHELL_STDERR = 2 * 1024 * 1024
"""Characters of a PowerShell step's (CLIXML) stderr kept for unwrapping; the rest is dropped
with a marker (the pool cuts the step's output at `max_output_bytes` anyway)."""
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
SHELL_RESOURCE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"


@dataclass(frozen=True)
class Prepared:
    """A step as WinRS sees it: a command line, what to feed its stdin, and whether it is
    PowerShell (whose stderr is CLIXML)."""

    line: str
    stdin: bytes | None = None
    powershell: bool = False


_PS_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
"""Every character PowerShell's tokenizer accepts as a single quote (ASCII U+0027 and the
typographic U+2018 U+2019 U+201A U+201B): each one ends a '...' literal unless doubled."""


def ps_quote(value: str) -> str:
    """`value` as a single-quoted PowerShell literal: no expansion, no way out (H7).

    PowerShell's own rule (CodeGeneration.EscapeSingleQuotedStringContent): every single-quote
    character, ASCII or typographic, is doubled; a doubled one is that character, literally."""
    return "'" + "".join(c + c if c in _PS_SINGLE_QUOTES else c for c in value) + "'"


def powershell_command_line(body: str, arguments: tuple[str, ...] = ()) -> str:
    """`powershell -EncodedCommand` for a script body, arguments bound to `$args` through a
    script block (each one a single-quoted PowerShell literal: no expansion, no injection)."""
    script = body
    if arguments:
        quoted = " ".join(ps_quote(argument) for argument in arguments)
        script = f"& {{\n{body}\n}} {quoted}"
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    return f"powershell -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {encoded}"


def upload_script(destination: str) -> str:
    """PowerShell that writes the base64 text it reads on stdin to `destination`.

    The content goes through WinRS stdin (Send), not the command line, so it is not bound
    by the 8191-character limit. Windows has no POSIX mode: `Transfer.mode` is ignored."""
    return (
        "$ErrorActionPreference = 'Stop'\n"
        "$data = [Console]::In.ReadToEnd()\n"
        f"[IO.File]::WriteAllBytes({ps_quote(destination)}, [Convert]::FromBase64String($data))\n"
    )


_CLIXML_ERROR_OPEN = '<S S="Error">'
_CLIXML_CLOSE = "</S>"


def clean_clixml(text: str) -> str:
    """PowerShell writes errors to stderr as CLIXML when driven remotely; keep the messages.

    Scanned with `str.find`, not an XML parser (the text comes from the remote host) nor a lazy
    regex (quadratic on many unclosed records, M12): one pass, linear in the text."""
    if not text.startswith("#< CLIXML"):
        return text
    messages: list[str] = []
    position = 0
    while True:
        start = text.find(_CLIXML_ERROR_OPEN, position)
        if start < 0:
            break
        start += len(_CLIXML_ERROR_OPEN)
        end = text.find(_CLIXML_CLOSE, start)
        if end < 0:
            break  # no record closes after this one: none of the later ones can either
        messages.append(html.unescape(text[start:end]).replace("_x000D__x000A_", "\n"))
        position = end + len(_CLIXML_CLOSE)
    return "".join(messages) if messages else text


def command_for(step: Step) -> tuple[Prepared | None, str | None]:
    """(what to run, None), or (None, why the step cannot run on Windows)."""
    if step.type == "command":
        return Prepared(step.command), None
    if step.type == "script":
        script = step.script
        if script is None:
            return None, "script step without a script"
        if script.interpreter != "powershell":
            return None, (
                f"interpreter '{script.interpreter}' is not available on WinRM targets (use powershell)"
            )
        line = powershell_command_line(script.body, script.arguments)
        if len(line) > MAX_COMMAND_LINE:
            return None, (
                f"the PowerShell script is too long for one WinRS command line "
                f"({len(line)} > {MAX_COMMAND_LINE} characters once encoded)"
            )
        return Prepared(line, powershell=True), None
    if step.type == "file_transfer":
        transfer = step.transfer
        if transfer is None:
            return None, "file_transfer step without a transfer"
        if transfer.direction == "download":
            source = transfer.source
            # cmd.exe: a double quote would end the quoted path, % expands variables, and a
            # control character could end the command line
            if not source or any(c in source for c in '"%') or any(ord(c) < 32 for c in source):
                return (
                    None,
                    "download needs a source path (without double quotes, % or control characters)",
                )
            return Prepared(f'type "{transfer.source}"'), None
        if transfer.direction == "upload":
            data = (transfer.content or "").encode("utf-8")
            if len(data) > MAX_UPLOAD_BYTES:
                return None, f"upload content exceeds {MAX_UPLOAD_BYTES} bytes"
            return Prepared(
                powershell_command_line(upload_script(transfer.destination)),
                stdin=base64.b64encode(data),
                powershell=True,
            ), None
        return None, f"transfer direction '{transfer.direction}' is not upload or download"
    return None, f"step type '{step.type}' is not supported"
