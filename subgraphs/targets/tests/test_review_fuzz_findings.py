"""Findings of the schema-driven fuzzer in the targets subgraph (review FUZZ-1, FUZZ-2, FUZZ-3, and the
targetHealth subscription payload): values no row can hold (longer than their column, or with a NUL)
match nothing or get a typed error, never the ORM's ValidationError masked as "Internal server error".
The queries go through the router, as the fuzzer's did."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from typing import Any

import pytest
import websockets
from redis.asyncio import Redis

from opsconductor_targets.models import DeviceType, Target
from opsconductor_targets.service.lookups import searchable, storable, storable_only
from tests.support.platform import gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

LONG = "ñ€ü" * 70  # 210 non-ASCII characters: longer than every filtered column
MASKED = ("Internal server error", "Unexpected error", "Traceback", "tortoise", "asyncpg", "Length of")

CREATE = """mutation($input: CreateTargetInput!) { createTarget(input: $input) { __typename
  ... on TargetCreated { target { id } } ... on Error { message } } }"""
TARGETS = """query($first: Int, $after: String, $filter: TargetFilter, $sort: TargetSort) {
  targets(first: $first, after: $after, filter: $filter, sort: $sort) { totalCount edges { node { id } } } }"""
STATS = """query($filter: TargetFilter) { targetStatistics(filter: $filter) { total byEnvironment { key count } } }"""
ACTIVE_IDS = "query($ids: [ID!]!) { activeTargetIds(ids: $ids) }"
SUBSCRIBE = "subscription { targetHealth { targetId healthStatus previous message } }"


def clean(body: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(body)
    for needle in MASKED:
        assert needle not in text, body
    return body


async def ask(router: Any, token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return clean(await gql(router.url, query, variables, token=token))


async def a_target(platform: Any, token: str, environment: str = "testing") -> str:
    raw = uuid.uuid4().bytes
    host = f"127.{100 + raw[0] % 100}.{raw[1]}.{max(raw[2], 1)}"
    payload = {
        "name": f"fz-{uuid.uuid4().hex[:6]}",
        "osType": "linux",
        "environment": environment,
        "methods": [{"type": "TELNET", "host": host, "port": 23, "config": {"timeout": 5}}],
    }
    body = await gql(platform.url("targets"), CREATE, {"input": payload}, token=token)
    result = body["data"]["createTarget"]
    assert result["__typename"] == "TargetCreated", body
    return str(result["target"]["id"])


async def test_fuzz_lookups_tell_which_values_a_column_can_hold() -> None:
    """FUZZ-1/FUZZ-2: the central check every targets lookup uses."""
    assert storable(Target, "environment", "x" * 20)
    assert not storable(Target, "environment", "ü" * 21)
    assert not storable(Target, "id", "a" * 37)
    assert not storable(Target, "serial", "TGT\x00")
    assert storable(Target, "description", "d" * 10_000)  # TEXT: no limit
    assert not storable(DeviceType, "category", LONG)
    assert storable_only(Target, "id", ["a", "a", LONG, "b\x00", "c"]) == ["a", "c"]
    assert searchable("web") and not searchable("we\x00b")


async def test_fuzz1_targets_filter_longer_than_its_column_matches_nothing(
    router: Any, platform: Any, admin_token: str
) -> None:
    """FUZZ-1: targets(filter: {environment: <22 unicode chars>, location: ...}) answered a masked 500."""
    await a_target(platform, admin_token)
    for flt in (
        {"environment": "ñ" * 22, "location": "x"},
        {"osType": LONG},
        {"location": LONG},
        {"tags": ["ok", LONG]},
        {"search": "web\x00"},
    ):
        body = await ask(router, admin_token, TARGETS, {"first": 97, "filter": flt})
        assert body.get("errors") is None, (flt, body)
        assert body["data"]["targets"]["totalCount"] == 0, (flt, body)
    everything = await ask(router, admin_token, TARGETS, {"first": 97, "filter": {"environment": "testing"}})
    assert everything["data"]["targets"]["totalCount"] >= 1


async def test_fuzz1_target_statistics_filter_longer_than_its_column(
    router: Any, platform: Any, admin_token: str
) -> None:
    """FUZZ-1: targetStatistics(filter: {environment: <35 chars>, search: ...}) answered a masked 500."""
    body = await ask(router, admin_token, STATS, {"filter": {"environment": "é" * 35, "search": "a"}})
    assert body.get("errors") is None, body
    assert body["data"]["targetStatistics"]["total"] == 0


async def test_fuzz1_too_many_filter_tags_is_a_typed_error(router: Any, admin_token: str) -> None:
    """FUZZ-1 (same class): an unbounded tag list in a filter is refused with a clear message."""
    body = await ask(router, admin_token, TARGETS, {"filter": {"tags": [f"t{i}" for i in range(60)]}})
    assert "at most 50 tags" in json.dumps(body["errors"]), body


async def test_fuzz1_target_by_serial_and_cursors_longer_than_their_column(
    router: Any, admin_token: str
) -> None:
    """FUZZ-1 (same class): a too long serial is simply unknown; a too long cursor key is an invalid
    cursor (typed), for the id order and a column order alike."""
    body = await ask(
        router, admin_token, "query($s: String!) { targetBySerial(serial: $s) { id } }", {"s": LONG}
    )
    assert body == {"data": {"targetBySerial": None}}

    def cursor(kind: str, key: str) -> str:
        return base64.urlsafe_b64encode(f"{kind}1:{key}".encode()).decode()

    for after, sort in (
        (cursor("k", LONG), None),
        (cursor("s", json.dumps([LONG, "x"])), {"field": "ENVIRONMENT"}),
        (cursor("s", json.dumps(["testing", LONG])), {"field": "ENVIRONMENT"}),
    ):
        body = await ask(router, admin_token, TARGETS, {"after": after, "sort": sort})
        assert "invalid cursor" in json.dumps(body.get("errors")), body
    history = "query($id: ID!, $after: String) { healthHistory(targetId: $id, after: $after) { totalCount } }"
    body = await ask(router, admin_token, history, {"id": str(uuid.uuid4()), "after": cursor("h", "9" * 30)})
    assert "malformed cursor" in json.dumps(body.get("errors")), body


async def test_fuzz2_active_target_ids_longer_than_an_id_are_unknown(
    router: Any, platform: Any, admin_token: str
) -> None:
    """FUZZ-2: activeTargetIds(ids: [<210-character string>, ...]) answered a masked 500; such ids are
    unknown ids now, like any other, in every lookup by id."""
    tid = await a_target(platform, admin_token)
    body = await ask(router, admin_token, ACTIVE_IDS, {"ids": [LONG, tid, "x\x00"]})
    assert body == {"data": {"activeTargetIds": [tid]}}
    body = await ask(
        router, admin_token, "query($ids: [ID!]!) { targetsByIds(ids: $ids) { id } }", {"ids": [LONG, tid]}
    )
    assert body == {"data": {"targetsByIds": [{"id": tid}]}}
    body = await ask(router, admin_token, "query($id: ID!) { target(id: $id) { id } }", {"id": LONG})
    assert body == {"data": {"target": None}}
    body = await ask(
        router, admin_token, "query($id: ID!) { healthHistory(targetId: $id) { totalCount } }", {"id": LONG}
    )
    assert body == {"data": {"healthHistory": {"totalCount": 0}}}
    delete = "mutation($id: ID!) { deleteTarget(id: $id) { __typename } }"
    body = await ask(router, admin_token, delete, {"id": LONG})
    assert body == {"data": {"deleteTarget": {"__typename": "NotFound"}}}


async def test_fuzz3_device_types_of_a_long_category_are_none(router: Any, admin_token: str) -> None:
    """FUZZ-3: deviceTypes(category: <long unicode string>) answered a masked 500."""
    body = await ask(
        router, admin_token, "query($c: String) { deviceTypes(category: $c) { label } }", {"c": LONG}
    )
    assert body == {"data": {"deviceTypes": []}}
    body = await ask(router, admin_token, "{ deviceTypes { label } }")
    assert body["data"]["deviceTypes"], body  # the seeded catalogue is still there
    update = """mutation($v: String!, $c: String) { updateDeviceType(value: $v, input: {category: $c}) {
      __typename ... on Error { message } } }"""
    body = await ask(router, admin_token, update, {"v": LONG, "c": "network"})
    assert body["data"]["updateDeviceType"]["__typename"] == "NotFound", body
    create = """mutation($c: String!) { createDeviceType(input: {value: "fz-type", label: "Fz", category: $c}) {
      __typename ... on ValidationFailed { field } } }"""
    body = await ask(router, admin_token, create, {"c": LONG})
    assert body["data"]["createDeviceType"] == {"__typename": "ValidationFailed", "field": "category"}, body
    body = await ask(
        router,
        admin_token,
        "mutation($v: String!) { deleteDeviceType(value: $v) { __typename } }",
        {"v": LONG},
    )
    assert body == {"data": {"deleteDeviceType": {"__typename": "NotFound"}}}


async def test_fuzz_health_subscription_skips_a_malformed_payload(platform: Any, admin_token: str) -> None:
    """FUZZ (targetHealth): a payload with an invalid healthStatus ended the subscription with a
    traceback; now it is skipped (one log line) and the next good change still arrives."""
    redis = Redis.from_url(os.environ["OPSC_REDIS_URL"])
    good_id = f"fz-{uuid.uuid4().hex[:8]}"
    good = {"targetId": good_id, "healthStatus": "healthy", "previous": "unknown", "message": "ok"}
    bad = [
        {**good, "targetId": "bad", "healthStatus": "on-fire"},
        {"targetId": "bad"},
        "not json",
    ]
    ws_url = platform.url("targets").replace("http://", "ws://")
    try:
        async with websockets.connect(
            ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], open_timeout=10
        ) as ws:
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {admin_token}"}}
            await ws.send(json.dumps(init))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
            received = None
            for _ in range(20):  # until the subscription is registered (bounded: 20 x 1 s)
                for message in bad:
                    await redis.publish(
                        "opsc.live.targets:health",
                        message if isinstance(message, str) else json.dumps(message),
                    )
                await redis.publish("opsc.live.targets:health", json.dumps(good))
                try:
                    received = json.loads(await asyncio.wait_for(ws.recv(), 1))
                    break
                except TimeoutError:
                    continue
            assert received is not None, "no targetHealth message"
            assert received["type"] == "next", received
            assert received["payload"]["data"]["targetHealth"] == {
                "targetId": good_id,
                "healthStatus": "HEALTHY",
                "previous": "UNKNOWN",
                "message": "ok",
            }
            await ws.send(json.dumps({"id": "1", "type": "complete"}))
    finally:
        await redis.aclose()
