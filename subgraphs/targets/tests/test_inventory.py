"""Inventory at legacy parity over HTTP: updates, methods, bulk, lookups, statistics, device types
and the vault's keep-the-secret rule (real PostgreSQL, the test sshd and Ray; no mocks). Host keys and
key rotation: test_host_keys.py."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from subgraphs.targets.tests.helpers import (
    ADD,
    BULK,
    DELETE,
    PASSWORD,
    REMOVE,
    SET_PRIMARY,
    UPDATE,
    UPDATE_METHOD,
    create,
    created,
    pw_method,
    q,
    secret_of,
    ssh_method,
    unique_ip,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_update_basics_lookups_and_soft_delete(platform: Any, admin_token: str) -> None:
    host = unique_ip()
    t = await created(platform, admin_token, [ssh_method(host)], location="Rack 4", region="eu-west")
    assert t["serial"].startswith("TGT-")
    data = await q(
        platform,
        admin_token,
        UPDATE,
        {
            "id": t["id"],
            "input": {
                "name": "renamed",
                "osType": "ubuntu",
                "status": "MAINTENANCE",
                "dataCenter": "DC1",
                "location": "",
                "addTags": ["Blue"],
            },
        },
    )
    updated = data["updateTarget"]["target"]
    assert updated["name"] == "renamed" and updated["osType"] == "ubuntu"
    assert updated["status"] == "MAINTENANCE" and updated["dataCenter"] == "DC1"
    assert updated["location"] is None and updated["region"] == "eu-west" and updated["tags"] == ["Blue"]
    for bad, field in (({"osType": "no_such_type"}, "osType"), ({"environment": "prod"}, "environment")):
        res = (await q(platform, admin_token, UPDATE, {"id": t["id"], "input": bad}))["updateTarget"]
        assert res["__typename"] == "ValidationFailed" and res["field"] == field, res
    missing = await q(platform, admin_token, UPDATE, {"id": str(uuid.uuid4()), "input": {"name": "x"}})
    assert missing["updateTarget"]["__typename"] == "NotFound"

    by_serial = await q(
        platform, admin_token, "query($s: String!) { targetBySerial(serial: $s) { id } }", {"s": t["serial"]}
    )
    assert by_serial["targetBySerial"]["id"] == t["id"]
    by_uuid = await q(
        platform,
        admin_token,
        "query($u: String!) { targetByUuid(uuid: $u) { id uuid } }",
        {"u": updated["uuid"]},
    )
    assert by_uuid["targetByUuid"]["id"] == t["id"]

    # a kept legacy serial and uuid; TGT-NNNNNN imports advance the counter past them
    legacy_uuid = str(uuid.uuid4())
    legacy = await created(
        platform, admin_token, [ssh_method(unique_ip())], serial="T20250000001", uuid=legacy_uuid
    )
    assert legacy["serial"] == "T20250000001"
    again = await create(platform, admin_token, [ssh_method(unique_ip())], serial="T20250000001")
    assert again["__typename"] == "ValidationFailed" and again["field"] == "serial"
    big = await created(platform, admin_token, [ssh_method(unique_ip())], serial="TGT-900000")
    nxt = await created(platform, admin_token, [ssh_method(unique_ip())])
    assert int(nxt["serial"].split("-")[1]) > 900000, nxt["serial"]
    looked_up = await q(
        platform, admin_token, "query($u: String!) { targetByUuid(uuid: $u) { serial } }", {"u": legacy_uuid}
    )
    assert looked_up["targetByUuid"]["serial"] == "T20250000001"

    # soft delete: gone from reads, host free again
    gone = await q(platform, admin_token, DELETE, {"id": t["id"]})
    assert gone["deleteTarget"] == {"__typename": "TargetDeleted", "id": t["id"]}
    assert (await q(platform, admin_token, "query($id: ID!) { target(id: $id) { id } }", {"id": t["id"]}))[
        "target"
    ] is None
    reuse = await created(platform, admin_token, [ssh_method(host)])
    assert reuse["id"] != t["id"]
    again_gone = await q(platform, admin_token, DELETE, {"id": t["id"]})
    assert again_gone["deleteTarget"]["__typename"] == "NotFound"
    for row in (legacy, big, nxt, reuse):
        await q(platform, admin_token, DELETE, {"id": row["id"]})


async def test_methods_add_update_remove_primary(platform: Any, admin_token: str) -> None:
    host, other = unique_ip(), unique_ip()
    t = await created(platform, admin_token, [pw_method(host)])
    first = t["communicationMethods"][0]
    busy = await created(platform, admin_token, [ssh_method(other)])

    clash = await q(platform, admin_token, ADD, {"id": t["id"], "input": ssh_method(other)})
    assert clash["addCommunicationMethod"]["__typename"] == "HostAlreadyInUse"
    assert clash["addCommunicationMethod"]["targetId"] == busy["id"]
    bad = await q(
        platform,
        admin_token,
        ADD,
        {"id": t["id"], "input": {"type": "REDIS", "host": host, "config": {"database": 99}}},
    )
    assert bad["addCommunicationMethod"]["field"] == "method.config.database"

    added = (
        await q(
            platform,
            admin_token,
            ADD,
            {
                "id": t["id"],
                "input": {
                    "type": "SNMP",
                    "host": host,
                    "credential": {"type": "SNMP_COMMUNITY", "username": "", "password": "c0mm"},
                },
            },
        )
    )["addCommunicationMethod"]
    assert added["__typename"] == "CommunicationMethodAdded", added
    snmp_id = added["methodId"]
    methods = {m["id"]: m for m in added["target"]["communicationMethods"]}
    assert methods[first["id"]]["isPrimary"] and not methods[snmp_id]["isPrimary"]
    assert methods[snmp_id]["config"]["version"] == "2c" and methods[snmp_id]["port"] == 161

    # changing the winrm method without re-sending the password keeps the stored one
    before = await secret_of(platform, admin_token, t["id"])
    assert before["password"] == PASSWORD and before["transport"] == "ntlm"
    placeholder = {
        "type": "PASSWORD",
        "username": "svc-ops",
        "password": "[Current Password - Hidden for Security]",
    }

    async def update(data: dict[str, Any]) -> dict[str, Any]:
        variables = {"id": t["id"], "m": first["id"], "input": data}
        return (await q(platform, admin_token, UPDATE_METHOD, variables))["updateCommunicationMethod"]

    kept = await update({"config": {"transport": "kerberos"}, "credential": placeholder})
    assert kept["__typename"] == "TargetUpdated", kept
    after = await secret_of(platform, admin_token, t["id"])
    assert after["password"] == PASSWORD and after["username"] == "svc-ops"
    assert after["transport"] == "kerberos" and after["scheme"] == "http"
    assert PASSWORD not in json.dumps(kept)
    # re-pointing it (port, scheme) needs the password again (H2); ignoring the server's
    # certificate needs an explicit opt-in (L5)
    https = {"transport": "kerberos", "scheme": "https"}
    moved = await update({"port": 5986, "config": https, "credential": placeholder})
    assert moved == {
        "__typename": "ValidationFailed",
        "message": moved["message"],
        "field": "method.credential.password",
    }, moved
    sent = {**placeholder, "password": PASSWORD}
    https["server_cert_validation"] = "ignore"
    unsafe = await update({"port": 5986, "config": https, "credential": sent})
    assert unsafe["field"] == "method.config.server_cert_validation", unsafe
    https["allow_unverified_tls"] = True
    kept = await update({"port": 5986, "config": https, "credential": sent})
    assert kept["__typename"] == "TargetUpdated", kept
    after = await secret_of(platform, admin_token, t["id"])
    assert after["password"] == PASSWORD and after["scheme"] == "https"
    assert after["serverCertValidation"] == "ignore"
    changed = await q(
        platform,
        admin_token,
        UPDATE_METHOD,
        {
            "id": t["id"],
            "m": first["id"],
            "input": {
                "credential": {"type": "PASSWORD", "username": "svc-ops", "password": "n3w-" + PASSWORD}
            },
        },
    )
    assert changed["updateCommunicationMethod"]["__typename"] == "TargetUpdated"
    assert (await secret_of(platform, admin_token, t["id"]))["password"] == "n3w-" + PASSWORD
    # a host change is checked against other active targets
    moved = await update({"host": other, "credential": {**placeholder, "password": PASSWORD}})
    assert moved["__typename"] == "HostAlreadyInUse", moved
    no_secret = await q(
        platform,
        admin_token,
        UPDATE_METHOD,
        {"id": t["id"], "m": snmp_id, "input": {"credential": {"type": "PASSWORD", "username": "x"}}},
    )
    assert no_secret["updateCommunicationMethod"]["__typename"] == "ValidationFailed"

    primary = await q(platform, admin_token, SET_PRIMARY, {"id": t["id"], "m": snmp_id})
    flags = {m["id"]: m["isPrimary"] for m in primary["setPrimaryMethod"]["target"]["communicationMethods"]}
    assert flags == {snmp_id: True, first["id"]: False}
    removed = (await q(platform, admin_token, REMOVE, {"id": t["id"], "m": snmp_id}))[
        "removeCommunicationMethod"
    ]
    assert (
        removed["__typename"] == "CommunicationMethodRemoved" and removed["promotedMethodId"] == first["id"]
    )
    assert [m["isPrimary"] for m in removed["target"]["communicationMethods"]] == [True]
    last = (await q(platform, admin_token, REMOVE, {"id": t["id"], "m": first["id"]}))[
        "removeCommunicationMethod"
    ]
    assert last["__typename"] == "LastCommunicationMethod", last
    unknown = (await q(platform, admin_token, REMOVE, {"id": t["id"], "m": str(uuid.uuid4())}))[
        "removeCommunicationMethod"
    ]
    assert unknown["__typename"] == "NotFound"
    for row in (t, busy):
        await q(platform, admin_token, DELETE, {"id": row["id"]})


async def test_bulk_update_filters_sorting_statistics(platform: Any, admin_token: str) -> None:
    tag = f"inv-{uuid.uuid4().hex[:8]}"
    names = ["delta", "alpha", "charlie", "bravo"]
    rows = [
        await created(
            platform,
            admin_token,
            [pw_method(unique_ip()) if i == 0 else ssh_method(unique_ip())],
            name=n,
            tags=[tag],
            osType="windows" if i == 0 else "linux",
        )
        for i, n in enumerate(names)
    ]
    ids = [r["id"] for r in rows]
    bulk = await q(
        platform,
        admin_token,
        BULK,
        {"ids": [*ids[:2], str(uuid.uuid4())], "input": {"environment": "staging", "status": "INACTIVE"}},
    )
    res = bulk["bulkUpdateTargets"]
    assert res["__typename"] == "TargetsBulkUpdated" and len(res["notFound"]) == 1
    assert {(t["environment"], t["status"]) for t in res["targets"]} == {("staging", "INACTIVE")}
    refused = await q(platform, admin_token, BULK, {"ids": ids, "input": {"name": "same"}})
    assert refused["bulkUpdateTargets"]["__typename"] == "ValidationFailed"
    # an OS type outside the catalogue is refused (checked once per call), and nothing changes
    bad_os = await q(platform, admin_token, BULK, {"ids": ids, "input": {"osType": "not_in_catalogue"}})
    assert bad_os["bulkUpdateTargets"]["__typename"] == "ValidationFailed", bad_os
    assert bad_os["bulkUpdateTargets"]["field"] == "osType"

    listing = """query($f: TargetFilter, $s: TargetSort, $first: Int, $after: String) {
      targets(filter: $f, sort: $s, first: $first, after: $after) {
        totalCount edges { node { name } } pageInfo { hasNextPage endCursor } } }"""
    seen: list[str] = []
    after = None
    for _ in range(5):
        page = (
            await q(
                platform,
                admin_token,
                listing,
                {"f": {"tags": [tag]}, "s": {"field": "NAME"}, "first": 3, "after": after},
            )
        )["targets"]
        seen += [e["node"]["name"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(names)
    desc = (
        await q(
            platform, admin_token, listing, {"f": {"tags": [tag]}, "s": {"field": "NAME", "descending": True}}
        )
    )["targets"]
    assert [e["node"]["name"] for e in desc["edges"]] == sorted(names, reverse=True)
    winrm = (await q(platform, admin_token, listing, {"f": {"tags": [tag], "methodType": "WINRM"}}))[
        "targets"
    ]
    assert [e["node"]["name"] for e in winrm["edges"]] == ["delta"]
    staging = (
        await q(
            platform,
            admin_token,
            listing,
            {"f": {"tags": [tag], "environment": "staging", "status": "INACTIVE"}},
        )
    )["targets"]
    assert staging["totalCount"] == 2
    unknown_health = (await q(platform, admin_token, listing, {"f": {"tags": [tag], "health": "UNKNOWN"}}))[
        "targets"
    ]
    assert unknown_health["totalCount"] == 4
    healthy = (await q(platform, admin_token, listing, {"f": {"tags": [tag], "health": "HEALTHY"}}))[
        "targets"
    ]
    assert healthy["totalCount"] == 0

    stats_q = """query($f: TargetFilter) { targetStatistics(filter: $f) { total deleted
      byOsType { key count } byMethodType { key count } byEnvironment { key count }
      byHealth { key count } byStatus { key count } } }"""
    stats = (await q(platform, admin_token, stats_q, {"f": {"tags": [tag]}}))["targetStatistics"]
    as_map = {
        k: {c["key"]: c["count"] for c in stats[k]}
        for k in ("byOsType", "byMethodType", "byEnvironment", "byHealth", "byStatus")
    }
    assert stats["total"] == 4
    assert as_map["byOsType"] == {"linux": 3, "windows": 1}
    assert as_map["byMethodType"] == {"ssh": 3, "winrm": 1}
    assert as_map["byEnvironment"] == {"testing": 2, "staging": 2}
    assert as_map["byHealth"] == {"unknown": 4}
    assert as_map["byStatus"] == {"active": 2, "inactive": 2}
    for i in ids:
        await q(platform, admin_token, DELETE, {"id": i})


async def test_device_type_catalogue(platform: Any, admin_token: str) -> None:
    cats = (
        await q(platform, admin_token, "{ deviceTypeCategories { value label sortOrder isSystem } }", {})
    )["deviceTypeCategories"]
    assert len(cats) == 14 and all(c["isSystem"] for c in cats)
    types = (
        await q(platform, admin_token, "{ deviceTypes { value category isSystem communicationMethods } }", {})
    )["deviceTypes"]
    values = {t["value"] for t in types}
    registry = {
        "linux",
        "windows",
        "cisco_switch",
        "cisco_router",
        "smtp_server",
        "exchange",
        "mysql",
        "postgresql",
        "generic_device",
        "email",
        "database",
    }
    assert registry <= values and len(values) >= 80
    assert {t["category"] for t in types} == {c["value"] for c in cats}

    value = f"custom_{uuid.uuid4().hex[:6]}"
    create_dt = """mutation($i: DeviceTypeInput!) { createDeviceType(input: $i) { __typename
      ... on DeviceTypeSaved { deviceType { value label category isSystem communicationMethods } }
      ... on ValidationFailed { message field } ... on Error { message } } }"""
    made = (
        await q(
            platform,
            admin_token,
            create_dt,
            {
                "i": {
                    "value": value,
                    "label": "Custom",
                    "category": "iot_embedded",
                    "communicationMethods": ["SNMP"],
                }
            },
        )
    )["createDeviceType"]
    assert made["__typename"] == "DeviceTypeSaved" and made["deviceType"]["isSystem"] is False
    dup = (
        await q(
            platform,
            admin_token,
            create_dt,
            {"i": {"value": value, "label": "x", "category": "iot_embedded"}},
        )
    )["createDeviceType"]
    assert dup["__typename"] == "ValidationFailed" and dup["field"] == "value"
    bad_cat = (
        await q(
            platform, admin_token, create_dt, {"i": {"value": value + "x", "label": "x", "category": "nope"}}
        )
    )["createDeviceType"]
    assert bad_cat["field"] == "category"
    update_dt = """mutation($v: String!, $i: UpdateDeviceTypeInput!) { updateDeviceType(value: $v, input: $i) { __typename
      ... on DeviceTypeSaved { deviceType { label } } ... on ValidationFailed { field } ... on Error { message } } }"""
    renamed = (await q(platform, admin_token, update_dt, {"v": value, "i": {"label": "Renamed"}}))[
        "updateDeviceType"
    ]
    assert renamed["deviceType"]["label"] == "Renamed"
    system = (await q(platform, admin_token, update_dt, {"v": "linux", "i": {"label": "Penguin"}}))[
        "updateDeviceType"
    ]
    assert system["__typename"] == "ValidationFailed"

    used = await created(platform, admin_token, [ssh_method(unique_ip())], osType=value)
    assert used["osType"] == value
    unknown = await create(platform, admin_token, [ssh_method(unique_ip())], osType="not_in_catalogue")
    assert unknown["__typename"] == "ValidationFailed" and unknown["field"] == "osType"
    delete_dt = (
        """mutation($v: String!) { deleteDeviceType(value: $v) { __typename ... on Error { message } } }"""
    )
    in_use = (await q(platform, admin_token, delete_dt, {"v": value}))["deleteDeviceType"]
    assert in_use["__typename"] == "ValidationFailed"
    await q(platform, admin_token, DELETE, {"id": used["id"]})
    assert (await q(platform, admin_token, delete_dt, {"v": value}))["deleteDeviceType"][
        "__typename"
    ] == "DeviceTypeDeleted"
    assert (await q(platform, admin_token, delete_dt, {"v": "linux"}))["deleteDeviceType"][
        "__typename"
    ] == "ValidationFailed"
    gone = {
        t["value"] for t in (await q(platform, admin_token, "{ deviceTypes { value } }", {}))["deviceTypes"]
    }
    assert value not in gone
