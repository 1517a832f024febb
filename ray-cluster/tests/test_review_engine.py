"""Security-review fixes in the engine (issue 14): H3 and L15 (host-key policy of the SSH pool),
H8 and M12 (bounded key parsing and key cache), M12 (per-host handshake limits dropped),
through real Ray actors, the fake resolver and the test sshd where a pool is involved."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import uuid

import asyncssh
import pytest

from opsconductor_ray.client import EngineClient
from opsconductor_ray.credentials import KeyCache, KeyTooCostly, fetch_credential, openssh_kdf_rounds
from opsconductor_ray.errors import CredentialUnavailable
from opsconductor_ray.protocol import CredentialRef, EventType, ExecutionPlan, Status, TargetSpec
from opsconductor_ray.testing import FakeCredentialVault, collect_events
from opsconductor_shared.runplan import Step
from tests.support.sshd import SshServer, closed_port


def _target(sshd: SshServer, host: str | None = None) -> TargetSpec:
    target_id = f"t-{uuid.uuid4().hex[:10]}"
    return TargetSpec(target_id=target_id, name=target_id, host=host or sshd.host, port=sshd.port)


def _plan(ref: CredentialRef, target: TargetSpec, command: str = "echo ok") -> ExecutionPlan:
    return ExecutionPlan(
        execution_id=f"review-{uuid.uuid4().hex[:12]}",
        steps=(Step(name="s", command=command, timeout_seconds=30),),
        targets=(target,),
        credentials=ref,
        connect_timeout_s=10,
    )


async def _finished(engine: EngineClient, plan: ExecutionPlan) -> tuple[str | None, str | None]:
    await engine.start(plan)
    events = await collect_events(engine, plan.execution_id, timeout_s=60)
    (finished,) = [e for e in events if e.type == EventType.TARGET_FINISHED]
    return finished.status, finished.data


# ----------------------------------------------------------------- H3: fail closed without a host key


async def test_h3_a_credential_without_known_hosts_is_refused(
    engine: EngineClient, sshd: SshServer, vault: FakeCredentialVault
) -> None:
    """H3: no knownHosts from the resolver and no pool known_hosts file → the target fails with
    a clear host-key error before logging in (asyncssh used to accept any key); an unreachable
    host still fails as refused."""
    ref = vault.issue(username=sshd.username, private_key=sshd.private_key_pem, known_hosts="")
    before = (await engine.pool_stats())["connects"]

    status, message = await _finished(engine, _plan(ref, _target(sshd, sshd.hosts[14])))

    assert status == Status.FAILED
    assert message is not None and "no trusted host key is known" in message
    assert (await engine.pool_stats())["connects"] == before
    result = await engine.test_connection(_target(sshd, sshd.hosts[14]), ref)
    assert not result.ok and "no trusted host key is known" in result.message
    closed = TargetSpec(target_id="t-closed", name="c", host=sshd.hosts[14], port=closed_port())
    status, message = await _finished(engine, _plan(ref, closed))
    assert status == Status.FAILED and message is not None and "refused" in message


async def test_h3_the_fixture_host_key_lets_the_run_connect(
    engine: EngineClient, sshd: SshServer, vault: FakeCredentialVault
) -> None:
    ref = vault.issue(username=sshd.username, private_key=sshd.private_key_pem, known_hosts=sshd.known_hosts)
    assert await _finished(engine, _plan(ref, _target(sshd, sshd.hosts[13]))) == (Status.SUCCEEDED, None)


# ----------------------------------------------------------------- L15: warm connections and the host-key policy


async def test_l15_a_warm_connection_is_not_reused_under_another_host_key_policy(
    engine: EngineClient, sshd: SshServer, vault: FakeCredentialVault
) -> None:
    """L15: same host and credential, but the resolver now pins another host key: the warm
    connection (verified under the old policy) must not be reused; the new pin is enforced."""
    host = sshd.hosts[12]
    target = _target(sshd, host)
    good = vault.issue(username=sshd.username, private_key=sshd.private_key_pem)
    assert await _finished(engine, _plan(good, target)) == (Status.SUCCEEDED, None)

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode().strip()
    pinned_elsewhere = vault.issue(
        username=sshd.username,
        private_key=sshd.private_key_pem,
        known_hosts=f"[{host}]:{sshd.port} {other}\n",
    )
    status, message = await _finished(engine, _plan(pinned_elsewhere, target))
    assert status == Status.FAILED
    assert message is not None and "host key" in message and "rejected" in message


# ----------------------------------------------------------------- M12: per-host handshake limits


async def test_m12_per_host_handshake_limits_are_dropped_when_unused(
    engine: EngineClient, sshd: SshServer, vault: FakeCredentialVault
) -> None:
    """M12: the pool's per-host handshake semaphores do not accumulate per host ever seen."""
    ref = vault.issue(username=sshd.username, private_key=sshd.private_key_pem)
    assert await _finished(engine, _plan(ref, _target(sshd, sshd.hosts[11]))) == (Status.SUCCEEDED, None)
    assert (await engine.pool_stats())["host_handshake_limits"] == 0


