"""The scripted cmd / PowerShell interpreter of the WS-Management test double (see the package
docstring for what it understands). It never runs anything on this host."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from opsconductor_ray.testing.wsman.server import WSManTestDouble

TERMINATED_EXIT_CODE = -1073741510
"""STATUS_CONTROL_C_EXIT: the exit code Windows reports for a command stopped by a signal."""


@dataclass(eq=False)
class Command:
    command_id: str
    chunks: list[tuple[str, bytes]] = field(default_factory=list[tuple[str, bytes]])
    exit_code: int | None = None
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    terminated: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def write(self, stream: str, data: bytes) -> None:
        with self.changed:
            self.chunks.append((stream, data))
            self.changed.notify_all()

    def finish(self, exit_code: int) -> None:
        with self.changed:
            if self.exit_code is None:
                self.exit_code = exit_code
            self.changed.notify_all()


@dataclass(eq=False)
class Shell:
    shell_id: str
    owner: str
    working_directory: str
    env: dict[str, str]
    codepage: int
    commands: dict[str, Command] = field(default_factory=dict[str, Command])


class _Stop(Exception):
    """The command was terminated by a Signal."""


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class Interpreter:
    """Runs one command line of the scripted mini-language (see the module docstring)."""

    def __init__(self, double: WSManTestDouble, shell: Shell, command: Command) -> None:
        self.double = double
        self.shell = shell
        self.command = command
        self.encoding = "utf-8" if shell.codepage == 65001 else "cp437"
        self.args: list[str] = []
        self.variables: dict[str, str] = {}

    def out(self, text: str, stream: str = "stdout") -> None:
        if self.command.terminated.is_set():
            raise _Stop
        self.command.write(stream, text.encode(self.encoding, "replace"))

    def sleep(self, seconds: float) -> None:
        if self.command.terminated.wait(max(0.0, seconds)):
            raise _Stop

    def run(self, line: str) -> int:
        match = re.match(r"(?is)^\s*powershell(?:\.exe)?\s+(.*)$", line)
        try:
            if match:
                return self.powershell(match.group(1))
            return self.cmd(line)
        except _Stop:
            return TERMINATED_EXIT_CODE
        except _Exit as exit_:
            return exit_.code

    # ------------------------------------------------------------------ cmd

    def cmd(self, line: str) -> int:
        code = 0
        for part, joiner in _split_cmd(line):
            if joiner == "&&" and code != 0:
                break
            code = self.cmd_one(part.strip())
        return code

    def cmd_one(self, part: str) -> int:
        part = re.sub(r"%(\w+)%", lambda m: self.shell.env.get(m.group(1), m.group(0)), part)
        word, _, rest = part.partition(" ")
        name = word.lower()
        rest = rest.strip()
        if name == "echo":
            stream = "stdout"
            if rest.endswith("1>&2"):
                rest, stream = rest[:-4].rstrip(), "stderr"
            self.out(rest + "\r\n", stream)
            return 0
        if name == "exit":
            value = rest.removeprefix("/b").removeprefix("/B").strip() or "0"
            raise _Exit(int(value))
        if name == "hostname":
            self.out(self.double.hostname + "\r\n")
            return 0
        if name == "whoami":
            self.out(f"{self.double.hostname.lower()}\\{self.shell.owner}\r\n")
            return 0
        if name == "cd" and not rest:
            self.out(self.shell.working_directory + "\r\n")
            return 0
        if name == "type":
            content = self.double.files.get(rest.strip('"').lower())
            if content is None:
                self.out("The system cannot find the file specified.\r\n", "stderr")
                return 1
            self.out(content)
            return 0
        if name == "ping":
            match = re.search(r"-n\s+(\d+)", rest)
            count = int(match.group(1)) if match else 4
            for index in range(count):
                if index:
                    self.sleep(1.0)
                self.out("Reply from 127.0.0.1: bytes=32 time<1ms TTL=128\r\n")
            return 0
        if not part:
            return 0
        self.out(
            f"'{word}' is not recognized as an internal or external command,\r\n"
            "operable program or batch file.\r\n",
            "stderr",
        )
        return 9009

    # ------------------------------------------------------------------ PowerShell

    def powershell(self, arguments: str) -> int:
        match = re.search(r"(?i)-(?:encodedcommand|enc|e)\s+([A-Za-z0-9+/=]+)", arguments)
        if match is None:
            self.out("the WS-Man test double only runs powershell -EncodedCommand\r\n", "stderr")
            return 1
        script = base64.b64decode(match.group(1)).decode("utf-16-le")
        block = re.match(r"(?s)^\s*&\s*\{(.*)\}\s*(.*?)\s*$", script)
        if block:
            script = block.group(1)
            self.args = _ps_words(block.group(2))
        self.errors = 0
        for statement in _ps_statements(script):
            self.ps_one(statement)
        return 1 if self.errors else 0

    def expand(self, text: str) -> str:
        text = re.sub(r"\$env:(\w+)", lambda m: self.shell.env.get(m.group(1), ""), text)
        text = re.sub(
            r"\$\(?\$args\[(\d+)\]\)?",
            lambda m: self.args[int(m.group(1))] if int(m.group(1)) < len(self.args) else "",
            text,
        )
        return text

    def ps_value(self, rest: str) -> str:
        rest = rest.strip()
        if rest.startswith("-Value "):
            rest = rest[len("-Value ") :].strip()
        if len(rest) >= 2 and rest[0] == rest[-1] == "'":
            return rest[1:-1].replace("''", "'")
        if len(rest) >= 2 and rest[0] == rest[-1] == '"':
            return self.expand(rest[1:-1])
        return self.expand(rest)

    def ps_error(self, message: str) -> None:
        self.errors += 1
        record = (
            '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
            f'<S S="Error">{escape(message)}_x000D__x000A_</S></Objs>'
        )
        self.out(record, "stderr")

    def read_stdin(self) -> str:
        """Block until the client closed stdin (Send with End=true), or the command is stopped."""
        command = self.command
        with command.changed:
            while not command.stdin_closed:
                if command.terminated.is_set():
                    raise _Stop
                command.changed.wait(0.2)
            return bytes(command.stdin).decode(self.encoding, "replace")

    def ps_one(self, statement: str) -> None:
        word, _, rest = statement.partition(" ")
        name = word.lower()
        assignment = re.match(r"^\$(\w+)\s*=\s*(.*)$", statement)
        write_bytes = _write_all_bytes(statement)
        if assignment and not name.startswith("$env:"):
            variable, value = assignment.groups()
            if variable.lower() == "erroractionpreference":
                return
            if value.strip().lower() == "[console]::in.readtoend()":
                self.variables[variable.lower()] = self.read_stdin()
            else:
                self.variables[variable.lower()] = self.ps_value(value)
        elif write_bytes:
            path, variable = write_bytes
            data = base64.b64decode(self.variables.get(variable.lower(), ""))
            self.double.files[path.lower()] = data.decode("utf-8", "replace")
        elif name in ("write-output", "echo", "write-host"):
            self.out(self.ps_value(rest) + "\r\n")
        elif statement[:1] in ("'", '"'):
            self.out(self.ps_value(statement) + "\r\n")
        elif name == "write-error":
            self.ps_error(self.ps_value(rest))
        elif name == "exit":
            raise _Exit(int(self.expand(rest.strip()) or "0"))
        elif name == "start-sleep":
            self.sleep(float(rest.replace("-Seconds", "").strip() or "0"))
        elif name == "hostname" or statement.lower() == "$env:computername":
            self.out(self.double.hostname + "\r\n")
        elif name in ("get-location", "pwd"):
            self.out(self.shell.working_directory + "\r\n")
        elif name.startswith("$env:"):
            self.out(self.expand(statement) + "\r\n")
        elif name == "get-content":
            path = self.ps_value(rest.replace("-Path", "").strip())
            content = self.double.files.get(path.lower())
            if content is None:
                self.ps_error(f"Cannot find path '{path}' because it does not exist.")
            else:
                self.out(content)
        elif name == "set-content":
            match = re.match(r"(?s)-Path\s+('[^']*'|\"[^\"]*\"|\S+)\s+(.*)$", rest.strip())
            if match is None:
                self.ps_error("Set-Content needs -Path P -Value V")
            else:
                self.double.files[self.ps_value(match.group(1)).lower()] = self.ps_value(match.group(2))
        else:
            self.ps_error(
                f"The term '{word}' is not recognized as the name of a cmdlet, function, script file, or operable program."
            )


def _split_cmd(line: str) -> Iterator[tuple[str, str]]:
    """`a & b && c` → (a, ""), (b, "&"), (c, "&&") — no quoting rules: enough for tests."""
    joiner = ""
    for piece in re.split(r"(&&|&(?!2))", line):
        if piece in ("&", "&&"):
            joiner = piece
        else:
            yield piece, joiner


def _write_all_bytes(statement: str) -> tuple[str, str] | None:
    """`[IO.File]::WriteAllBytes('P', [Convert]::FromBase64String($x))` → (P, x), else None."""
    prefix = "[io.file]::writeallbytes("
    if not statement.lower().startswith(prefix) or statement[len(prefix) : len(prefix) + 1] not in _PS_QUOTES:
        return None
    try:
        path, end = _ps_single_quoted(statement, len(prefix))
    except ValueError:
        return None
    rest = re.match(r"^,\s*\[Convert\]::FromBase64String\(\$(\w+)\)\)$", statement[end:], re.IGNORECASE)
    return (path, rest.group(1)) if rest else None


def _ps_statements(script: str) -> Iterator[str]:
    """Statements split on new lines and on `;` outside quoted strings (PowerShell's quote rules)."""
    for line in script.replace("\r\n", "\n").split("\n"):
        pieces: list[str] = []
        start = index = 0
        while index < len(line):
            char = line[index]
            if char in _PS_QUOTES:
                try:
                    index = _ps_single_quoted(line, index)[1]
                except ValueError:
                    index = len(line)
                continue
            if char == '"':
                end = line.find('"', index + 1)
                index = len(line) if end < 0 else end + 1
                continue
            if char == ";":
                pieces.append(line[start:index])
                start = index + 1
            index += 1
        pieces.append(line[start:])
        for statement in pieces:
            statement = statement.strip()
            if statement and not statement.startswith("#"):
                yield statement


_PS_QUOTES = "'\u2018\u2019\u201a\u201b"
"""The characters PowerShell's tokenizer treats as a single quote (ASCII and typographic)."""


def _ps_single_quoted(text: str, start: int) -> tuple[str, int]:
    """The literal of the '...' string opening at `start`, and the index after its close.

    PowerShell's rule: any single-quote character ends the string unless the next one is also a
    single-quote character (of any kind); such a pair stands for the first one."""
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char in _PS_QUOTES:
            if index + 1 < len(text) and text[index + 1] in _PS_QUOTES:
                out.append(char)
                index += 2
                continue
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise ValueError("unterminated single-quoted string")


def _ps_words(text: str) -> list[str]:
    words: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char in _PS_QUOTES:
            word, index = _ps_single_quoted(text, index)
            words.append(word)
        elif char == '"':
            end = text.find('"', index + 1)
            end = len(text) if end < 0 else end
            words.append(text[index + 1 : end])
            index = end + 1
        else:
            end = index
            while end < len(text) and not text[end].isspace():
                end += 1
            words.append(text[index:end])
            index = end
    return words


# ----------------------------------------------------------------------------- server
