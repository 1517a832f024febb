"""The HTTP side of the WS-Management test double: Basic and NTLM (with message encryption) on
keep-alive connections, in front of `WSManTestDouble.handle`."""

from __future__ import annotations

import base64
import contextlib
import struct
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconductor_ray.testing.wsman.server import WSManTestDouble

ENCRYPTED_BOUNDARY = b"--Encrypted Boundary"
SPNEGO_ENCRYPTED = "application/HTTP-SPNEGO-session-encrypted"


class WSManHandler(BaseHTTPRequestHandler):
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
            from opsconductor_ray.testing.wsman.server import fault  # the server imports this module

            status, answer = fault("", "the request is not well-formed XML", 2150858817)
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
