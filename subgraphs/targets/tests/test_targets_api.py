"""The targets subgraph over HTTP against real PostgreSQL, Redis, Ray and sshd (no mocks)."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import asyncssh
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsconductor_shared.crypto import KeyRing
from opsconductor_targets.service import GrantSigner
from tests.support.platform import gql
from tests.support.sshd import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

TARGET_FIELDS = """id serial name description osType environment status healthStatus tags createdAt
  communicationMethods { id type host port isPrimary priority isActive config
    credential { id type username } }"""
CREATE = f"""mutation($input: CreateTargetInput!) {{ createTarget(input: $input) {{ __typename
  ... on TargetCreated {{ target {{ {TARGET_FIELDS} }} }}
  ... on ValidationFailed {{ message field }}
  ... on HostAlreadyInUse {{ message targetId }}
  ... on Error {{ message }} }} }}"""
GET = f"query($id: ID!) {{ target(id: $id) {{ {TARGET_FIELDS} }} }}"
LIST = """query($first: Int, $after: String, $filter: TargetFilter) {
  targets(first: $first, after: $after, filter: $filter) {
    edges { cursor node { id name tags } } pageInfo { hasNextPage endCursor } totalCount } }"""
GRANT = """mutation($ids: [ID!]!) { issueConnectionGrant(targetIds: $ids) { __typename
  ... on ConnectionGrant { grant resolverUrl expiresAt targets { id name host port method methodId } }
  ... on NotFound { message id } ... on Error { message } } }"""
TEST_CONNECTION = """mutation($id: ID!, $method: ID) { testConnection(targetId: $id, methodId: $method) {
  ok latencyMs message method methodId } }"""

PASSWORD = "Pa55-" + uuid.uuid4().hex
KEY_PEM = asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode()
KEY_BODY = KEY_PEM.splitlines()[1]  # a line of key material, unlikely to appear by chance


def unique_ip() -> str:
    raw = uuid.uuid4().bytes
    # loopback only (127.100-199.x.y, clear of the sshd fixture's addresses): creating a target
    # reads its SSH host key in the background, and tests never reach beyond this machine
    return f"127.{100 + raw[0] % 100}.{raw[1]}.{max(raw[2], 1)}"


def ssh_method(
    host: str,
    *,
    port: int | None = None,
    key: str | None = KEY_PEM,
    username: str = "ops",
    password: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    cred: dict[str, Any] = {"type": "SSH_KEY" if key else "PASSWORD", "username": username}
    if key:
        cred["privateKey"] = key
    else:
        cred["password"] = password
    method: dict[str, Any] = {"type": "SSH", "host": host, "credential": cred, **extra}
    if port is not None:
        method["port"] = port
    return method


async def create(platform: Any, token: str, methods: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    payload = {
        "name": f"t-{uuid.uuid4().hex[:6]}",
        "osType": "linux",
        "environment": "testing",
        **fields,
        "methods": methods,
    }
    body = await gql(platform.url("targets"), CREATE, {"input": payload}, token=token)
    assert "errors" not in body, body
    return body["data"]["createTarget"]


async def created(platform: Any, token: str, methods: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    result = await create(platform, token, methods, **fields)
    assert result["__typename"] == "TargetCreated", result
    return result["target"]


async def db(platform: Any) -> asyncpg.Connection:
    return await asyncpg.connect(platform.databases["targets"])


HOST_KEY_LINE = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()


async def trust_host_keys(platform: Any, *targets: dict[str, Any]) -> None:
    """Record a host key for each SSH method (nothing listens there): the resolver releases an
    SSH credential only with the host key the engine must verify (review H3)."""
    conn = await db(platform)
    try:
        for t in targets:
            for m in t["communicationMethods"]:
                await conn.execute(
                    "INSERT INTO target_known_host_keys (target_id, method_id, host, port, key, fingerprint,"
                    " trusted_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'SHA256:test',"
                    " 'accepted', now(), now()) ON CONFLICT DO NOTHING",
                    t["id"],
                    m["id"],
                    m["host"],
                    m["port"],
                    HOST_KEY_LINE,
                )
    finally:
        await conn.close()


async def resolve(platform: Any, grant: Any, target_id: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            f"{platform.base('targets')}/internal/credentials", json={"grant": grant, "targetId": target_id}
        )


async def test_create_with_ssh_key_returns_metadata_only(platform: Any, admin_token: str) -> None:
    host = unique_ip()
    target = await created(
        platform,
        admin_token,
        [
            ssh_method(host, port=2222, config={"timeout": 5}),
            {
                "type": "WINRM",
                "host": host,
                "credential": {"type": "PASSWORD", "username": "Administrator", "password": PASSWORD},
            },
        ],
        tags=["web", "eu"],
        description="front",
    )
    assert target["serial"].startswith("TGT-") and len(target["serial"]) >= 10
    assert target["status"] == "ACTIVE" and target["healthStatus"] == "UNKNOWN"
    assert target["tags"] == ["web", "eu"]
    ssh, winrm = target["communicationMethods"]
    assert (ssh["type"], ssh["host"], ssh["port"], ssh["isPrimary"]) == ("SSH", host, 2222, True)
    assert ssh["config"]["timeout"] == 5
    assert ssh["credential"]["type"] == "SSH_KEY" and ssh["credential"]["username"] == "ops"
    assert set(ssh["credential"]) == {"id", "type", "username"}
    assert (winrm["type"], winrm["port"], winrm["isPrimary"]) == ("WINRM", 5985, False)

    # Reading it back: no secret anywhere in the response text.
    body = await gql(platform.url("targets"), GET, {"id": target["id"]}, token=admin_token)
    text = json.dumps(body)
    assert body["data"]["target"]["serial"] == target["serial"]
    assert KEY_BODY not in text and PASSWORD not in text and "BEGIN OPENSSH" not in text

    # At rest: ciphertext in the column, neither the password nor the key in clear.
    conn = await db(platform)
    try:
        rows = await conn.fetch(
            "SELECT c.id, c.secret_encrypted FROM target_credentials c "
            "JOIN target_communication_methods m ON m.id = c.method_id WHERE m.target_id = $1",
            target["id"],
        )
        outbox = await conn.fetch(
            "SELECT envelope::text AS e FROM outbox WHERE envelope->>'subject' = $1", target["id"]
        )
    finally:
        await conn.close()
    assert len(rows) == 2
    for row in rows:
        assert row["secret_encrypted"].startswith("v1:")
        assert PASSWORD not in row["secret_encrypted"] and KEY_BODY not in row["secret_encrypted"]
    # The created event exists and carries no secret.
    events = [json.loads(r["e"]) for r in outbox]
    assert [e["type"] for e in events] == ["targets.target_created"]
    assert PASSWORD not in outbox[0]["e"] and KEY_BODY not in outbox[0]["e"]


async def test_validation_failures(platform: Any, admin_token: str) -> None:
    cases = [
        ([ssh_method("not a host")], {}, "methods[0].host"),
        ([ssh_method("")], {}, "methods[0].host"),
        ([ssh_method(unique_ip(), port=70000)], {}, "methods[0].port"),
        ([ssh_method(unique_ip(), port=0)], {}, "methods[0].port"),
        (
            [
                ssh_method(
                    unique_ip(),
                    key="-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----",
                )
            ],
            {},
            "methods[0].credential.privateKey",
        ),
        ([ssh_method(unique_ip(), key=None, password=None)], {}, "methods[0].credential.password"),
        ([{"type": "SSH", "host": unique_ip()}], {}, "methods[0].credential"),
        ([ssh_method(unique_ip(), isPrimary=True), ssh_method(unique_ip(), isPrimary=True)], {}, "methods"),
        ([ssh_method(unique_ip())], {"name": ""}, "name"),
        ([ssh_method(unique_ip())], {"name": "n" * 101}, "name"),
    ]
    for methods, fields, field in cases:
        result = await create(platform, admin_token, methods, **fields)
        assert result["__typename"] == "ValidationFailed", (field, result)
        assert result["field"] == field, result
        assert result["message"]


async def test_duplicate_active_host(platform: Any, admin_token: str) -> None:
    host = unique_ip()
    first = await created(platform, admin_token, [ssh_method(host)])
    again = await create(platform, admin_token, [ssh_method(host, port=2200)])
    assert again["__typename"] == "HostAlreadyInUse", again
    assert again["targetId"] == first["id"] and host in again["message"]
    # a second method of another target counts too; a deleted (inactive) target frees the host
    other = await create(platform, admin_token, [ssh_method(unique_ip()), {"type": "SNMP", "host": host}])
    assert other["__typename"] == "HostAlreadyInUse"
    conn = await db(platform)
    try:
        await conn.execute("UPDATE targets SET is_active = false WHERE id = $1", first["id"])
    finally:
        await conn.close()
    assert (await create(platform, admin_token, [ssh_method(host)]))["__typename"] == "TargetCreated"
    # the deleted target is gone from queries
    body = await gql(platform.url("targets"), GET, {"id": first["id"]}, token=admin_token)
    assert body["data"]["target"] is None


async def test_unknown_target_and_targets_by_ids(platform: Any, admin_token: str) -> None:
    a = await created(platform, admin_token, [ssh_method(unique_ip())])
    b = await created(platform, admin_token, [ssh_method(unique_ip())])
    missing = str(uuid.uuid4())
    body = await gql(platform.url("targets"), GET, {"id": missing}, token=admin_token)
    assert body == {"data": {"target": None}}
    body = await gql(
        platform.url("targets"),
        "query($ids: [ID!]!) { targetsByIds(ids: $ids) { id name } }",
        {"ids": [b["id"], missing, a["id"]]},
        token=admin_token,
    )
    assert [t["id"] for t in body["data"]["targetsByIds"]] == [b["id"], a["id"]]
    # the ids-only check agrees, and leaves out deleted targets too
    gone = await created(platform, admin_token, [ssh_method(unique_ip())])
    conn = await db(platform)
    try:
        await conn.execute("UPDATE targets SET is_active = false WHERE id = $1", gone["id"])
    finally:
        await conn.close()
    active = "query($ids: [ID!]!) { activeTargetIds(ids: $ids) }"
    body = await gql(
        platform.url("targets"),
        active,
        {"ids": [b["id"], missing, gone["id"], a["id"], b["id"]]},
        token=admin_token,
    )
    assert body["data"]["activeTargetIds"] == [b["id"], a["id"]], body
    body = await gql(platform.url("targets"), active, {"ids": [missing] * 1001}, token=admin_token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    # federation entity lookup: unknown ids resolve to null
    body = await gql(
        platform.url("targets"),
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Target { id name } } }",
        {"r": [{"__typename": "Target", "id": a["id"]}, {"__typename": "Target", "id": missing}]},
        token=admin_token,
    )
    assert body["data"]["_entities"] == [{"id": a["id"], "name": a["name"]}, None]


async def test_paging_and_filters(platform: Any, admin_token: str) -> None:
    tag = f"grp-{uuid.uuid4().hex[:8]}"
    hosts = [f"pg-{uuid.uuid4().hex[:8]}.example.net" for _ in range(3)]
    made = [
        await created(platform, admin_token, [ssh_method(h)], tags=[tag, f"n{i}"], osType="linux")
        for i, h in enumerate(hosts)
    ]
    url = platform.url("targets")
    page1 = (await gql(url, LIST, {"first": 2, "filter": {"tags": [tag]}}, token=admin_token))["data"][
        "targets"
    ]
    assert page1["totalCount"] == 3 and page1["pageInfo"]["hasNextPage"] is True
    page2 = (
        await gql(
            url,
            LIST,
            {"first": 2, "after": page1["pageInfo"]["endCursor"], "filter": {"tags": [tag]}},
            token=admin_token,
        )
    )["data"]["targets"]
    assert page2["pageInfo"]["hasNextPage"] is False
    assert [e["node"]["id"] for e in page1["edges"] + page2["edges"]] == [t["id"] for t in made]
    both = (await gql(url, LIST, {"filter": {"tags": [tag.upper(), "n1"]}}, token=admin_token))["data"][
        "targets"
    ]
    assert [e["node"]["id"] for e in both["edges"]] == [made[1]["id"]]
    by_host = (await gql(url, LIST, {"filter": {"search": hosts[2][:11]}}, token=admin_token))["data"][
        "targets"
    ]
    assert [e["node"]["id"] for e in by_host["edges"]] == [made[2]["id"]]
    by_name = (
        await gql(
            url,
            LIST,
            {
                "filter": {
                    "search": made[0]["name"],
                    "osType": "linux",
                    "environment": "testing",
                    "status": "ACTIVE",
                }
            },
            token=admin_token,
        )
    )["data"]["targets"]
    assert [e["node"]["id"] for e in by_name["edges"]] == [made[0]["id"]]
    none = await gql(url, LIST, {"filter": {"tags": [tag], "osType": "windows"}}, token=admin_token)
    assert none["data"]["targets"]["totalCount"] == 0 and none["data"]["targets"]["edges"] == []
    bad = await gql(url, LIST, {"after": "not-a-cursor"}, token=admin_token)
    assert bad["errors"][0]["message"] == "invalid cursor"


async def test_grants_resolve_credentials(platform: Any, admin_token: str) -> None:
    a = await created(
        platform, admin_token, [ssh_method(unique_ip(), key=None, password=PASSWORD, username="alice")]
    )
    b = await created(platform, admin_token, [ssh_method(unique_ip())])
    c = await created(platform, admin_token, [ssh_method(unique_ip())])
    await trust_host_keys(platform, a, b, c)
    body = await gql(platform.url("targets"), GRANT, {"ids": [a["id"], b["id"]]}, token=admin_token)
    grant = body["data"]["issueConnectionGrant"]
    assert grant["__typename"] == "ConnectionGrant", body
    assert grant["resolverUrl"].endswith("/internal/credentials")
    assert [t["id"] for t in grant["targets"]] == [a["id"], b["id"]]
    assert grant["targets"][0]["method"] == "SSH" and grant["targets"][0]["port"] == 22

    ok = await resolve(platform, grant["grant"], a["id"])
    assert ok.status_code == 200, ok.text
    host = a["communicationMethods"][0]["host"]
    assert ok.json() == {
        "username": "alice",
        "password": PASSWORD,
        "privateKey": None,
        "passphrase": None,
        "knownHosts": f"{host} {HOST_KEY_LINE}\n",
    }
    ok = await resolve(platform, grant["grant"], b["id"])
    assert ok.status_code == 200 and ok.json()["privateKey"] == KEY_PEM and ok.json()["password"] is None

    # a target the grant does not list
    other = await resolve(platform, grant["grant"], c["id"])
    assert other.status_code == 403 and "does not cover" in other.json()["message"]
    # forged: claims rewritten to name target c, signature kept
    prefix, kid, claims, mac = grant["grant"].split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    decoded["tid"].append(c["id"])
    forged_claims = base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode().rstrip("=")
    forged = await resolve(platform, f"{prefix}.{kid}.{forged_claims}.{mac}", c["id"])
    assert forged.status_code == 403 and "signature" in forged.json()["message"]
    assert (await resolve(platform, "ocg1.abc.def.ghi", a["id"])).status_code == 403
    assert (await resolve(platform, "not-a-grant", a["id"])).status_code == 403
    # expired: signed with the service's real key, but its expiry has passed
    expired = await resolve(
        platform, await sign_with_service_key(platform, [a["id"]], exp=time.time() - 5), a["id"]
    )
    assert expired.status_code == 403 and "expired" in expired.json()["message"]
    # malformed requests
    assert (await resolve(platform, None, a["id"])).status_code == 400
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(f"{platform.base('targets')}/internal/credentials", content=b"{")
    assert resp.status_code == 400 and "message" in resp.json()

    # the primary method is listed, not the first one; a target whose methods are all inactive
    # has nothing to grant
    two = await created(
        platform,
        admin_token,
        [ssh_method(unique_ip(), port=2201), ssh_method(unique_ip(), port=2202, isPrimary=True)],
    )
    body = await gql(platform.url("targets"), GRANT, {"ids": [two["id"]]}, token=admin_token)
    assert [t["port"] for t in body["data"]["issueConnectionGrant"]["targets"]] == [2202], body
    conn = await db(platform)
    try:
        await conn.execute(
            "UPDATE target_communication_methods SET is_active = false WHERE target_id = $1", c["id"]
        )
    finally:
        await conn.close()
    body = await gql(platform.url("targets"), GRANT, {"ids": [a["id"], c["id"]]}, token=admin_token)
    assert body["data"]["issueConnectionGrant"]["__typename"] == "NotFound", body
    assert "no usable communication method" in body["data"]["issueConnectionGrant"]["message"]

    # unknown target in a grant request: NotFound
    missing = str(uuid.uuid4())
    body = await gql(platform.url("targets"), GRANT, {"ids": [a["id"], missing]}, token=admin_token)
    assert body["data"]["issueConnectionGrant"] == {
        "__typename": "NotFound",
        "message": f"target {missing} not found",
        "id": missing,
    }


async def test_grant_resolves_many_targets_in_one_request(platform: Any, admin_token: str) -> None:
    """The engine's batch form: one request answers a whole batch; each target that cannot be
    served is refused on its own without failing the others."""
    a = await created(
        platform, admin_token, [ssh_method(unique_ip(), key=None, password=PASSWORD, username="alice")]
    )
    b = await created(platform, admin_token, [ssh_method(unique_ip())])
    two = await created(  # two methods: the primary one's credential is answered
        platform,
        admin_token,
        [
            ssh_method(unique_ip(), key=None, password="first-method-pw"),
            ssh_method(unique_ip(), key=None, password="primary-method-pw", isPrimary=True),
        ],
    )
    gone = await created(platform, admin_token, [ssh_method(unique_ip())])
    outside = await created(platform, admin_token, [ssh_method(unique_ip())])
    await trust_host_keys(platform, a, b, two, gone, outside)
    body = await gql(
        platform.url("targets"),
        GRANT,
        {"ids": [a["id"], b["id"], two["id"], gone["id"]]},
        token=admin_token,
    )
    grant = body["data"]["issueConnectionGrant"]["grant"]
    deleted = await gql(
        platform.url("targets"),
        "mutation($id: ID!) { deleteTarget(id: $id) { __typename } }",
        {"id": gone["id"]},
        token=admin_token,
    )
    assert "errors" not in deleted, deleted
    url = f"{platform.base('targets')}/internal/credentials"
    ids = [a["id"], b["id"], two["id"], gone["id"], outside["id"], a["id"]]
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(url, json={"grant": grant, "targetIds": ids})
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == "no-store"
        answer = resp.json()
        assert set(answer["credentials"]) == {a["id"], b["id"], two["id"]}
        assert answer["credentials"][a["id"]]["password"] == PASSWORD
        assert answer["credentials"][two["id"]]["password"] == "primary-method-pw"
        assert answer["credentials"][b["id"]]["privateKey"] == KEY_PEM
        assert answer["refused"] == {
            gone["id"]: "target not available",
            outside["id"]: "the connection grant does not cover this target",
        }
        # an invalid grant refuses the whole request; malformed lists are 400
        bad = await http.post(url, json={"grant": "not-a-grant", "targetIds": [a["id"]]})
        assert bad.status_code == 403 and "malformed" in bad.json()["message"]
        for wrong in ([], "abc", [1], [""]):
            assert (await http.post(url, json={"grant": grant, "targetIds": wrong})).status_code == 400
        big = await http.post(url, json={"grant": grant, "targetIds": [a["id"]] * 5001})
        assert big.status_code == 413


async def sign_with_service_key(platform: Any, target_ids: list[str], *, exp: float) -> str:
    """A grant signed exactly as the service signs, from its key ring file and grant key row."""
    keyring = KeyRing.load_or_create(None, Path(os.environ["OPSC_DATA_DIR"]) / "targets.keys")
    conn = await db(platform)
    try:
        row = await conn.fetchrow(
            "SELECT kid, key_encrypted FROM target_grant_keys WHERE active ORDER BY created_at DESC"
        )
    finally:
        await conn.close()
    signer = GrantSigner(keyring)
    signer._keys[row["kid"]] = keyring.decrypt(row["key_encrypted"], aad=f"grant-key:{row['kid']}".encode())
    signer._active = row["kid"]
    return await signer.sign(
        {"tid": target_ids, "iat": int(exp) - 60, "exp": int(exp), "pur": "test", "jti": "x"}
    )


async def test_connection_via_engine(platform: Any, admin_token: str, sshd: Any) -> None:
    # "localhost", not sshd.host: other suites create targets on the sshd's IP and hosts are unique.
    target = await created(
        platform,
        admin_token,
        [ssh_method("localhost", port=sshd.port, key=sshd.private_key_pem, username=sshd.username)],
    )
    refused = await created(
        platform,
        admin_token,
        [
            ssh_method(
                f"127.{uuid.uuid4().bytes[0]}.{uuid.uuid4().bytes[1]}.9",
                port=closed_port(),
                key=sshd.private_key_pem,
                username=sshd.username,
            )
        ],
    )
    try:
        url = platform.url("targets")
        result = await gql(url, TEST_CONNECTION, {"id": target["id"]}, token=admin_token, timeout=90)
        outcome = result["data"]["testConnection"]
        assert outcome["ok"] is True, result
        assert outcome["latencyMs"] is not None and outcome["latencyMs"] > 0
        assert outcome["method"] == "SSH" and outcome["methodId"] == target["communicationMethods"][0]["id"]
        health = await gql(
            url,
            "query($id: ID!) { target(id: $id) { healthStatus } }",
            {"id": target["id"]},
            token=admin_token,
        )
        assert health["data"]["target"]["healthStatus"] == "HEALTHY"

        failed = await gql(url, TEST_CONNECTION, {"id": refused["id"]}, token=admin_token, timeout=90)
        outcome = failed["data"]["testConnection"]
        assert outcome["ok"] is False and outcome["message"], failed
        assert "refused" in outcome["message"].lower(), outcome
        assert sshd.private_key_pem.splitlines()[1] not in json.dumps(failed)

        unknown = await gql(url, TEST_CONNECTION, {"id": str(uuid.uuid4())}, token=admin_token)
        assert unknown["data"]["testConnection"]["ok"] is False
        assert "not found" in unknown["data"]["testConnection"]["message"]
    finally:
        conn = await db(platform)
        try:  # free "localhost" for anyone else in the session
            await conn.execute(
                "UPDATE targets SET is_active = false WHERE id = ANY($1::text[])",
                [target["id"], refused["id"]],
            )
        finally:
            await conn.close()


BULK_TEST = """mutation($ids: [ID!]!) { bulkTestConnections(targetIds: $ids) { targetId
  result { ok message method } } }"""


async def grants_issued(platform: Any, purpose: str) -> float:
    """opsc_connection_grants_issued_total{purpose} from the targets service's /metrics."""
    base = platform.url("targets").removesuffix("/graphql")
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{base}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "opsc_connection_grants_issued_total"
                and sample.labels.get("purpose") == purpose
            ):
                return float(sample.value)
    return 0.0