# ----------------------------------------------------------------- H8 / M12: key parsing and the key cache


def _with_rounds(pem: str, rounds: int) -> str:
    """The same encrypted OpenSSH key with its bcrypt rounds field rewritten (header only)."""
    lines = pem.strip().splitlines()
    raw = bytearray(base64.b64decode("".join(lines[1:-1])))
    offset = len(b"openssh-key-v1\x00")
    for _ in range(2):  # cipher name, kdf name
        (length,) = struct.unpack_from(">I", raw, offset)
        offset += 4 + length
    offset += 4  # kdf options length
    (salt_length,) = struct.unpack_from(">I", raw, offset)
    struct.pack_into(">I", raw, offset + 4 + salt_length, rounds)
    body = base64.b64encode(bytes(raw)).decode()
    return "\n".join([lines[0], *(body[i : i + 70] for i in range(0, len(body), 70)), lines[-1]]) + "\n"


@pytest.fixture(scope="module")
def encrypted_pem() -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return key.export_private_key("openssh", passphrase="right", rounds=16).decode()


async def test_h8_costly_kdf_rounds_are_refused_before_parsing(encrypted_pem: str) -> None:
    """H8: an encrypted OpenSSH key asking for many bcrypt rounds is refused at once (it used to
    run every round, ~15 ms each, even for a wrong passphrase)."""
    hostile = _with_rounds(encrypted_pem, 4096)
    assert openssh_kdf_rounds(encrypted_pem) == 16
    assert openssh_kdf_rounds(hostile) == 4096
    started = time.monotonic()
    with pytest.raises(KeyTooCostly, match="4096 bcrypt KDF rounds; at most 1024"):
        await KeyCache().load(hostile, "x")
    assert time.monotonic() - started < 1.0


async def test_h8_costly_pkcs8_iterations_are_refused_before_parsing() -> None:
    """H8: the same for an encrypted PKCS#8 key whose PBKDF2 iteration count is the author's."""
    from asyncssh.asn1 import der_decode, der_encode

    from opsconductor_ray.credentials import pkcs8_kdf_iterations

    pem = (
        asyncssh.generate_private_key("ssh-ed25519").export_private_key("pkcs8-pem", passphrase="p").decode()
    )
    lines = pem.strip().splitlines()
    (oid, ((kdf, (salt, _, *rest)), cipher)), data = der_decode(base64.b64decode("".join(lines[1:-1])))
    costly = der_encode(((oid, ((kdf, (salt, 50_000_000, *rest)), cipher)), data))
    body = base64.b64encode(costly).decode()
    hostile = "\n".join([lines[0], *(body[i : i + 64] for i in range(0, len(body), 64)), lines[-1]]) + "\n"
    assert pkcs8_kdf_iterations(pem) == 2048
    assert pkcs8_kdf_iterations(hostile) == 50_000_000
    started = time.monotonic()
    with pytest.raises(KeyTooCostly, match="50000000 PBKDF iterations"):
        await KeyCache().load(hostile, "x")
    assert time.monotonic() - started < 1.0


async def test_h8_the_resolver_path_reports_the_refusal(
    vault: FakeCredentialVault, encrypted_pem: str
) -> None:
    ref = vault.issue(username="deploy", private_key=_with_rounds(encrypted_pem, 100_000), passphrase="x")
    with pytest.raises(CredentialUnavailable, match="bcrypt KDF rounds"):
        await fetch_credential(ref, "t-1", key_cache=KeyCache())


