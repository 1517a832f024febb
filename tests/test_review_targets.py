"""Security review 2026-12, targets side: H2, H3, H8, M11, L5, L7, L16 (through the router where
the attack comes through it; real PostgreSQL, Redis, Ray and loopback listeners, no mocks)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import asyncssh
import httpx
import pytest

from opsconductor_shared.crypto import KeyRing
from opsconductor_targets.errors import AddressDenied
from opsconductor_targets.service import ConnectionTester, GrantSigner, Vault
from opsconductor_targets.service.keyparse import OPENSSH_MAGIC
from opsconductor_targets.service.netpolicy import NetPolicy
from opsconductor_targets.service.probes import ProbeTarget
from opsconductor_targets.settings import Settings
from tests.support.platform import gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

RESULT = """__typename ... on ValidationFailed { message field } ... on Error { message }"""
CREATE = f"""mutation($input: CreateTargetInput!) {{ createTarget(input: $input) {{ {RESULT}
  ... on TargetCreated {{ target {{ id communicationMethods {{ id host port }} }} }} }} }}"""
UPDATE_METHOD = f"""mutation($id: ID!, $m: ID!, $input: UpdateCommunicationMethodInput!) {{
  updateCommunicationMethod(targetId: $id, methodId: $m, input: $input) {{ {RESULT} }} }}"""
TEST_CONNECTION = """mutation($id: ID!) { testConnection(targetId: $id) { ok message } }"""
TEST_CONFIG = f"""mutation($input: CommunicationMethodInput!) {{ testMethodConfig(input: $input) {{ {RESULT}
  ... on ConnectionTestResult {{ ok message }} }} }}"""
GRANT = """mutation($ids: [ID!]!) { issueConnectionGrant(targetIds: $ids) { __typename
  ... on ConnectionGrant { grant } ... on Error { message } } }"""
BULK = (
    """mutation($ids: [ID!]!) { bulkTestConnections(targetIds: $ids) { targetId result { ok message } } }"""
)
DUE = """mutation($ids: [ID!]) { runDueHealthChecks(targetIds: $ids) { targetId } }"""
DELETE = """mutation($id: ID!) { deleteTarget(id: $id) { __typename } }"""


def loopback() -> str:
    raw = uuid.uuid4().bytes
    return f"127.{200 + raw[0] % 50}.{raw[1]}.{max(raw[2], 1)}"


async def q(url: str, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = await gql(url, query, variables, token=token, timeout=90)
    assert "errors" not in body, body
    return body["data"]


async def create(url: str, token: str, methods: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    payload = {"name": f"r-{uuid.uuid4().hex[:6]}", "osType": "linux", "environment": "testing", **fields}
    result = (await q(url, token, CREATE, {"input": {**payload, "methods": methods}}))["createTarget"]
    assert "target" in result, result
    return result["target"]


@contextlib.asynccontextmanager
async def http_listener(host: str, seen: list[bytes]) -> AsyncIterator[int]:
    """An HTTP server that records every request head and answers 200."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            seen.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@contextlib.asynccontextmanager
