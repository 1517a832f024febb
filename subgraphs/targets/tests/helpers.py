"""Queries and helpers shared by the targets subgraph's HTTP tests (real platform, no mocks)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import asyncssh
import httpx
from prometheus_client.parser import text_string_to_metric_families

from opsconductor_shared.crypto import KeyRing
from opsconductor_targets.service import GrantSigner
from tests.support.platform import gql

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


async def service_token(platform: Any, service: str) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(
            f"{platform.base('auth')}/internal/service-token",
            json={"service": service, "secret": os.environ[f"OPSC_SERVICE_SECRET_{service.upper()}"]},
        )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


FULL = TARGET_FIELDS + " uuid location dataCenter region isDeleted"
RESULT = f"""__typename ... on TargetUpdated {{ target {{ {FULL} }} }}
  ... on ValidationFailed {{ message field }} ... on HostAlreadyInUse {{ message targetId }}
  ... on NotFound {{ message id }} ... on Error {{ message }}"""
UPDATE = f"mutation($id: ID!, $input: UpdateTargetInput!) {{ updateTarget(id: $id, input: $input) {{ {RESULT} }} }}"
ADD = f"""mutation($id: ID!, $input: CommunicationMethodInput!) {{ addCommunicationMethod(targetId: $id, input: $input) {{
  __typename ... on CommunicationMethodAdded {{ methodId target {{ {FULL} }} }}
  ... on ValidationFailed {{ message field }} ... on HostAlreadyInUse {{ message targetId }} ... on Error {{ message }} }} }}"""
UPDATE_METHOD = f"""mutation($id: ID!, $m: ID!, $input: UpdateCommunicationMethodInput!) {{
  updateCommunicationMethod(targetId: $id, methodId: $m, input: $input) {{ {RESULT} }} }}"""
REMOVE = f"""mutation($id: ID!, $m: ID!) {{ removeCommunicationMethod(targetId: $id, methodId: $m) {{ __typename
  ... on CommunicationMethodRemoved {{ promotedMethodId target {{ {FULL} }} }}
  ... on LastCommunicationMethod {{ message }} ... on Error {{ message }} }} }}"""
SET_PRIMARY = (
    f"mutation($id: ID!, $m: ID!) {{ setPrimaryMethod(targetId: $id, methodId: $m) {{ {RESULT} }} }}"
)
DELETE = """mutation($id: ID!) { deleteTarget(id: $id) { __typename ... on TargetDeleted { id }
  ... on Error { message } } }"""
BULK = f"""mutation($ids: [ID!]!, $input: UpdateTargetInput!) {{ bulkUpdateTargets(targetIds: $ids, input: $input) {{
  __typename ... on TargetsBulkUpdated {{ notFound targets {{ {FULL} }} }}
  ... on ValidationFailed {{ message field }} ... on Error {{ message }} }} }}"""
ACCEPT = """mutation($id: ID!, $m: ID!, $fp: String) { acceptHostKey(targetId: $id, methodId: $m, fingerprint: $fp) {
  __typename ... on HostKeyAccepted { previousFingerprint hostKey { fingerprint key trustedBy } }
  ... on HostKeyRejected { message } ... on ValidationFailed { message field } ... on Error { message } } }"""
HOST_KEY = """query($id: ID!) { target(id: $id) { communicationMethods { id hostKey { fingerprint trustedBy } } } }"""


def pw_method(
    host: str, method_type: str = "WINRM", password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    return {
        "type": method_type,
        "host": host,
        "credential": {"type": "PASSWORD", "username": "Administrator", "password": password},
        **extra,
    }


async def q(platform: Any, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = await gql(platform.url("targets"), query, variables, token=token, timeout=90)
    assert "errors" not in body, body
    return body["data"]


async def secret_of(platform: Any, token: str, target_id: str) -> dict[str, Any]:
    grant = (await q(platform, token, GRANT, {"ids": [target_id]}))["issueConnectionGrant"]["grant"]
    response = await resolve(platform, grant, target_id)
    assert response.status_code == 200, response.text
    return response.json()