async def test_bulk_connection_tests_share_one_grant(platform: Any, admin_token: str, sshd: Any) -> None:
    # sshd.hosts[7]: this module's own address on the test sshd; the others refuse connections
    up = await created(
        platform,
        admin_token,
        [ssh_method(sshd.hosts[7], port=sshd.port, key=sshd.private_key_pem, username=sshd.username)],
    )
    down = [
        await created(
            platform,
            admin_token,
            [
                ssh_method(
                    f"127.{140 + i}.{uuid.uuid4().bytes[0]}.7", port=closed_port(), key=sshd.private_key_pem
                )
            ],
        )
        for i in range(2)
    ]
    ids = [up["id"], *(d["id"] for d in down)]
    try:
        before = await grants_issued(platform, "connection-test")
        body = await gql(platform.url("targets"), BULK_TEST, {"ids": ids}, token=admin_token, timeout=120)
        results = {r["targetId"]: r["result"] for r in body["data"]["bulkTestConnections"]}
        assert results[up["id"]]["ok"] is True, results
        assert all(
            not results[d["id"]]["ok"] and "refused" in results[d["id"]]["message"].lower() for d in down
        )
        # one grant for the three, not one each
        assert await grants_issued(platform, "connection-test") - before == 1
        single = await gql(
            platform.url("targets"), TEST_CONNECTION, {"id": up["id"]}, token=admin_token, timeout=90
        )
        assert single["data"]["testConnection"]["ok"] is True, single
        assert await grants_issued(platform, "connection-test") - before == 2  # a single test: its own
    finally:
        conn = await db(platform)
        try:
            await conn.execute("UPDATE targets SET is_active = false WHERE id = ANY($1::text[])", ids)
        finally:
            await conn.close()