async def silent_listener(host: str, counter: dict[str, int] | None = None) -> AsyncIterator[int]:
    """Accepts TCP and never says a word (not SSH, no banner); counts open connections."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if counter is not None:
            counter["open"] += 1
            counter["max"] = max(counter["max"], counter["open"])
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                while await reader.read(4096):  # read what the client says, answer nothing
                    pass
        if counter is not None:
            counter["open"] -= 1
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


# -- H2 ------------------------------------------------------------------------------------------


async def test_h2_repointing_a_method_needs_its_secret_again(router: Any, admin_token: str) -> None:
    """H2: moving a rest_api method with a stored token to listener B without re-sending the token
    is a ValidationFailed naming the credential field; B never receives the stored secret."""
    secret = "tok-" + uuid.uuid4().hex
    host_a, host_b = loopback(), loopback()
    seen_a: list[bytes] = []
    seen_b: list[bytes] = []
    async with http_listener(host_a, seen_a) as port_a, http_listener(host_b, seen_b) as port_b:
        method = {
            "type": "REST_API",
            "host": host_a,
            "port": port_a,
            "credential": {"type": "API_TOKEN", "username": "", "password": secret},
        }
        t = await create(router.url, admin_token, [method])
        mid = t["communicationMethods"][0]["id"]
        kept = {"type": "API_TOKEN", "username": "", "password": "[Current Password - Hidden for Security]"}
        for change in (
            {"host": host_b, "port": port_b},
            {"host": host_b, "port": port_b, "credential": kept},
            {"port": port_b},
            {"config": {"protocol": "https"}},
        ):
            moved = (
                await q(router.url, admin_token, UPDATE_METHOD, {"id": t["id"], "m": mid, "input": change})
            )["updateCommunicationMethod"]
            assert moved["__typename"] == "ValidationFailed", (change, moved)
            assert moved["field"] == "method.credential.password", moved
        tested = (await q(router.url, admin_token, TEST_CONNECTION, {"id": t["id"]}))["testConnection"]
        assert tested["ok"], tested
        assert any(f"Bearer {secret}".encode() in head for head in seen_a)  # still only A has it
        # with the secret sent again the move is fine, and B gets the new secret only
        fresh = "tok2-" + uuid.uuid4().hex
        ok = (
            await q(
                router.url,
                admin_token,
                UPDATE_METHOD,
                {
                    "id": t["id"],
                    "m": mid,
                    "input": {
                        "host": host_b,
                        "port": port_b,
                        "credential": {"type": "API_TOKEN", "username": "", "password": fresh},
                    },
                },
            )
        )["updateCommunicationMethod"]
        assert ok["__typename"] == "TargetUpdated", ok
        tested = (await q(router.url, admin_token, TEST_CONNECTION, {"id": t["id"]}))["testConnection"]
        assert tested["ok"], tested
    assert any(f"Bearer {fresh}".encode() in head for head in seen_b)
    assert not any(secret.encode() in head for head in seen_b), "B received the stored secret"
    await q(router.url, admin_token, DELETE, {"id": t["id"]})


# -- H3 ------------------------------------------------------------------------------------------


async def test_h3_no_ssh_credential_without_a_readable_host_key(platform: Any, admin_token: str) -> None:
    """H3: an SSH target (development: trust on first use) on a port that accepts TCP but never
    speaks SSH: the host-key read times out and the resolver refuses the credential instead of
    releasing it without knownHosts."""
    host = loopback()
    password = "pw-" + uuid.uuid4().hex
    async with silent_listener(host) as port:
        method = {
            "type": "SSH",
            "host": host,
            "port": port,
            "credential": {"type": "PASSWORD", "username": "ops", "password": password},
        }
        t = await create(platform.url("targets"), admin_token, [method], environment="development")
        grant = (await q(platform.url("targets"), admin_token, GRANT, {"ids": [t["id"]]}))[
            "issueConnectionGrant"
        ]
        assert grant["__typename"] == "ConnectionGrant", grant
        url = f"{platform.base('targets')}/internal/credentials"
        async with httpx.AsyncClient(timeout=30) as http:
            one = await http.post(url, json={"grant": grant["grant"], "targetId": t["id"]})
            many = await http.post(url, json={"grant": grant["grant"], "targetIds": [t["id"]]})
    assert one.status_code == 403, one.text
    assert "host key" in one.json()["message"] and "timed out" in one.json()["message"], one.text
    assert password not in one.text
    assert many.status_code == 200 and many.json()["credentials"] == {}, many.text
    assert "host key" in many.json()["refused"][t["id"]]
    await q(platform.url("targets"), admin_token, DELETE, {"id": t["id"]})


# -- H8 ------------------------------------------------------------------------------------------


def with_kdf_rounds(pem: str, rounds: int) -> str:
    """An encrypted OpenSSH key whose header asks for `rounds` bcrypt rounds (PROTOCOL.key):
    exporting with rounds=100000 would itself run the KDF for minutes, so the field is set."""
    lines = pem.strip().splitlines()
    blob = base64.b64decode("".join(lines[1:-1]))
    pos = len(OPENSSH_MAGIC)
    for _ in range(2):  # ciphername, kdfname
        (size,) = struct.unpack(">I", blob[pos : pos + 4])
        pos += 4 + size
    options = pos + 4
    (salt,) = struct.unpack(">I", blob[options : options + 4])
    at = options + 4 + salt
    blob = blob[:at] + struct.pack(">I", rounds) + blob[at + 4 :]
    body = base64.b64encode(blob).decode()
    return "\n".join([lines[0], *(body[i : i + 70] for i in range(0, len(body), 70)), lines[-1]]) + "\n"


@pytest.mark.parametrize("rounds", [2000, 100000])
async def test_h8_key_with_huge_kdf_rounds_is_refused_quickly(
    router: Any, admin_token: str, rounds: int
) -> None:
    """H8: testMethodConfig with an ed25519 key asking for `rounds` bcrypt rounds, passphrase "x":
    refused before any KDF work, quickly, and the event loop keeps running meanwhile."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    pem = with_kdf_rounds(key.export_private_key("openssh", passphrase="x", rounds=16).decode(), rounds)
    method = {
        "type": "SSH",
        "host": loopback(),
        "credential": {"type": "SSH_KEY", "username": "ops", "privateKey": pem, "passphrase": "x"},
    }
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:  # the platform shares this event loop: a blocked loop stalls it
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        body = await gql(router.url, TEST_CONFIG, {"input": method}, token=admin_token, timeout=60)
    finally:
        done.set()
        await tick
    elapsed = time.monotonic() - started
    result = body["data"]["testMethodConfig"]
    assert result["__typename"] == "ValidationFailed", body
    assert result["field"] == "input.credential.privateKey" and str(rounds) in result["message"], result
    assert elapsed < 5, f"refusing the key took {elapsed:.1f}s"
    assert max(gaps, default=0) < 1.0, f"the event loop stalled for {max(gaps):.2f}s"


