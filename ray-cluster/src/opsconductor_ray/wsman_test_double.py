"""A WS-Management / WinRS test double: the stand-in for Windows hosts in our tests.

There is no Windows machine here, so `WSManTestDouble` is a small real HTTP server on
127.0.0.1 that speaks the part of WS-Management and the Windows Remote Shell protocol
([MS-WSMV]) that pywinrm uses: Create shell, Command, Receive (base64 stdout/stderr
streams, CommandState Done with ExitCode, the OperationTimeout fault while a command is
silent), Send (stdin), Signal (terminate / ctrl_c) and Delete shell. Authentication is
HTTP Basic (wrong credentials → 401), and NTLM with message encryption over plain HTTP
through pyspnego's server side (`ntlm=True`), the way a default Windows listener on 5985
behaves. `tls=True` serves HTTPS with a throw-away self-signed certificate (port 5986's
role); `certificate_pem` exposes it for tests that validate it.

It never runs what it receives on this host. Commands go to a tiny scripted interpreter
(deliberately not a shell) that knows just enough for tests:

cmd (the default shell): `echo X` (`%NAME%` expands from the shell's environment; a
trailing `1>&2` writes to stderr), `exit N` / `exit /b N`, `hostname`, `whoami`, `cd`
(prints the working directory), `type FILE` (from `files`), `ping -n N HOST` (one reply
line per second, for streaming, timeouts and cancel), commands joined by `&` / `&&`;
anything else: "'x' is not recognized ..." and exit 9009, as cmd.exe says.

PowerShell (`powershell ... -EncodedCommand <base64 UTF-16LE>`, what pywinrm's `run_ps`
sends): statements split on new lines and `;`: `Write-Output X` / `echo X` / `Write-Host X`
/ a bare quoted string, `Write-Error X` (a CLIXML error record on stderr, exit code 1),
`exit N`, `Start-Sleep N` / `Start-Sleep -Seconds N` (interruptible), `hostname`,
`Get-Location`, `Get-Content PATH`, `Set-Content -Path P -Value V`, `$x = V`,
`$x = [Console]::In.ReadToEnd()` (WinRS stdin, as the engine's upload sends it) and
`[IO.File]::WriteAllBytes('P', [Convert]::FromBase64String($x))`; `$env:NAME` and
`$args[i]` expand; a script of the form `& { body } 'a' 'b'` binds `$args`. Unknown
commands write PowerShell's CommandNotFound error and continue.

Files live in the double's memory (`files`, keyed case-insensitively by path).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import os
import re
import ssl
import struct
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACTION_COMMAND = f"{SHELL_URI}/Command"
ACTION_RECEIVE = f"{SHELL_URI}/Receive"
ACTION_SEND = f"{SHELL_URI}/Send"
ACTION_SIGNAL = f"{SHELL_URI}/Signal"
SIGNAL_TERMINATE = f"{SHELL_URI}/signal/terminate"
SIGNAL_CTRL_C = f"{SHELL_URI}/signal/ctrl_c"
TIMEOUT_FAULT_CODE = 2150858793
"""WSMan fault of a Receive that saw no output within the OperationTimeout (pywinrm retries)."""
SHELL_NOT_FOUND_CODE = 2150858843
TERMINATED_EXIT_CODE = -1073741510
"""STATUS_CONTROL_C_EXIT: the exit code Windows reports for a command stopped by a signal."""
ENCRYPTED_BOUNDARY = b"--Encrypted Boundary"
SPNEGO_ENCRYPTED = "application/HTTP-SPNEGO-session-encrypted"


# ----------------------------------------------------------------------------- model


@dataclass(eq=False)
class _Command:
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
class _Shell:
    shell_id: str
    owner: str
    working_directory: str
    env: dict[str, str]
    codepage: int
    commands: dict[str, _Command] = field(default_factory=dict[str, _Command])


class _Stop(Exception):
    """The command was terminated by a Signal."""


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Interpreter:
    """Runs one command line of the scripted mini-language (see the module docstring)."""

    def __init__(self, double: WSManTestDouble, shell: _Shell, command: _Command) -> None:
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


class WSManTestDouble:
    """The WinRM endpoint tests talk to instead of a Windows host.

    `start()` binds 127.0.0.1 on a free port and serves in a background thread (usable
    from sync and async tests, and from Ray actors over loopback); `stop()` ends it.
    `users` maps user names to passwords. Counters (`auth_failures`, `signals`,
    `shells_created`, `shells_deleted`, `commands`) let tests check what a client did.
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        *,
        hostname: str = "WIN-DOUBLE",
        ntlm: bool = False,
        tls: bool = False,
    ) -> None:
        self.users = dict(users or {"Administrator": "Passw0rd!"})
        self.hostname = hostname
        self.ntlm = ntlm
        self.tls = tls
        self.files: dict[str, str] = {}
        self.shells: dict[str, _Shell] = {}
        self.auth_failures = 0
        self.signals: list[str] = []
        self.commands: list[str] = []
        self.shells_created = 0
        self.shells_deleted = 0
        self.certificate_pem: str | None = None
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> WSManTestDouble:
        double = self

        class Handler(_Handler):
            owner = double

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._tmp = tempfile.TemporaryDirectory(prefix="wsman-double-")
        if self.ntlm:
            store = os.path.join(self._tmp.name, "ntlm-users")
            with open(store, "w", encoding="utf-8") as handle:
                handle.writelines(f":{user}:{password}\n" for user, password in self.users.items())
            self._ntlm_store = store
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert, key = self._self_signed()
            cert_path = os.path.join(self._tmp.name, "cert.pem")
            key_path = os.path.join(self._tmp.name, "key.pem")
            with open(cert_path, "w", encoding="utf-8") as handle:
                handle.write(cert)
            with open(key_path, "w", encoding="utf-8") as handle:
                handle.write(key)
            context.load_cert_chain(cert_path, key_path)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            self.certificate_pem = cert
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="wsman-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for shell in list(self.shells.values()):
            for command in shell.commands.values():
                command.terminated.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/wsman"

    @property
    def running_commands(self) -> int:
        return sum(
            1 for shell in self.shells.values() for cmd in shell.commands.values() if cmd.exit_code is None
        )

    @staticmethod
    def _self_signed() -> tuple[str, str]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256())
        )
        return (
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
        )

    @contextlib.contextmanager
    def ntlm_store(self) -> Generator[None, None, None]:
        """pyspnego's NTLM acceptor checks passwords against the file named by NTLM_USER_FILE
        (its documented store), read when the context is created and again when the client's
        AUTHENTICATE message is checked: point it at our `users` for that moment only."""
        with self._lock:
            previous = os.environ.get("NTLM_USER_FILE")
            os.environ["NTLM_USER_FILE"] = self._ntlm_store
            try:
                yield
            finally:
                if previous is None:
                    os.environ.pop("NTLM_USER_FILE", None)
                else:
                    os.environ["NTLM_USER_FILE"] = previous

    def new_ntlm_context(self) -> Any:
        """A pyspnego NTLM acceptor for one connection."""
        import spnego

        with self.ntlm_store():
            return spnego.server(protocol="ntlm")

    # ------------------------------------------------------------------ WS-Man operations

    def handle(self, user: str, body: bytes) -> tuple[int, str]:
        """One SOAP request → (HTTP status, SOAP response)."""
        root = ET.fromstring(body)  # noqa: S314 - a loopback test server fed by our own tests
        header = root.find("env:Header", NS)
        soap_body = root.find("env:Body", NS)
        if header is None or soap_body is None:
            return _fault("", "the message has no SOAP header or body", 2150858817)
        action = header.findtext("a:Action", "", NS).strip()
        message_id = header.findtext("a:MessageID", "", NS).strip()
        timeout_text = header.findtext("w:OperationTimeout", "PT20S", NS)
        operation_timeout = _duration(timeout_text)
        shell_id = ""
        for selector in header.iterfind("w:SelectorSet/w:Selector", NS):
            if selector.get("Name") == "ShellId":
                shell_id = (selector.text or "").strip()
        if action == ACTION_CREATE:
            return self._create(user, header, soap_body, message_id)
        shell = self.shells.get(shell_id)
        if shell is None or shell.owner != user:
            return _fault(
                message_id,
                "The request for the Windows Remote Shell with ShellId "
                f"{shell_id} failed because the shell was not found on the server.",
                SHELL_NOT_FOUND_CODE,
            )
        if action == ACTION_DELETE:
            for command in shell.commands.values():
                command.terminated.set()
            del self.shells[shell_id]
            self.shells_deleted += 1
            return 200, _envelope(message_id, ACTION_DELETE + "Response", "")
        if action == ACTION_COMMAND:
            return self._command(shell, soap_body, message_id)
        if action == ACTION_RECEIVE:
            return self._receive(shell, soap_body, message_id, operation_timeout)
        if action == ACTION_SEND:
            stream = soap_body.find("rsp:Send/rsp:Stream", NS)
            command = shell.commands.get(stream.get("CommandId", "") if stream is not None else "")
            if stream is None or command is None:
                return _fault(message_id, "unknown command", 2150858843)
            with command.changed:
                command.stdin.extend(base64.b64decode(stream.text or ""))
                command.stdin_closed = stream.get("End", "false").lower() == "true"
                command.changed.notify_all()
            return 200, _envelope(message_id, ACTION_SEND + "Response", "<rsp:SendResponse/>")
        if action == ACTION_SIGNAL:
            signal = soap_body.find("rsp:Signal", NS)
            command = shell.commands.get(signal.get("CommandId", "") if signal is not None else "")
            code = signal.findtext("rsp:Code", "", NS).strip() if signal is not None else ""
            self.signals.append(code)
            if command is not None and code in (SIGNAL_TERMINATE, SIGNAL_CTRL_C):
                command.terminated.set()
                with command.changed:
                    command.changed.notify_all()
            return 200, _envelope(message_id, ACTION_SIGNAL + "Response", "<rsp:SignalResponse/>")
        return _fault(
            message_id, f"the action {action!r} is not supported by the WS-Man test double", 2150858817
        )

    def _create(self, user: str, header: ET.Element, body: ET.Element, message_id: str) -> tuple[int, str]:
        spec = body.find("rsp:Shell", NS)
        codepage = 437
        for option in header.iterfind("w:OptionSet/w:Option", NS):
            if option.get("Name") == "WINRS_CODEPAGE" and (option.text or "").strip().isdigit():
                codepage = int((option.text or "").strip())
        env: dict[str, str] = {"COMPUTERNAME": self.hostname, "USERNAME": user}
        working_directory = f"C:\\Users\\{user}"
        if spec is not None:
            working_directory = (
                spec.findtext("rsp:WorkingDirectory", "", NS) or ""
            ).strip() or working_directory
            for variable in spec.iterfind("rsp:Environment/rsp:Variable", NS):
                env[variable.get("Name", "")] = variable.text or ""
        shell = _Shell(str(uuid.uuid4()).upper(), user, working_directory, env, codepage)
        self.shells[shell.shell_id] = shell
        self.shells_created += 1
        payload = (
            "<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address><a:ReferenceParameters>"
            "<w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{shell.shell_id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{shell.shell_id}</rsp:ShellId></rsp:Shell>"
        )
        return 200, _envelope(message_id, ACTION_CREATE + "Response", payload)

    def _command(self, shell: _Shell, body: ET.Element, message_id: str) -> tuple[int, str]:
        line = body.find("rsp:CommandLine", NS)
        text = (line.findtext("rsp:Command", "", NS) if line is not None else "").strip()
        arguments = (line.findtext("rsp:Arguments", "", NS) if line is not None else "").strip()
        if arguments:
            text = f"{text} {arguments}"
        command = _Command(str(uuid.uuid4()).upper())
        shell.commands[command.command_id] = command
        self.commands.append(text)
        interpreter = _Interpreter(self, shell, command)

        def run() -> None:
            try:
                code = interpreter.run(text)
            except Exception as exc:  # a bug in the double must not hang the client
                command.write("stderr", f"test double error: {exc}\r\n".encode())
                code = 1
            command.finish(TERMINATED_EXIT_CODE if command.terminated.is_set() else code)

        threading.Thread(target=run, name=f"wsman-cmd-{command.command_id[:8]}", daemon=True).start()
        payload = (
            f"<rsp:CommandResponse><rsp:CommandId>{command.command_id}</rsp:CommandId></rsp:CommandResponse>"
        )
        return 200, _envelope(message_id, ACTION_COMMAND + "Response", payload)

    def _receive(self, shell: _Shell, body: ET.Element, message_id: str, timeout: float) -> tuple[int, str]:
        desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
        command = shell.commands.get(desired.get("CommandId", "") if desired is not None else "")
        if command is None:
            return _fault(message_id, "the command was not found", SHELL_NOT_FOUND_CODE)
        deadline = time.monotonic() + timeout
        with command.changed:
            while not command.chunks and command.exit_code is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return _fault(
                        message_id,
                        "The WS-Management service cannot complete the operation "
                        "within the time specified in OperationTimeout.",
                        TIMEOUT_FAULT_CODE,
                    )
                command.changed.wait(left)
            chunks, command.chunks = command.chunks, []
            exit_code = command.exit_code
        streams = "".join(
            f'<rsp:Stream Name="{name}" CommandId="{command.command_id}">{base64.b64encode(data).decode()}</rsp:Stream>'
            for name, data in chunks
        )
        state = f"{SHELL_URI}/CommandState/{'Done' if exit_code is not None else 'Running'}"
        done = f"<rsp:ExitCode>{exit_code}</rsp:ExitCode>" if exit_code is not None else ""
        payload = (
            f"<rsp:ReceiveResponse>{streams}"
            f'<rsp:CommandState CommandId="{command.command_id}" State="{state}">{done}</rsp:CommandState>'
            "</rsp:ReceiveResponse>"
        )
        if exit_code is not None:
            del shell.commands[command.command_id]
        return 200, _envelope(message_id, ACTION_RECEIVE + "Response", payload)


