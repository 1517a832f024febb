"""Where a WinRM step goes: the endpoint a credential and target make, and the engine error
for what pywinrm / requests raise on the way."""

from __future__ import annotations

import re
from dataclasses import dataclass

import requests.exceptions
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMTransportError,
    WSManFaultError,
)

from opsconductor_ray.credentials import Credential
from opsconductor_ray.errors import (
    AuthenticationFailed,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    CredentialUnavailable,
    EngineError,
    HostKeyRejected,
    InsecureTransportRefused,
)
from opsconductor_ray.protocol import TargetSpec

TRANSPORTS = ("basic", "ntlm", "credssp", "kerberos")
DEFAULT_TRANSPORT = "ntlm"
"""What a Windows listener accepts out of the box (Basic needs AllowUnencrypted or HTTPS)."""


@dataclass(frozen=True)
class Endpoint:
    """Everything a `Protocol` is built from, secrets excepted (they come with the credential)."""

    scheme: str
    host: str
    port: int
    username: str
    fingerprint: str
    transport: str
    cert_validation: str
    allow_insecure: bool = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/wsman"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def endpoint_of(target: TargetSpec, credential: Credential) -> Endpoint:
    """The WinRM endpoint for a target: transport and TLS options come with the credential
    (`transport`, `scheme`, `serverCertValidation`, `allowInsecure`); port 5986 means HTTPS by
    convention.

    Basic over plain HTTP (the password in clear text) and HTTPS without certificate validation
    are refused unless the method explicitly allows them (`allowInsecure`, review L5)."""
    if not credential.password:
        raise CredentialUnavailable(
            f"WinRM needs a password; the credential of user '{credential.username}' has none"
        )
    options = credential.options
    transport = options.get("transport", DEFAULT_TRANSPORT).lower()
    if transport == "plaintext":
        transport = "basic"
    if transport not in TRANSPORTS:
        raise CredentialUnavailable(
            f"WinRM transport '{transport}' is not supported (use one of {', '.join(TRANSPORTS)})"
        )
    scheme = options.get("scheme", "https" if target.port == 5986 else "http").lower()
    if scheme not in ("http", "https"):
        raise CredentialUnavailable(f"WinRM scheme '{scheme}' is not http or https")
    validation = options.get("serverCertValidation", "validate").lower()
    if validation not in ("validate", "ignore"):
        raise CredentialUnavailable(f"serverCertValidation '{validation}' is not validate or ignore")
    allow_insecure = options.get("allowInsecure", "").lower() == "true"
    if not allow_insecure:
        if transport == "basic" and scheme == "http":
            raise InsecureTransportRefused(
                f"WinRM basic authentication over plain http would send the password of "
                f"'{credential.username}' in clear text to {target.host}:{target.port}; use https or "
                "ntlm/kerberos, or allow insecure transport explicitly on the communication method"
            )
        if validation == "ignore":
            raise InsecureTransportRefused(
                f"WinRM over https without certificate validation (serverCertValidation: ignore) "
                f"to {target.host}:{target.port} is refused unless the communication method "
                "explicitly allows insecure transport"
            )
    return Endpoint(
        scheme,
        target.host,
        target.port,
        credential.username,
        credential.fingerprint,
        transport,
        validation,
        allow_insecure,
    )


def map_winrm_exception(exc: BaseException, endpoint: Endpoint, read_timeout_s: float) -> EngineError:
    """A pywinrm / requests exception → the engine's, with a message fit for an operator."""
    where = endpoint.where
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, InvalidCredentialsError):
        return AuthenticationFailed(
            f"authentication rejected for user '{endpoint.username}' on {where} (WinRM {endpoint.transport})"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return HostKeyRejected(f"TLS certificate of {where} was rejected: {_root_reason(exc)}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectTimeout(f"connect timed out after {read_timeout_s:g}s ({where})")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return ConnectError(f"{where} did not answer within {read_timeout_s:g}s")
    if isinstance(exc, requests.exceptions.ConnectionError):
        if _caused_by(exc, ConnectionRefusedError):
            return ConnectionRefused(f"connection refused by {where}")
        return ConnectError(f"cannot connect to {where}: {_root_reason(exc)}")
    if isinstance(exc, WSManFaultError):
        return ConnectError(f"{where} answered with a WS-Management fault: {exc.reason}")
    if isinstance(exc, WinRMTransportError):
        return ConnectError(f"{where} answered HTTP {exc.code}")
    if isinstance(exc, WinRMError):
        return EngineError(f"WinRM error with {where}: {exc}")
    if isinstance(exc, requests.exceptions.RequestException):
        return ConnectError(f"HTTP error with {where}: {type(exc).__name__}")
    return EngineError(f"unexpected error with {where}: {type(exc).__name__}: {exc}")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return False


def _root_reason(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"\[SSL: [A-Z_]+\] ([^(]+?)(?: \(_ssl|$|\))", text)
    if match:
        return match.group(1).strip()
    match = re.search(r"Caused by \w+\((.*)\)\)?$", text)
    return (match.group(1) if match else text)[:300]