async def test_h8_normal_encrypted_key_still_accepted(router: Any, admin_token: str) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    pem = key.export_private_key("openssh", passphrase="x", rounds=16).decode()
    cred = {"type": "SSH_KEY", "username": "ops", "privateKey": pem, "passphrase": "x"}
    body = await gql(
        router.url,
        TEST_CONFIG,
        {"input": {"type": "SSH", "host": loopback(), "port": 1, "credential": cred}},
        token=admin_token,
    )
    assert body["data"]["testMethodConfig"]["__typename"] == "ConnectionTestResult", body
    wrong = await gql(
        router.url,
        TEST_CONFIG,
        {"input": {"type": "SSH", "host": loopback(), "credential": {**cred, "passphrase": "y"}}},
        token=admin_token,
    )
    assert wrong["data"]["testMethodConfig"]["field"] == "input.credential.passphrase", wrong


def test_h8_pkcs8_iteration_count_is_capped_before_any_kdf_work() -> None:
    """H8, PKCS#8 variant: an EncryptedPrivateKeyInfo asking for 5,000,000 PBKDF2 iterations is
    refused from its header (PEM and DER); a normal one passes the check."""
    from asyncssh.asn1 import der_decode, der_encode
    from asyncssh.misc import wrap_base64

    from opsconductor_targets.service.keyparse import KeyCostError, check_kdf_cost

    normal = asyncssh.generate_private_key("ssh-ed25519").export_private_key("pkcs8-der", passphrase="x")
    (alg, (kdf, enc)), data = der_decode(normal)
    costly = der_encode(((alg, ((kdf[0], (kdf[1][0], 5_000_000, *kdf[1][2:])), enc)), data))
    for key in (costly, wrap_base64(costly, b"ENCRYPTED PRIVATE KEY").decode()):
        started = time.monotonic()
        with pytest.raises(KeyCostError, match="5000000 PBKDF2 iterations"):
            check_kdf_cost(key, max_rounds=1024, max_iterations=1_000_000)
        assert time.monotonic() - started < 1
    check_kdf_cost(normal, max_rounds=1024, max_iterations=1_000_000)


# -- M11 -----------------------------------------------------------------------------------------


def default_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "allow_networks": "",
        "platform_endpoints": "",
        "database_url": "postgres://u@10.9.8.7:5432/opsc",
        "redis_url": "redis://10.9.8.6:6379/0",
        "internal_url": "http://10.9.8.5:3001",
        "auth_internal_url": "http://10.9.8.4:3000",
        "jwks_url": "http://10.9.8.4:3000/.well-known/jwks.json",
    }
    return Settings(**{**base, **overrides})