def _duration(text: str) -> float:
    match = re.match(r"^PT(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$", text.strip())
    if match is None:
        return 20.0
    return float(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def _envelope(relates_to: str, action: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{NS["env"]}" xmlns:a="{NS["a"]}" xmlns:w="{NS["w"]}" '
        f'xmlns:rsp="{NS["rsp"]}" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xml:lang="en-US">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{relates_to}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )


def _fault(relates_to: str, reason: str, code: int) -> tuple[int, str]:
    body = (
        "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:InternalError</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{escape(reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{code}" '
        f'Machine="127.0.0.1"><f:Message>{escape(reason)}</f:Message></f:WSManFault></s:Detail></s:Fault>'
    )
    return 500, _envelope(relates_to, "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", body)


class _Handler(BaseHTTPRequestHandler):
    """One keep-alive connection (NTLM authenticates connections, not requests)."""

    owner: WSManTestDouble
    protocol_version = "HTTP/1.1"
    ntlm_context: Any = None
    ntlm_user: str | None = None

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or "0"))
        double = self.owner
        authorization = self.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        user: str | None = None
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                name, _, password = base64.b64decode(token).decode().partition(":")
                if double.users.get(name) == password:
                    user = name
            if user is None:
                double.auth_failures += 1
                self._challenge()
                return
        elif scheme.lower() in ("negotiate", "ntlm") and double.ntlm:
            if not self._ntlm_step(scheme, token):
                return
            user = self.ntlm_user
        elif self.ntlm_user is not None and double.ntlm:
            user = self.ntlm_user  # an authenticated connection carries on without a header
        else:
            self._challenge()
            return
        assert user is not None

        encrypted = SPNEGO_ENCRYPTED in self.headers.get("Content-Type", "")
        if encrypted:
            body = self._unwrap(body)
        if not body:  # pywinrm's empty POST that sets up the encryption context
            self._send(200, b"", "application/soap+xml;charset=UTF-8")
            return
        try:
            status, answer = double.handle(user, body)
        except ET.ParseError:
            status, answer = _fault("", "the request is not well-formed XML", 2150858817)
        payload = answer.encode("utf-8")
        if encrypted:
            self._send(
                status,
                self._wrap(payload),
                f'multipart/encrypted;protocol="{SPNEGO_ENCRYPTED}";boundary="Encrypted Boundary"',
            )
        else:
            self._send(status, payload, "application/soap+xml;charset=UTF-8")

    def _challenge(self) -> None:
        methods = ['Basic realm="WSMAN"'] + (["Negotiate"] if self.owner.ntlm else [])
        self.send_response(401)
        for method in methods:
            self.send_header("WWW-Authenticate", method)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _ntlm_step(self, scheme: str, token: str) -> bool:
        """Feed one NTLM token; True once the connection is authenticated for this request."""
        import spnego.exceptions

        if self.ntlm_context is None or self.ntlm_context.complete:
            self.ntlm_context = self.owner.new_ntlm_context()
            self.ntlm_user = None
        try:
            with self.owner.ntlm_store():
                answer = self.ntlm_context.step(base64.b64decode(token))
        except spnego.exceptions.SpnegoError:
            self.owner.auth_failures += 1
            self.ntlm_context = None
            self._challenge()
            return False
        if not self.ntlm_context.complete:
            self.send_response(401)
            self.send_header("WWW-Authenticate", f"{scheme} {base64.b64encode(answer or b'').decode()}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        client = str(self.ntlm_context.client_principal or "")
        self.ntlm_user = client.split("\\")[-1]
        return True

    def _unwrap(self, body: bytes) -> bytes:
        parts = [p for p in body.split(ENCRYPTED_BOUNDARY + b"\r\n") if p]
        message = b""
        for index in range(0, len(parts) - 1, 2):
            payload = parts[index + 1]
            if payload.endswith(ENCRYPTED_BOUNDARY + b"--\r\n"):
                payload = payload[: -len(ENCRYPTED_BOUNDARY + b"--\r\n")]
            data = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"")
            length = struct.unpack("<i", data[:4])[0]
            message += self.ntlm_context.unwrap_winrm(data[4 : 4 + length], data[4 + length :])
        return message

    def _wrap(self, payload: bytes) -> bytes:
        wrapped = self.ntlm_context.wrap_winrm(payload)
        return (
            ENCRYPTED_BOUNDARY + b"\r\n"
            b"\tContent-Type: " + SPNEGO_ENCRYPTED.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(payload)).encode()
            + b"\r\n"
            + ENCRYPTED_BOUNDARY
            + b"\r\n"
            b"\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<i", len(wrapped.header))
            + wrapped.header
            + wrapped.data
            + ENCRYPTED_BOUNDARY
            + b"--\r\n"
        )

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


__all__ = ["WSManTestDouble"]
