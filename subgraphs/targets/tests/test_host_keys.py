"""The SSH host-key policy and the vault's key rotation over HTTP (real PostgreSQL, the test sshd
and Ray; no mocks)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from opsconductor_shared.crypto import KeyRing
from subgraphs.targets.tests.helpers import (
    ACCEPT,
    DELETE,
    HOST_KEY,
    PASSWORD,
    TEST_CONNECTION,
    created,
    db,
    pw_method,
    q,
    secret_of,
    ssh_method,
    unique_ip,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_host_keys_tofu_mismatch_accept_and_strict(platform: Any, admin_token: str, sshd: Any) -> None:
    host = sshd.hosts[6]  # its own address: active targets never share a host (see tests/support/sshd.py)
    real = await asyncio.wait_for(asyncssh.get_server_host_key(host, sshd.port), 20)
    assert real is not None
    real_fp = real.get_fingerprint("sha256")
    method = ssh_method(host, port=sshd.port, key=sshd.private_key_pem, username=sshd.username)
    t = await created(platform, admin_token, [method])
    mid = t["communicationMethods"][0]["id"]
    strict = None
    try:
        # trust on first use happens right after creation, in the background, before any run
        deadline = time.monotonic() + 15
        while True:
            keys = (await q(platform, admin_token, HOST_KEY, {"id": t["id"]}))["target"][
                "communicationMethods"
            ]
            if keys[0]["hostKey"] is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert keys[0]["hostKey"] == {"fingerprint": real_fp, "trustedBy": "tofu"}
        ok = (await q(platform, admin_token, TEST_CONNECTION, {"id": t["id"]}))["testConnection"]
        assert ok["ok"] is True, ok

        # the server "changes" its key: the engine refuses to connect with the recorded one
        fake = asyncssh.generate_private_key("ssh-ed25519")
        conn = await db(platform)
        try:
            await conn.execute(
                "UPDATE target_known_host_keys SET key = $1, fingerprint = $2 WHERE method_id = $3",
                fake.export_public_key("openssh").decode().strip(),
                fake.get_fingerprint("sha256"),
                mid,
            )
        finally:
            await conn.close()
        refused = (await q(platform, admin_token, TEST_CONNECTION, {"id": t["id"]}))["testConnection"]
        if refused["ok"]:  # reused a connection that was verified before the change
            assert "reusing" in refused["message"], refused
        else:
            assert "host key" in refused["message"].lower(), refused

        wrong = (
            await q(
                platform, admin_token, ACCEPT, {"id": t["id"], "m": mid, "fp": fake.get_fingerprint("sha256")}
            )
        )["acceptHostKey"]
        assert wrong["__typename"] == "HostKeyRejected", wrong
        accepted = (await q(platform, admin_token, ACCEPT, {"id": t["id"], "m": mid, "fp": real_fp}))[
            "acceptHostKey"
        ]
        assert accepted["__typename"] == "HostKeyAccepted", accepted
        assert (
            accepted["hostKey"]["fingerprint"] == real_fp and accepted["hostKey"]["trustedBy"] == "accepted"
        )
        assert accepted["previousFingerprint"] == fake.get_fingerprint("sha256")
        again = (await q(platform, admin_token, TEST_CONNECTION, {"id": t["id"]}))["testConnection"]
        assert again["ok"] is True, again
    finally:
        await q(platform, admin_token, DELETE, {"id": t["id"]})

    # production is strict: no trust on first use, an operator accepts the key first
    strict = await created(platform, admin_token, [method], environment="production")
    smid = strict["communicationMethods"][0]["id"]
    try:
        await asyncio.sleep(1.0)  # long enough for the background first use, which must not happen here
        unknown = (await q(platform, admin_token, HOST_KEY, {"id": strict["id"]}))["target"]
        assert unknown["communicationMethods"][0]["hostKey"] is None
        blocked = (await q(platform, admin_token, TEST_CONNECTION, {"id": strict["id"]}))["testConnection"]
        assert blocked["ok"] is False and "acceptHostKey" in blocked["message"], blocked
        not_ssh = (await q(platform, admin_token, ACCEPT, {"id": strict["id"], "m": str(uuid.uuid4())}))[
            "acceptHostKey"
        ]
        assert not_ssh["__typename"] == "NotFound"
        accepted = (await q(platform, admin_token, ACCEPT, {"id": strict["id"], "m": smid}))["acceptHostKey"]
        assert accepted["__typename"] == "HostKeyAccepted" and accepted["previousFingerprint"] is None
        works = (await q(platform, admin_token, TEST_CONNECTION, {"id": strict["id"]}))["testConnection"]
        assert works["ok"] is True, works
    finally:
        await q(platform, admin_token, DELETE, {"id": strict["id"]})


def _reencrypt(keys: str) -> dict[str, int]:
    env = {**os.environ, "OPSC_TARGETS_ENCRYPTION_KEYS": keys}
    done = subprocess.run(
        [sys.executable, "-m", "opsconductor_launcher", "reencrypt-credentials"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1].replace("'", '"'))


async def test_reencrypt_command_rotates_keys(platform: Any, admin_token: str) -> None:
    t = await created(platform, admin_token, [pw_method(unique_ip())])
    current = (Path(os.environ["OPSC_DATA_DIR"]) / "targets.keys").read_text().strip()
    old_kid = current.split(":", 1)[0]
    assert old_kid
    new = f"rot{uuid.uuid4().hex[:6]}:{base64.urlsafe_b64encode(os.urandom(32)).decode()}"
    conn = await db(platform)
    try:
        done = await asyncio.to_thread(_reencrypt, f"{new},{current}")
        assert done["credentials"] >= 1 and done["grant_keys"] >= 1
        rows = await conn.fetch("SELECT id, secret_encrypted FROM target_credentials")
        new_kid = new.split(":", 1)[0]
        assert rows and all(r["secret_encrypted"].split(":")[1] == new_kid for r in rows)
        ring = KeyRing.parse(f"{new},{current}")
        mine = await conn.fetchval(
            "SELECT c.secret_encrypted FROM target_credentials c JOIN target_communication_methods m "
            "ON m.id = c.method_id WHERE m.target_id = $1",
            t["id"],
        )
        cred_id = await conn.fetchval(
            "SELECT c.id FROM target_credentials c JOIN target_communication_methods m "
            "ON m.id = c.method_id WHERE m.target_id = $1",
            t["id"],
        )
        assert json.loads(ring.decrypt(mine, aad=cred_id.encode()))["password"] == PASSWORD
        again = await asyncio.to_thread(_reencrypt, f"{new},{current}")
        assert again["credentials"] == 0 and again["grant_keys"] == 0
    finally:
        # rotate back so the running service (which knows only the old key) keeps working
        await asyncio.to_thread(_reencrypt, f"{current},{new}")
        await conn.close()
    assert (await secret_of(platform, admin_token, t["id"]))["password"] == PASSWORD
    await q(platform, admin_token, DELETE, {"id": t["id"]})
