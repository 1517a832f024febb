"""Connection grants, credential resolution and connection tests over HTTP against the real platform
(PostgreSQL, Redis, Ray and sshd; no mocks)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from subgraphs.targets.tests.helpers import (
    BULK_TEST,
    GRANT,
    HOST_KEY_LINE,
    KEY_PEM,
    PASSWORD,
    TEST_CONNECTION,
    created,
    db,
    grants_issued,
    resolve,
    sign_with_service_key,
    ssh_method,
    trust_host_keys,
    unique_ip,
)
from tests.support.platform import gql
from tests.support.sshd import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")


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