async def test_m11_default_policy_denies_loopback_link_local_and_platform_endpoints() -> None:
    """M11: with no allowance, loopback, link-local/metadata and the platform's own endpoints
    (database, Redis, service ports, Ray) are denied; other addresses and ports are not."""
    policy = NetPolicy(default_settings(), environ={"OPSC_RAY_ADDRESS": "10.9.8.3:6380"})
    denied = [
        ("127.0.0.1", 22),
        ("127.10.20.30", 8080),
        ("localhost", 5432),  # resolved first
        ("::1", 22),
        ("::ffff:127.0.0.1", 22),
        ("169.254.169.254", 80),
        ("fe80::1", 22),
        ("0.0.0.0", 22),
        ("10.9.8.7", 5432),  # the platform's database
        ("10.9.8.6", 6379),  # its Redis
        ("10.9.8.5", 3001),  # the targets service
        ("10.9.8.4", 3000),  # auth
        ("10.9.8.3", 6380),  # Ray
    ]
    for host, port in denied:
        with pytest.raises(AddressDenied):
            await policy.check(host, port)
    assert await policy.check("10.9.8.7", 22) == "10.9.8.7"  # the same host, another port
    assert await policy.check("192.0.2.10", 5432) == "192.0.2.10"
    allowed = NetPolicy(default_settings(allow_networks="127.0.0.0/8"), environ={})
    assert await allowed.check("127.0.0.1", 22) == "127.0.0.1"
    with pytest.raises(AddressDenied):
        await allowed.check("169.254.169.254", 80)


async def test_m11_probe_connects_to_the_checked_address(tmp_path: Path) -> None:
    """M11 (DNS rebinding): a hostname is resolved and checked once, and the probe connects to
    that address (Host header keeps the name); sqlite checks are refused without a directory."""
    settings = default_settings(allow_networks="127.0.0.0/8")
    keyring = KeyRing.load_or_create(None, tmp_path / "k")
    tester = ConnectionTester(
        settings=settings,
        netpolicy=NetPolicy(settings),
        vault=Vault(keyring),
        grants=GrantSigner(keyring),
        engine=None,
    )
    seen: list[bytes] = []
    async with http_listener("127.0.0.1", seen) as port:
        target = ProbeTarget("rest_api", "localhost", port, {"health_path": "/h"})
        result = await tester.guarded_probe(target, 10)
    assert result.ok, result
    assert f"Host: localhost:{port}".encode() in seen[0]
    shadow = await tester.guarded_probe(ProbeTarget("sqlite", "/etc/shadow", 0, {}), 5)
    missing = await tester.guarded_probe(ProbeTarget("sqlite", "/nope/x.db", 0, {}), 5)
    assert not shadow.ok and shadow.message == missing.message, (shadow, missing)


async def test_m11_router_probes_and_grants_refuse_denied_addresses(
    router: Any, platform: Any, admin_token: str
) -> None:
    """M11 through the router (the session allows 127.0.0.0/8 only): probes of other local
    addresses, a sqlite path and an SSH target on a denied address are refused before anything
    is contacted."""
    started = time.monotonic()
    for method in (
        # loopback outside the allowed 127.0.0.0/8 and the unspecified address: were the policy
        # to regress, nothing would leave this machine (link-local is covered by the unit test)
        {"type": "TELNET", "host": "::1", "port": 22},
        {"type": "REST_API", "host": "::1", "port": 80},
        {"type": "ELASTICSEARCH", "host": "0.0.0.0", "port": 9200},
        # the platform's own Redis and auth port stay denied inside the allowed 127.0.0.0/8
        {"type": "REDIS", "host": "127.0.0.1", "port": 6379},
        {"type": "REST_API", "host": "127.0.0.1", "port": platform.ports["auth"]},
    ):
        body = await gql(router.url, TEST_CONFIG, {"input": method}, token=admin_token)
        result = body["data"]["testMethodConfig"]
        assert result["ok"] is False and "not allowed" in result["message"], (method, body)
    shadow = await q(
        router.url, admin_token, TEST_CONFIG, {"input": {"type": "SQLITE", "host": "/etc/shadow"}}
    )
    missing = await q(
        router.url, admin_token, TEST_CONFIG, {"input": {"type": "SQLITE", "host": "/no/such.db"}}
    )
    assert shadow == missing and shadow["testMethodConfig"]["ok"] is False, (shadow, missing)
    assert time.monotonic() - started < 5

    raw = uuid.uuid4().bytes
    method = {
        "type": "SSH",
        "host": "::1",
        "port": 20000 + int.from_bytes(raw[:2], "big") % 40000,
        "credential": {"type": "PASSWORD", "username": "ops", "password": "pw-" + uuid.uuid4().hex},
    }
    t = await create(router.url, admin_token, [method], environment="development")
    tested = (await q(router.url, admin_token, TEST_CONNECTION, {"id": t["id"]}))["testConnection"]
    assert tested["ok"] is False and "not allowed" in tested["message"], tested
    grant = (await q(platform.url("targets"), admin_token, GRANT, {"ids": [t["id"]]}))["issueConnectionGrant"]
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(
            f"{platform.base('targets')}/internal/credentials",
            json={"grant": grant["grant"], "targetId": t["id"]},
        )
    assert resp.status_code == 403 and "not allowed" in resp.json()["message"], resp.text
    await q(router.url, admin_token, DELETE, {"id": t["id"]})