async def test_h8_parsing_is_given_up_after_its_timeout(encrypted_pem: str) -> None:
    """H8: parsing runs in a thread and its wait is bounded."""
    cache = KeyCache(parse_timeout_s=0.05, max_kdf_rounds=10**6)
    with pytest.raises(CredentialUnavailable, match=r"took longer than 0\.05s"):
        await cache.load(_with_rounds(encrypted_pem, 256), "x")


async def test_m12_the_key_cache_is_bounded_and_expires(sshd: SshServer) -> None:
    """M12: parsed private keys are evicted (least recently used first, and after their TTL)."""
    pems = [
        asyncssh.generate_private_key("ssh-ed25519").export_private_key("openssh").decode() for _ in range(3)
    ]
    cache = KeyCache(max_keys=2, ttl_s=3600)
    first = await cache.load(pems[0], None)
    await cache.load(pems[1], None)
    assert await cache.load(pems[0], None) is first  # a hit, and now the most recently used
    await cache.load(pems[2], None)  # evicts pems[1]
    assert len(cache) == 2
    assert await cache.load(pems[0], None) is first

    short = KeyCache(ttl_s=0.05)
    key = await short.load(pems[0], None)
    await asyncio.sleep(0.1)
    assert short.expire() == 1 and len(short) == 0
    assert await short.load(pems[0], None) is not key


# ----------------------------------------------------------------- M12: bounded event retention in the coordinator


def _run_with(budget: object, targets: int = 1) -> object:
    from opsconductor_ray.coordinator import _Run

    plan = ExecutionPlan(
        execution_id=f"retention-{uuid.uuid4().hex[:8]}",
        steps=(Step(name="s", command="x"),),
        targets=tuple(TargetSpec(target_id=f"t{i}", name=f"t{i}", host="127.0.0.1") for i in range(targets)),
        credentials=CredentialRef(resolver_url="http://127.0.0.1:1/x", grant="g"),
    )
    return _Run(plan, {}, 1, budget)  # type: ignore[arg-type]


def _output(target: str, text: str, type: EventType = EventType.STDOUT) -> object:
    from opsconductor_ray.protocol import EngineEvent

    return EngineEvent(
        seq=0, type=type, at=0.0, target_id=target, target_seq=0, step_index=0, step_name="s", data=text
    )


def _done(run: object, target: str) -> None:
    from opsconductor_ray.protocol import EngineEvent

    run.push(  # type: ignore[attr-defined]
        [
            EngineEvent(
                seq=0,
                type=EventType.STEP_FINISHED,
                at=0.0,
                target_id=target,
                target_seq=0,
                step_index=0,
                status=Status.SUCCEEDED,
                exit_code=0,
            ),
            EngineEvent(
                seq=0,
                type=EventType.TARGET_FINISHED,
                at=0.0,
                target_id=target,
                target_seq=0,
                status=Status.SUCCEEDED,
            ),
        ]
    )


async def test_m12_an_unread_run_keeps_its_completion_events_and_marks_dropped_output() -> None:
    """M12: a run whose output nobody reads stays within its byte budget: the first chunk over
    it becomes a marker, later ones are dropped, completion events are all kept, seq and
    target_seq stay gapless."""
    from opsconductor_ray.retention import OUTPUT_DROPPED_MARKER, EventBudget, RetentionLimits
    from opsconductor_ray.testing import check_sequence

    budget = EventBudget(
        RetentionLimits(run_bytes=20_000, run_events=1000, total_bytes=10**9, total_events=10**6)
    )
    run = _run_with(budget, targets=2)
    for _ in range(50):
        run.push([_output("t0", "x" * 1000), _output("t1", "y" * 1000, EventType.STDERR)])  # type: ignore[attr-defined]
    _done(run, "t0")
    _done(run, "t1")
    run.finish()  # type: ignore[attr-defined]

    events = run.log.read(0, 10_000)  # type: ignore[attr-defined]
    check_sequence(events)
    assert run.log.bytes <= 20_000 + 4 * 400  # type: ignore[attr-defined]
    markers = [e for e in events if e.data == OUTPUT_DROPPED_MARKER]
    assert [(e.target_id, e.type) for e in markers] == [("t0", EventType.STDOUT), ("t1", EventType.STDERR)]
    kinds = [e.type for e in events]
    assert kinds.count(EventType.STEP_FINISHED) == 2 and kinds.count(EventType.TARGET_FINISHED) == 2
    assert kinds[-1] == EventType.EXECUTION_FINISHED
    assert sum(len(e.data or "") for e in events if e.type == EventType.STDOUT) < 20_000


