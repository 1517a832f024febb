"""Connection probes against real servers on this machine: PostgreSQL, MariaDB, Redis, HTTP,
SMTP (aiosmtpd), an SNMP responder and TCP/banner servers started here. No mocks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from opsconductor_targets.service.probes import (
    ProbeSecret,
    ProbeTarget,
    parse_snmp_response,
    run_probe,
    snmp_get_request,
)
from tests.support.platform import gql
from tests.support.sshd import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

TIMEOUT = 10.0


def loopback() -> str:
    """A loopback address of its own (127.0.0.0/8), so targets never collide on host."""
    raw = uuid.uuid4().bytes
    return f"127.{raw[0] % 250 + 1}.{raw[1]}.{max(raw[2], 1)}"


async def probe(type_: str, host: str, port: int, config: dict[str, Any] | None = None, **secret: Any) -> Any:
    s = ProbeSecret(**secret) if secret else None
    return await run_probe(ProbeTarget(type_, host, port, config or {}, s), TIMEOUT)


@contextlib.asynccontextmanager
async def tcp_server(host: str, banner: bytes | None, *, silent: bool = False) -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if banner:
            writer.write(banner)
            await writer.drain()
        with contextlib.suppress(Exception):
            if silent:  # accept, then say nothing and keep the connection open
                await asyncio.sleep(30)
            else:
                await asyncio.wait_for(reader.read(1), 30)
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@contextlib.asynccontextmanager
async def http_server(
    host: str, status: int, body: bytes, *, need_auth: str | None = None
) -> AsyncIterator[int]:
    """A tiny HTTP/1.1 server: one response per connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        code = status
        if need_auth and need_auth.encode() not in head:
            code = 401
        reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}[code]
        writer.write(
            f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


# -- databases and Redis on this machine ---------------------------------------------------------


async def test_postgresql_real_server() -> None:
    ok = await probe("postgresql", "127.0.0.1", 5432, {"database": "postgres"}, username="postgres")
    assert ok.ok and ok.latency_ms is not None and ok.latency_ms > 0, ok
    assert ok.message.startswith("PostgreSQL "), ok
    missing = await probe("postgresql", "127.0.0.1", 5432, {"database": "no_such_db_x"}, username="postgres")
    assert not missing.ok and "does not exist" in missing.message
    refused = await probe("postgresql", "127.0.0.1", closed_port())
    assert not refused.ok and refused.message == "connection refused" and refused.latency_ms is None


async def test_mysql_real_server() -> None:
    ok = await probe("mysql", "127.0.0.1", 3306, username="root", password="")
    assert (ok.ok and "MariaDB" in ok.message) or "MySQL" in ok.message, ok
    bad = await probe("mysql", "127.0.0.1", 3306, username="root", password="wrong-" + uuid.uuid4().hex)
    assert not bad.ok and bad.message == "authentication failed", bad
    assert "wrong-" not in bad.message
    refused = await probe("mysql", "127.0.0.1", closed_port(), username="root")
    assert not refused.ok and refused.message == "connection refused", refused


async def test_redis_real_server() -> None:
    ok = await probe("redis", "127.0.0.1", 6379, {"database": 0})
    assert ok.ok and ok.message.startswith("Redis "), ok
    bad = await probe("redis", "127.0.0.1", 6379, username="nobody-" + uuid.uuid4().hex[:6], password="x")
    assert not bad.ok and bad.message == "authentication failed", bad
    refused = await probe("redis", "127.0.0.1", closed_port())
    assert not refused.ok and refused.message == "connection refused", refused


# -- HTTP: rest_api and elasticsearch --------------------------------------------------------------


async def test_rest_api_statuses_and_token() -> None:
    host = loopback()
    async with http_server(host, 200, b"{}", need_auth="Bearer tok-1") as port:
        ok = await probe("rest_api", host, port, {"base_path": "/api"}, type="api_token", password="tok-1")
        assert ok.ok and ok.message.startswith("HTTP 200"), ok
        # Legacy rule: below 500 means the API is there (401 included).
        unauth = await probe("rest_api", host, port)
        assert unauth.ok and "401" in unauth.message
    async with http_server(host, 503, b"down") as port:
        down = await probe("rest_api", host, port)
        assert not down.ok and "503" in down.message
    refused = await probe("rest_api", host, closed_port())
    assert not refused.ok and "refused" in refused.message, refused


async def test_elasticsearch_root_document() -> None:
    host = loopback()
    body = json.dumps({"cluster_name": "c1", "version": {"number": "8.15.0"}}).encode()
    async with http_server(host, 200, body, need_auth="Authorization: Basic") as port:
        ok = await probe("elasticsearch", host, port, username="elastic", password="pw")
        assert ok.ok and ok.message == "Elasticsearch 8.15.0 (cluster c1)", ok
        denied = await probe("elasticsearch", host, port)
        assert not denied.ok and denied.message == "authentication failed"
    async with http_server(host, 200, b"<html>") as port:
        other = await probe("elasticsearch", host, port)
        assert not other.ok and "not an Elasticsearch" in other.message


# -- SMTP (aiosmtpd) -----------------------------------------------------------------------------


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == b"ops" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


async def test_smtp_real_server_with_login() -> None:
    host = loopback()
    controller = Controller(
        _Sink(),
        hostname=host,
        port=closed_port(),
        authenticator=_auth,
        auth_require_tls=False,
        server_hostname="mail.test",
    )
    await asyncio.to_thread(controller.start)
    try:
        port = controller.port
        cfg = {"encryption": "none"}
        ok = await probe("smtp", host, port, cfg, username="ops", password="s3cret")
        assert ok.ok and ok.message.startswith("SMTP"), ok
        bad = await probe("smtp", host, port, cfg, username="ops", password="nope")
        assert not bad.ok and bad.message == "authentication failed", bad
        anonymous = await probe("smtp", host, port, cfg)
        assert anonymous.ok
    finally:
        await asyncio.to_thread(controller.stop)
    refused = await probe("smtp", host, closed_port(), {"encryption": "none"})
    assert not refused.ok and refused.message == "connection refused"


# -- SNMP: a minimal v2c responder ----------------------------------------------------------------


class _Agent(asyncio.DatagramProtocol):
    """Answers a GET with a GetResponse carrying sysDescr when the community matches."""

    def __init__(self, community: bytes) -> None:
        self.community = community

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.community not in data:
            return  # real agents stay silent on a wrong community
        # Reuse the request: swap the PDU tag and insert an OCTET STRING value for the NULL.
        descr = b"Linux test-agent"
        head, _, _ = data.rpartition(b"\x05\x00")
        reply = _rebuild(head, descr)
        self.transport.sendto(reply, addr)


def _rebuild(head_without_null: bytes, descr: bytes) -> bytes:
    from opsconductor_targets.service.probes import _ber, _ber_read

    _, msg, _ = _ber_read(head_without_null + b"\x05\x00", 0)
    _, version, p = _ber_read(msg, 0)
    _, community, p = _ber_read(msg, p)
    _, pdu, _ = _ber_read(msg, p)
    _, rid, _q = _ber_read(pdu, 0)
    varbind = _ber(0x30, _ber(0x06, bytes([0x2B, 6, 1, 2, 1, 1, 1, 0])) + _ber(0x04, descr))
    new_pdu = _ber(0xA2, _ber(0x02, rid) + _ber(0x02, b"\x00") + _ber(0x02, b"\x00") + _ber(0x30, varbind))
    return _ber(0x30, _ber(0x02, version) + _ber(0x04, community) + new_pdu)


async def test_snmp_get_sysdescr() -> None:
    host = loopback()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Agent(b"c0mm"), local_addr=(host, 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        ok = await probe("snmp", host, port, {"version": "2c"}, type="snmp_community", password="c0mm")
        assert ok.ok and ok.message == "SNMP sysDescr: Linux test-agent", ok
        wrong = await run_probe(
            ProbeTarget("snmp", host, port, {"retries": 1}, ProbeSecret(password="bad")), 1.0
        )
        assert not wrong.ok and "no SNMP reply" in wrong.message, wrong
    finally:
        transport.close()


def test_snmp_codec_round_trip() -> None:
    request = snmp_get_request("public", 4242)
    reply = _rebuild(request.rpartition(b"\x05\x00")[0], b"box")
    assert parse_snmp_response(reply, 4242) == "box"
    with pytest.raises(Exception, match="another request"):
        parse_snmp_response(reply, 4243)


# -- TCP + banner (telnet and the types without a client here) -------------------------------------


async def test_telnet_banner_and_timeout_bound() -> None:
    host = loopback()
    async with tcp_server(host, b"\xff\xfb\x01Welcome to switch-1\r\nlogin: ") as port:
        ok = await probe("telnet", host, port)
        assert ok.ok and "banner: Welcome to switch-1 login:" in ok.message, ok
    async with tcp_server(host, None) as port:
        quiet = await probe("mongodb", host, port)
        assert quiet.ok and quiet.message.endswith("(no banner)")
    refused = await probe("telnet", host, closed_port())
    assert not refused.ok and refused.message == "connection refused"


async def test_probe_never_outlives_its_timeout() -> None:
    """A server that accepts but never answers: the PostgreSQL probe ends at the bound."""
    host = loopback()
    async with tcp_server(host, None, silent=True) as port:
        result = await asyncio.wait_for(
            run_probe(ProbeTarget("postgresql", host, port, {}, ProbeSecret(username="x")), 1.0), 20
        )
    assert not result.ok and result.message == "timed out after 1s", result


async def test_unknown_type_and_sqlite_file(tmp_path: Any) -> None:
    assert not (await probe("gopher", "127.0.0.1", 70)).ok
    db = tmp_path / "x.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    assert (await probe("sqlite", str(db), 0)).ok
    missing = await probe("sqlite", str(tmp_path / "none.db"), 0)
    assert not missing.ok and missing.message == "database file not found"


# -- testMethodConfig over GraphQL -----------------------------------------------------------------

TEST_CONFIG = """mutation($input: CommunicationMethodInput!) { testMethodConfig(input: $input) {
  __typename ... on ConnectionTestResult { ok latencyMs message method methodId }
  ... on ValidationFailed { message field } } }"""


async def test_test_method_config_unsaved(platform: Any, admin_token: str) -> None:
    url = platform.url("targets")
    ok = await gql(
        url,
        TEST_CONFIG,
        {
            "input": {
                "type": "POSTGRESQL",
                "host": "127.0.0.1",
                "port": 5432,
                "config": {"database": "postgres"},
                "credential": {"type": "PASSWORD", "username": "postgres", "password": "unused-pw"},
            }
        },
        token=admin_token,
    )
    result = ok["data"]["testMethodConfig"]
    assert result["__typename"] == "ConnectionTestResult" and result["ok"], ok
    assert result["method"] == "POSTGRESQL" and result["methodId"] is None
    assert "unused-pw" not in json.dumps(ok)
    bad = await gql(
        url,
        TEST_CONFIG,
        {
            "input": {
                "type": "MYSQL",
                "host": "127.0.0.1",
                "port": 3306,
                "credential": {"type": "PASSWORD", "username": "root", "password": "definitely-wrong"},
            }
        },
        token=admin_token,
    )
    r = bad["data"]["testMethodConfig"]
    assert r["ok"] is False and r["message"] == "authentication failed", bad
    assert "definitely-wrong" not in json.dumps(bad)
    invalid = await gql(
        url, TEST_CONFIG, {"input": {"type": "REDIS", "host": "not a host!"}}, token=admin_token
    )
    assert invalid["data"]["testMethodConfig"]["__typename"] == "ValidationFailed", invalid


async def test_test_method_config_needs_write(platform: Any) -> None:
    body = await gql(platform.url("targets"), TEST_CONFIG, {"input": {"type": "REDIS", "host": "127.0.0.1"}})
    assert (
        (body.get("errors") and not body.get("data", {}))
        or body["data"] is None
        or body["data"].get("testMethodConfig") is None
    ), body