# -- L5 ------------------------------------------------------------------------------------------


async def test_l5_winrm_basic_over_http_and_ignored_certificates_need_opt_in(
    router: Any, admin_token: str
) -> None:
    cred = {"type": "PASSWORD", "username": "Administrator", "password": "pw-" + uuid.uuid4().hex}

    async def try_config(config: dict[str, Any]) -> dict[str, Any]:
        method = {"type": "WINRM", "host": loopback(), "config": config, "credential": cred}
        payload = {"name": f"w-{uuid.uuid4().hex[:6]}", "osType": "windows", "methods": [method]}
        return (await q(router.url, admin_token, CREATE, {"input": payload}))["createTarget"]

    basic = await try_config({"transport": "basic"})
    assert basic["__typename"] == "ValidationFailed" and basic["field"] == "methods[0].config.transport", (
        basic
    )
    ignore = await try_config({"scheme": "https", "server_cert_validation": "ignore"})
    assert ignore["field"] == "methods[0].config.server_cert_validation", ignore
    for config in (
        {"transport": "basic", "allow_insecure_basic": True},
        {"transport": "basic", "scheme": "https"},
        {"scheme": "https", "server_cert_validation": "ignore", "allow_unverified_tls": True},
        {},  # the documented default: http + NTLM
    ):
        ok = await try_config(config)
        assert "target" in ok, (config, ok)
        await q(router.url, admin_token, DELETE, {"id": ok["target"]["id"]})


# -- L7 ------------------------------------------------------------------------------------------


async def test_l7_concurrent_bulk_tests_share_the_health_concurrency_bound(
    router: Any, admin_token: str
) -> None:
    """L7: two bulk tests at once never run more than health_concurrency checks together."""
    bound = Settings().health_concurrency
    per_call = bound - 2  # each call alone stays under the bound; together they exceed it
    counter = {"open": 0, "max": 0}
    async with contextlib.AsyncExitStack() as stack:
        ids: list[str] = []
        for _ in range(2 * per_call):
            host = loopback()
            port = await stack.enter_async_context(silent_listener(host, counter))
            t = await create(router.url, admin_token, [{"type": "TELNET", "host": host, "port": port}])
            ids.append(t["id"])
        results = await asyncio.gather(
            q(router.url, admin_token, BULK, {"ids": ids[:per_call]}),
            q(router.url, admin_token, BULK, {"ids": ids[per_call:]}),
        )
    assert all(len(r["bulkTestConnections"]) == per_call for r in results)
    assert 0 < counter["max"] <= bound, counter
    for target_id in ids:
        await q(router.url, admin_token, DELETE, {"id": target_id})


# -- L16 -----------------------------------------------------------------------------------------


async def test_l16_health_history_is_pruned_by_age_and_per_target(platform: Any, admin_token: str) -> None:
    settings = Settings()
    cap = settings.health_history_max_per_target
    t = await create(
        platform.url("targets"), admin_token, [{"type": "TELNET", "host": loopback(), "port": 1}]
    )
    old = datetime.now(UTC) - timedelta(days=settings.health_history_retention_days + 5)
    conn = await asyncpg.connect(platform.databases["targets"])
    try:
        rows = [
            (t["id"], old if i < 5 else datetime.now(UTC) - timedelta(minutes=i)) for i in range(cap + 20)
        ]
        await conn.executemany(
            "INSERT INTO target_health_checks (target_id, ok, message, health_status, previous_status,"
            " trigger, checked_at) VALUES ($1, false, 'x', 'critical', 'critical', 'periodic', $2)",
            rows,
        )
        await q(platform.url("targets"), admin_token, DUE, {"ids": [t["id"]]})
        count = await conn.fetchval("SELECT count(*) FROM target_health_checks WHERE target_id = $1", t["id"])
        oldest = await conn.fetchval(
            "SELECT min(checked_at) FROM target_health_checks WHERE target_id = $1", t["id"]
        )
    finally:
        await conn.close()
    assert count <= cap, count
    assert oldest > old + timedelta(days=1)
    await q(platform.url("targets"), admin_token, DELETE, {"id": t["id"]})