async def test_m12_delivered_events_are_released_before_output_is_dropped() -> None:
    """M12: once a reader has (twice) asked past events, they are released to make room, so a
    run whose follower keeps up loses no output; what it has not stored is still readable."""
    from opsconductor_ray.retention import OUTPUT_DROPPED_MARKER, EventBudget, RetentionLimits

    budget = EventBudget(
        RetentionLimits(run_bytes=30_000, run_events=1000, total_bytes=10**9, total_events=10**6)
    )
    run = _run_with(budget)
    log = run.log  # type: ignore[attr-defined]
    stored = 0
    for round_ in range(20):
        run.push([_output("t0", f"{round_:02d}" + "z" * 2000) for _ in range(4)])  # type: ignore[attr-defined]
        log.acknowledge(stored)  # the follower asks after what it has; the batch before is stored
        batch = log.read(stored, 5000)
        assert batch and batch[0].seq == stored + 1  # nothing unread was released
        stored = batch[-1].seq
    assert log.dropped == 0
    assert all(e.data != OUTPUT_DROPPED_MARKER for e in log.read(log.first_seq - 1, 5000))
    assert log.bytes <= 30_000 and log.first_seq > 1  # delivered ones went


async def test_m12_the_total_budget_releases_finished_runs_first() -> None:
    """M12: over the coordinator-wide budget, delivered events of finished runs (oldest first)
    make room for a running one."""
    from opsconductor_ray.retention import EventBudget, RetentionLimits

    budget = EventBudget(
        RetentionLimits(run_bytes=10**9, run_events=10**6, total_bytes=40_000, total_events=10**6)
    )
    old = _run_with(budget)
    for _ in range(15):
        old.push([_output("t0", "o" * 2000)])  # type: ignore[attr-defined]
    _done(old, "t0")
    old.finish()  # type: ignore[attr-defined]
    last = old.log.last_seq  # type: ignore[attr-defined]
    old.log.acknowledge(last)  # type: ignore[attr-defined]
    old.log.acknowledge(last + 1)  # type: ignore[attr-defined]  # all of it delivered and stored

    new = _run_with(budget)
    for _ in range(15):
        new.push([_output("t0", "n" * 2000)])  # type: ignore[attr-defined]
    assert new.log.dropped == 0  # type: ignore[attr-defined]
    assert old.log.count < 15  # type: ignore[attr-defined]
    assert budget.bytes <= 40_000


# ----------------------------------------------------------------- L11: deploy templates


def _deploy(name: str) -> dict:
    from pathlib import Path

    import yaml

    return yaml.safe_load((Path(__file__).parent.parent / "deploy" / name).read_text())


def test_l11_cluster_yaml_turns_on_token_auth_and_keeps_the_dashboard_local() -> None:
    """L11: every `ray start` of the `ray up` template runs with RAY_AUTH_MODE=token and a token
    file, and the dashboard is not bound to 0.0.0.0."""
    config = _deploy("cluster.yaml")
    starts = [
        c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c
    ]
    assert len(starts) == 2
    for command in starts:
        assert "RAY_AUTH_MODE=token" in command
        assert "RAY_AUTH_TOKEN_PATH=" in command
        assert "0.0.0.0" not in command
    assert "--dashboard-host=127.0.0.1" in starts[0]
    token_path = "~/.opsconductor/ray_auth_token"
    assert token_path in config["file_mounts"]
    assert any("chmod 600" in c and token_path in c for c in config["setup_commands"])


def test_l11_raycluster_yaml_turns_on_token_auth_from_a_secret() -> None:
    """L11: head and worker pods run with RAY_AUTH_MODE=token and the token from a Secret; the
    dashboard binds loopback and its port is not published."""
    spec = _deploy("raycluster.yaml")["spec"]
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1"
    containers = head["template"]["spec"]["containers"] + [
        c for group in spec["workerGroupSpecs"] for c in group["template"]["spec"]["containers"]
    ]
    assert len(containers) == 2
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "opsconductor-ray-auth",
            "key": "token",
        }
        assert "value" not in env["RAY_AUTH_TOKEN"]
        assert all(p["containerPort"] != 8265 for p in container.get("ports", []))
    for group in [head, *spec["workerGroupSpecs"]]:
        assert "0.0.0.0" not in str(group["rayStartParams"])
