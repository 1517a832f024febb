"""`WSManTestDouble`: the WS-Management / WinRS server tests talk to instead of a Windows host."""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import os
import re
import ssl
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Generator
from http.server import ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

from opsconductor_ray.testing.wsman.http import WSManHandler
from opsconductor_ray.testing.wsman.interpreter import TERMINATED_EXIT_CODE, Command, Interpreter, Shell

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
        self.shells: dict[str, Shell] = {}
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

        class Handler(WSManHandler):
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
            return fault("", "the message has no SOAP header or body", 2150858817)
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
            return fault(
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
                return fault(message_id, "unknown command", 2150858843)
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
        return fault(
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
        shell = Shell(str(uuid.uuid4()).upper(), user, working_directory, env, codepage)
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

    def _command(self, shell: Shell, body: ET.Element, message_id: str) -> tuple[int, str]:
        line = body.find("rsp:CommandLine", NS)
        text = (line.findtext("rsp:Command", "", NS) if line is not None else "").strip()
        arguments = (line.findtext("rsp:Arguments", "", NS) if line is not None else "").strip()
        if arguments:
            text = f"{text} {arguments}"
        command = Command(str(uuid.uuid4()).upper())
        shell.commands[command.command_id] = command
        self.commands.append(text)
        interpreter = Interpreter(self, shell, command)

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

    def _receive(self, shell: Shell, body: ET.Element, message_id: str, timeout: float) -> tuple[int, str]:
        desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
        command = shell.commands.get(desired.get("CommandId", "") if desired is not None else "")
        if command is None:
            return fault(message_id, "the command was not found", SHELL_NOT_FOUND_CODE)
        deadline = time.monotonic() + timeout
        with command.changed:
            while not command.chunks and command.exit_code is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return fault(
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


def fault(relates_to: str, reason: str, code: int) -> tuple[int, str]:
    body = (
        "<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:InternalError</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{escape(reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="{code}" '
        f'Machine="127.0.0.1"><f:Message>{escape(reason)}</f:Message></f:WSManFault></s:Detail></s:Fault>'
    )
    return 500, _envelope(relates_to, "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", body)
