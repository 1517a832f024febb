# ruff: noqa: ASYNC109, ASYNC240  (probes hand the bound to their clients; run_probe enforces it)
"""One connection probe per communication-method type, run in this service (not on the engine).

Why here: these are short, stateless checks with well-kept async clients (asyncpg, aiomysql,
redis-py, httpx, aiosmtplib); SSH and WinRM need the engine's pooled, credential-resolving
actors and go there instead (see ``connectivity``). Every probe is bounded by the method's
timeout (``config.timeout``, capped by the caller) and answers ok, latency and a readable
message; it never raises and never puts a secret in its message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomysql
import aiosmtplib
import asyncpg
import httpx
import pymysql
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.targets.probes")


@dataclass(frozen=True)
class ProbeSecret:
    """Plaintext credential for one probe (decrypted just before, dropped right after)."""

    type: str = "password"
    username: str = ""
    password: str | None = None
    private_key: str | None = None
    passphrase: str | None = None

    def __repr__(self) -> str:  # never print a secret
        return f"ProbeSecret(type={self.type!r}, username=<set>)"


@dataclass(frozen=True)
class ProbeTarget:
    type: str
    host: str
    port: int
    config: dict[str, Any]
    secret: ProbeSecret | None = None
    address: str | None = None
    """The address the network policy checked for ``host`` (netpolicy.py): probes connect to it,
    not to a second DNS answer; clients that verify a TLS certificate against the name connect
    by name (a rebound address cannot present that name's certificate)."""

    def dial(self, *, name_verified: bool = False) -> str:
        return self.host if name_verified or not self.address else self.address


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float | None
    message: str


class ProbeFailed(Exception):
    """A probe's readable failure (e.g. 'authentication failed')."""


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def describe_error(exc: BaseException, timeout: float) -> str:
    """A readable message for a network or client error (no secrets: messages of our own making)."""
    if isinstance(exc, ProbeFailed):
        return str(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host not found"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"network error: {os.strerror(exc.errno).lower()}"
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- probes ----------------------------------------------------------------------------------


async def _postgresql(t: ProbeTarget, timeout: float) -> str:
    s = t.secret or ProbeSecret(username="postgres")
    try:
        conn = await asyncpg.connect(
            host=t.dial(name_verified=str(t.config.get("ssl_mode") or "") == "verify-full"),
            port=t.port,
            user=s.username or "postgres",
            password=s.password,
            database=str(t.config.get("database") or "postgres"),
            timeout=timeout,  # pyright: ignore[reportArgumentType] - asyncpg takes seconds as a float
            ssl=_pg_ssl(t.config.get("ssl_mode")),
        )
    except asyncpg.InvalidPasswordError:
        raise ProbeFailed("authentication failed") from None
    except asyncpg.InvalidAuthorizationSpecificationError:
        raise ProbeFailed("authentication failed (role not allowed)") from None
    except asyncpg.InvalidCatalogNameError:
        raise ProbeFailed(f"database {t.config.get('database')!r} does not exist") from None
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close(timeout=timeout)
    return f"PostgreSQL {version}"


def _pg_ssl(mode: Any) -> Any:
    mode = str(mode or "prefer").lower()
    return mode if mode in {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"} else "prefer"


async def _mysql(t: ProbeTarget, timeout: float) -> str:
    s = t.secret or ProbeSecret(username="root")
    try:
        conn = await aiomysql.connect(
            host=t.dial(),
            port=t.port,
            user=s.username or "root",
            password=s.password or "",
            db=t.config.get("database") or None,
            connect_timeout=timeout,
            charset=str(t.config.get("charset") or "utf8mb4"),
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        if code in (1045, 1698):
            raise ProbeFailed("authentication failed") from None
        if code == 1049:
            raise ProbeFailed(f"database {t.config.get('database')!r} does not exist") from None
        if code == 2003:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ConnectionRefusedError):
                raise ProbeFailed("connection refused") from None
            raise ProbeFailed("cannot connect to the MySQL server") from None
        raise ProbeFailed(f"MySQL error {code}") from None
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT VERSION()")
            (version,) = await cur.fetchone()
    finally:
        conn.close()
    return f"MySQL/MariaDB {version}"


async def _redis(t: ProbeTarget, timeout: float) -> str:
    s = t.secret
    client = aioredis.Redis(
        host=t.dial(name_verified=bool(t.config.get("ssl"))),
        port=t.port,
        db=int(t.config.get("database") or 0),
        username=(s.username or None) if s else None,
        password=s.password if s else None,
        ssl=bool(t.config.get("ssl")),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),  # a probe answers once: no hidden retries past the bound
    )
    try:
        await client.ping()
        info = await client.info("server")
    except rexc.AuthenticationError:
        raise ProbeFailed("authentication failed") from None
    except rexc.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise ProbeFailed("authentication failed") from None
        raise ProbeFailed("Redis refused the command") from None
    except rexc.TimeoutError:
        raise TimeoutError from None
    except rexc.ConnectionError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise cause from None
        raise ProbeFailed("cannot connect to Redis") from None
    finally:
        await client.aclose()
    return f"Redis {info.get('redis_version', '?')}"


def _http_auth(s: ProbeSecret | None) -> tuple[dict[str, str], Any]:
    if s is None:
        return {}, None
    if s.type == "api_token":
        return {"Authorization": f"Bearer {s.password or s.private_key or ''}"}, None
    if s.type == "api_key":
        return {"X-API-Key": s.password or ""}, None
    if s.username or s.password:
        return {}, (s.username, s.password or "")
    return {}, None


async def _http_get(t: ProbeTarget, timeout: float, path: str, default_scheme: str) -> Any:
    scheme = str(t.config.get("protocol") or default_scheme).lower()
    dial = t.dial()  # the checked address; the name still goes in Host and TLS SNI
    host = f"[{dial}]" if ":" in dial else dial
    url = f"{scheme}://{host}:{t.port}/{path.lstrip('/')}"
    headers, auth = _http_auth(t.secret)
    name = f"[{t.host}]" if ":" in t.host else t.host
    headers["Host"] = name if t.port == {"http": 80, "https": 443}.get(scheme) else f"{name}:{t.port}"
    extensions = {"sni_hostname": t.host} if scheme == "https" and dial != t.host else {}
    verify = bool(t.config.get("verify_ssl", t.config.get("verify_certs", True)))
    async with httpx.AsyncClient(timeout=timeout, verify=verify, follow_redirects=False) as client:
        try:
            return await client.get(url, headers=headers, auth=auth, extensions=extensions)
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.ConnectError as exc:
            cause = exc.__cause__ or exc.__context__
            while cause is not None and not isinstance(cause, OSError):
                cause = cause.__cause__ or cause.__context__
            if isinstance(cause, OSError) and cause.errno is not None:
                raise cause from None
            # anyio folds several attempts into one errno-less OSError
            raise ProbeFailed("cannot connect (connection refused or unreachable)") from None


async def _rest_api(t: ProbeTarget, timeout: float) -> str:
    """Legacy rule: any status below 500 counts as reachable (401/403 say the API is there)."""
    path = str(t.config.get("health_path") or t.config.get("base_path") or "/")
    resp = await _http_get(t, timeout, path, "http")
    if resp.status_code >= 500:
        raise ProbeFailed(f"HTTP {resp.status_code} {resp.reason_phrase}")
    return f"HTTP {resp.status_code} {resp.reason_phrase}".strip()


async def _elasticsearch(t: ProbeTarget, timeout: float) -> str:
    cfg = dict(t.config)
    cfg.setdefault("protocol", "https" if cfg.get("ssl") else "http")
    resp = await _http_get(dataclasses.replace(t, config=cfg), timeout, "/", "http")
    if resp.status_code in (401, 403):
        raise ProbeFailed("authentication failed")
    if resp.status_code >= 400:
        raise ProbeFailed(f"HTTP {resp.status_code} {resp.reason_phrase}")
    try:
        body = resp.json()
        version = body.get("version", {}).get("number")
        name = body.get("cluster_name")
    except (ValueError, AttributeError):
        raise ProbeFailed("not an Elasticsearch endpoint (no JSON at /)") from None
    if not version:
        raise ProbeFailed("not an Elasticsearch endpoint (no version at /)")
    return f"Elasticsearch {version}" + (f" (cluster {name})" if name else "")


async def _smtp(t: ProbeTarget, timeout: float) -> str:
    cfg = t.config
    security = str(cfg.get("encryption") or cfg.get("connection_security") or "").lower()
    use_ssl = bool(cfg.get("use_ssl")) or security == "ssl"
    # STARTTLS only when asked for explicitly; "auto" lets aiosmtplib upgrade if offered.
    start_tls: bool | None = True if security == "starttls" else (False if security == "none" else None)
    if use_ssl:
        start_tls = False
    client = aiosmtplib.SMTP(
        hostname=t.dial(
            name_verified=bool(cfg.get("verify_ssl", True)) and (use_ssl or security in ("ssl", "starttls"))
        ),
        port=t.port,
        timeout=timeout,
        use_tls=use_ssl,
        start_tls=start_tls,
        validate_certs=bool(cfg.get("verify_ssl", True)),
    )
    try:
        await client.connect()
        banner = (client.last_ehlo_response.message if client.last_ehlo_response else "").splitlines()
        s = t.secret
        if s is not None and s.username and cfg.get("auth_required", True):
            try:
                await client.login(s.username, s.password or "")
            except aiosmtplib.SMTPAuthenticationError:
                raise ProbeFailed("authentication failed") from None
            except aiosmtplib.SMTPException as exc:
                raise ProbeFailed(f"SMTP login not possible: {type(exc).__name__}") from None
        await client.quit()
    except aiosmtplib.SMTPConnectTimeoutError:
        raise TimeoutError from None
    except aiosmtplib.SMTPTimeoutError:
        raise TimeoutError from None
    except aiosmtplib.SMTPConnectError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            raise cause from None
        raise ProbeFailed("cannot connect to the SMTP server") from None
    finally:
        if client.is_connected:
            client.close()
    return f"SMTP {banner[0]}" if banner and banner[0] else "SMTP ok"


# SNMP: a hand-built SNMPv1/v2c GET of sysDescr.0 over UDP (pysnmp is not used: its releases
# churn and it pulls a large dependency tree for what is one request/response). v3 needs USM
# (keys, engine discovery): for v3 we only check that *something* answers on the port.
_SYS_DESCR = bytes([0x2B, 6, 1, 2, 1, 1, 1, 0])  # 1.3.6.1.2.1.1.1.0


def _ber(tag: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 0x80:
        return bytes([tag, n]) + payload
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + payload


def _ber_int(value: int) -> bytes:
    return _ber(0x02, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def snmp_get_request(community: str, request_id: int, version: int = 1) -> bytes:
    """SNMP GET of sysDescr.0; version 0 = v1, 1 = v2c."""
    varbind = _ber(0x30, _ber(0x06, _SYS_DESCR) + b"\x05\x00")
    pdu = _ber(0xA0, _ber_int(request_id) + _ber_int(0) + _ber_int(0) + _ber(0x30, varbind))
    return _ber(0x30, _ber_int(version) + _ber(0x04, community.encode()) + pdu)


def _ber_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(data[pos : pos + k], "big")
        pos += k
    return tag, data[pos : pos + n], pos + n


def parse_snmp_response(data: bytes, request_id: int) -> str:
    """sysDescr from a GetResponse; raises ProbeFailed on an SNMP error or a mismatched reply."""
    try:
        _, msg, _ = _ber_read(data, 0)
        _, _, p = _ber_read(msg, 0)  # version
        _, _, p = _ber_read(msg, p)  # community
        tag, pdu, _ = _ber_read(msg, p)
        if tag != 0xA2:
            raise ProbeFailed("unexpected SNMP reply")
        _, rid, q = _ber_read(pdu, 0)
        _, status, q = _ber_read(pdu, q)
        _, _, q = _ber_read(pdu, q)
        if int.from_bytes(rid, "big", signed=True) != request_id:
            raise ProbeFailed("SNMP reply to another request")
        if int.from_bytes(status, "big") != 0:
            raise ProbeFailed(f"SNMP error status {int.from_bytes(status, 'big')}")
        _, varbinds, _ = _ber_read(pdu, q)
        _, vb, _ = _ber_read(varbinds, 0)
        _, _, r = _ber_read(vb, 0)
        vtag, value, _ = _ber_read(vb, r)
        if vtag == 0x04:
            return value.decode(errors="replace")
        return ""
    except (IndexError, ValueError):
        raise ProbeFailed("malformed SNMP reply") from None


class _UdpOnce(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _snmp(t: ProbeTarget, timeout: float) -> str:
    version = str(t.config.get("version") or "2c").lower()
    community = (t.secret.password if t.secret and t.secret.password else None) or "public"
    request_id = secrets.randbelow(2**31 - 1)
    if version == "3":
        # A v1 GET is still answered (with a report or silence) by most agents; only reachability.
        packet = snmp_get_request(community, request_id, 1)
    else:
        packet = snmp_get_request(community, request_id, 0 if version == "1" else 1)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_UdpOnce, remote_addr=(t.dial(), t.port))
    try:
        retries = max(0, min(int(t.config.get("retries") or 0), 5))
        per_try = timeout * 0.9 / (retries + 1)  # answer before the outer bound cuts us off
        data = b""
        for attempt in range(retries + 1):
            transport.sendto(packet)
            try:
                data = await asyncio.wait_for(asyncio.shield(proto.reply), per_try)
                break
            except TimeoutError:
                if attempt == retries:
                    raise ProbeFailed(
                        f"no SNMP reply within {timeout:g}s (wrong community, or no agent)"
                    ) from None
    finally:
        transport.close()
    if version == "3":
        return "SNMP agent answered (v3: reachability only)"
    descr = parse_snmp_response(data, request_id)
    return f"SNMP sysDescr: {descr[:120]}" if descr else "SNMP agent answered"


async def _tcp_banner(t: ProbeTarget, timeout: float) -> tuple[str, float]:
    """TCP connect, then read whatever the server says first (telnet, mssql, oracle, mongodb...)."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(t.dial(), t.port)
    latency = _ms(start)
    try:
        banner = b""
        with contextlib.suppress(TimeoutError):
            banner = await asyncio.wait_for(reader.read(512), min(1.0, timeout / 2))
    finally:
        writer.close()
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    text = _printable(banner)
    return f"TCP port {t.port} open" + (f", banner: {text}" if text else " (no banner)"), latency


def _printable(data: bytes) -> str:
    # Telnet option negotiation (IAC 0xFF ...) is binary: keep only readable characters.
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0xFF:
            i += 3
            continue
        if 32 <= b < 127:
            out.append(b)
        elif b in (9, 10, 13) and out and out[-1] != 32:
            out.append(32)
        i += 1
    return out.decode().strip()[:120]


async def _sqlite(t: ProbeTarget, timeout: float) -> str:
    """Legacy: a file check. The path is on *this* service's host (host is reused as the path)."""
    path = str(t.config.get("database_path") or t.host)
    if not os.path.isfile(path):
        raise ProbeFailed("database file not found")
    if not os.access(path, os.R_OK):
        raise ProbeFailed("database file not readable")
    with open(path, "rb") as fh:  # noqa: ASYNC230 - a 16-byte local read
        head = fh.read(16)
    if head and head != b"SQLite format 3\x00":
        raise ProbeFailed("not an SQLite database file")
    return "SQLite database file present"


PROBES: dict[str, Callable[[ProbeTarget, float], Awaitable[str | tuple[str, float]]]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
    "redis": _redis,
    "rest_api": _rest_api,
    "elasticsearch": _elasticsearch,
    "smtp": _smtp,
    "snmp": _snmp,
    "telnet": _tcp_banner,
    "mssql": _tcp_banner,
    "oracle": _tcp_banner,
    "mongodb": _tcp_banner,
    "sqlite": _sqlite,
    # ssh/winrm go to the engine; these are the fallbacks when it is not available.
    "ssh": _tcp_banner,
    "winrm": _tcp_banner,
}


def method_timeout(config: dict[str, Any], default: float, cap: float) -> float:
    """The method's own ``timeout`` (seconds) when sane, else ``default``; never above ``cap``."""
    try:
        value = float(config.get("timeout") or default)
    except (TypeError, ValueError):
        value = default
    return max(0.1, min(value if value > 0 else default, cap))


async def run_probe(target: ProbeTarget, timeout: float) -> ProbeResult:
    """Run the type's probe, bounded by ``timeout`` (hard: the whole probe is cancelled then)."""
    probe = PROBES.get(target.type)
    if probe is None:
        return ProbeResult(False, None, f"no probe for method type {target.type!r}")
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            outcome = await probe(target, timeout)
    except TimeoutError:
        return ProbeResult(False, None, f"timed out after {timeout:g}s")
    except Exception as exc:
        log.info("probe failed", method=target.type, error_type=type(exc).__name__)
        return ProbeResult(False, None, describe_error(exc, timeout))
    if isinstance(outcome, tuple):  # the probe timed the connect itself (banner wait excluded)
        return ProbeResult(True, outcome[1], outcome[0])
    return ProbeResult(True, _ms(start), outcome)