async def test_authentication_and_permissions(platform: Any) -> None:
    url = platform.url("targets")
    for query, variables in (
        (GET, {"id": str(uuid.uuid4())}),
        (LIST, {}),
        (CREATE, {"input": {"name": "x", "osType": "linux", "methods": []}}),
        (GRANT, {"ids": []}),
    ):
        body = await gql(url, query, variables)
        assert body.get("data") in (None, {}) or all(v is None for v in (body.get("data") or {}).values()), (
            body
        )
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
    body = await gql(url, GET, {"id": "x"}, token="not-a-jwt")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def service_token(platform: Any, service: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(
            f"{platform.base('auth')}/internal/service-token",
            json={"service": service, "secret": os.environ[f"OPSC_SERVICE_SECRET_{service.upper()}"]},
        )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


async def test_service_permissions(platform: Any, admin_token: str) -> None:
    url = platform.url("targets")
    target = await created(platform, admin_token, [ssh_method(unique_ip())])
    jobs = await service_token(platform, "jobs")  # targets:read only
    body = await gql(
        url, "query($ids: [ID!]!) { targetsByIds(ids: $ids) { id } }", {"ids": [target["id"]]}, token=jobs
    )
    assert body["data"]["targetsByIds"] == [{"id": target["id"]}]
    for query, variables in (
        (GRANT, {"ids": [target["id"]]}),
        (TEST_CONNECTION, {"id": target["id"]}),
        (CREATE, {"input": {"name": "x", "osType": "linux", "methods": []}}),
    ):
        body = await gql(url, query, variables, token=jobs)
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    executions = await service_token(platform, "executions")  # targets:connect
    body = await gql(url, GRANT, {"ids": [target["id"]]}, token=executions)
    assert body["data"]["issueConnectionGrant"]["__typename"] == "ConnectionGrant", body


async def test_concurrent_creates_on_one_host(platform: Any, admin_token: str) -> None:
    import asyncio

    host = unique_ip()
    results = await asyncio.gather(*(create(platform, admin_token, [ssh_method(host)]) for _ in range(6)))
    kinds = sorted(r["__typename"] for r in results)
    assert kinds == ["HostAlreadyInUse"] * 5 + ["TargetCreated"], results
    serials = await asyncio.gather(
        *(created(platform, admin_token, [ssh_method(unique_ip())]) for _ in range(6))
    )
    assert len({t["serial"] for t in serials}) == 6
