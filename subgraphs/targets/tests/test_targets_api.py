"""The targets subgraph over HTTP against real PostgreSQL, Redis, Ray and sshd (no mocks)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from subgraphs.targets.tests.helpers import (
    CREATE,
    GET,
    GRANT,
    KEY_BODY,
    LIST,
    PASSWORD,
    TEST_CONNECTION,
    create,
    created,
    db,
    service_token,
    ssh_method,
    unique_ip,
)
from tests.support.platform import gql

pytestmark = pytest.mark.asyncio(loop_scope="session")


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
