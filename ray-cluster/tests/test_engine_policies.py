"""Step types and run policies through the real engine (Ray actors, the test sshd, the fake resolver)."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pydantic
import pytest
import ray

from opsconductor_ray.client import EngineClient
from opsconductor_ray.config import PoolConfig
from opsconductor_ray.coordinator import coordinator_host_name
from opsconductor_ray.protocol import (
    CredentialRef,
    EngineEvent,
    EventType,
    ExecutionPlan,
    Status,
    TargetSpec,
    truncation_marker,
)
from opsconductor_ray.testing import FakeCredentialVault, collect_events
from opsconductor_shared.runplan import EnvVar, Policy, Script, Step, Transfer
from tests.support.net import free_port
from tests.support.sshd import SSHD_BINARY, SshServer, closed_port


def target_on(sshd: SshServer, host: str | None = None, port: int | None = None) -> TargetSpec:
    target_id = f"t-{uuid.uuid4().hex[:10]}"
    return TargetSpec(target_id=target_id, name=target_id, host=host or sshd.host, port=port or sshd.port)


def step(command: str, **fields: object) -> Step:
    return Step(name=fields.pop("name", "step"), command=command, timeout_seconds=30, **fields)  # type: ignore[arg-type]


def plan(cred: CredentialRef, targets: list[TargetSpec], *steps: Step, **fields: object) -> ExecutionPlan:
    return ExecutionPlan(
        execution_id=f"test-{uuid.uuid4().hex[:12]}",
        steps=steps,
        targets=tuple(targets),
        credentials=cred,
        **fields,  # type: ignore[arg-type]
    )


async def run(engine: EngineClient, p: ExecutionPlan, timeout_s: float = 60) -> list[EngineEvent]:
    await engine.start(p)
    events = await collect_events(engine, p.execution_id, timeout_s=timeout_s)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seq is gap-free"
    return events


def of(events: list[EngineEvent], type: EventType, target_id: str | None = None) -> list[EngineEvent]:
    return [e for e in events if e.type == type and (target_id is None or e.target_id == target_id)]


def out(events: list[EngineEvent], target_id: str | None = None, type: EventType = EventType.STDOUT) -> str:
    return "".join(e.data or "" for e in of(events, type, target_id))


def _read(path: str) -> str:
    """Files the test sshd's user wrote (same machine)."""
    return Path(path).read_text()


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def finished(events: list[EngineEvent]) -> dict[str, object]:
    assert events[-1].type == EventType.EXECUTION_FINISHED
    return json.loads(events[-1].data or "{}")


# ----------------------------------------------------------------- step types


async def test_script_steps_run_with_arguments_env_and_working_directory(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    t = target_on(sshd)
    bash = Step(
        name="bash",
        type="script",
        script=Script(
            interpreter="bash",
            body='echo "args:$#:$1:$2"; echo "greet=$GREETING"; pwd',
            arguments=("one two", "it's"),
        ),
        env=(EnvVar(name="GREETING", value="hello 'world'"),),
        working_directory="/tmp",
    )
    python = Step(
        name="python",
        type="script",
        script=Script(
            interpreter="python", body="import sys\nprint('py', sys.argv[1:])\n", arguments=("a", "b c")
        ),
    )
    sh = Step(name="sh", type="script", script=Script(interpreter="sh", body="echo sh:$1", arguments=("x",)))
    events = await run(engine, plan(key_ref, [t], bash, python, sh))
    text = out(events)
    assert "args:2:one two:it's\n" in text
    assert "greet=hello 'world'\n" in text
    assert "/tmp\n" in text
    assert "py ['a', 'b c']\n" in text
    assert "sh:x\n" in text
    assert [e.status for e in of(events, EventType.STEP_FINISHED)] == [Status.SUCCEEDED] * 3


async def test_bad_env_name_and_unknown_interpreter_fail_the_step(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    bad_env = step("true", env=(EnvVar(name="NOT-VALID", value="x"),))
    events = await run(engine, plan(key_ref, [target_on(sshd)], bad_env))
    (done,) = of(events, EventType.STEP_FINISHED)
    assert done.status == Status.FAILED and "invalid environment variable name" in (done.data or "")

    # The run plan refuses an unknown interpreter; should one get through, the engine fails the step.
    with pytest.raises(pydantic.ValidationError):
        Script(interpreter="cobol", body="DISPLAY 'x'")  # type: ignore[arg-type]
    cobol = Script.model_construct(interpreter="cobol", body="DISPLAY 'x'")  # type: ignore[arg-type]
    unknown = Step.model_construct(name="s", type="script", script=cobol)
    events = await run(engine, plan(key_ref, [target_on(sshd)], unknown))
    (done,) = of(events, EventType.STEP_FINISHED)
    assert done.status == Status.FAILED and "unknown script interpreter" in (done.data or "")


async def test_expected_exit_codes_decide_success(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    t = target_on(sshd)
    events = await run(
        engine,
        plan(
            key_ref,
            [t],
            step("exit 3", name="three", expected_exit_codes=(0, 3)),
            step("exit 0", name="zero"),
        ),
    )
    assert [(e.status, e.exit_code) for e in of(events, EventType.STEP_FINISHED)] == [
        (Status.SUCCEEDED, 3),
        (Status.SUCCEEDED, 0),
    ]
    events = await run(engine, plan(key_ref, [t], step("exit 0", expected_exit_codes=(1,))))
    (done,) = of(events, EventType.STEP_FINISHED)
    assert (done.status, done.exit_code) == (Status.FAILED, 0)


async def test_file_transfer_uploads_and_downloads_over_sftp(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    t = target_on(sshd)
    name = f"opsc-upload-{uuid.uuid4().hex[:8]}.txt"
    upload = Step(
        name="up",
        type="file_transfer",
        working_directory="/tmp",
        transfer=Transfer(direction="upload", destination=name, content="line one\nünïcode\n", mode="0640"),
    )
    check = step(f"stat -c %a /tmp/{name}; cat /tmp/{name}", name="check")
    download = Step(
        name="down",
        type="file_transfer",
        transfer=Transfer(direction="download", destination="label", source=f"/tmp/{name}"),
    )
    events = await run(engine, plan(key_ref, [t], upload, check, download))
    steps = of(events, EventType.STEP_FINISHED)
    assert [s.status for s in steps] == [Status.SUCCEEDED] * 3
    assert out(events) == "640\nline one\nünïcode\n" + "line one\nünïcode\n"

    missing = Step(
        name="missing",
        type="file_transfer",
        transfer=Transfer(direction="download", destination="x", source="/nonexistent/file"),
    )
    events = await run(engine, plan(key_ref, [t], missing))
    (done,) = of(events, EventType.STEP_FINISHED)
    assert done.status == Status.FAILED and "sftp download of /nonexistent/file failed" in (done.data or "")
    _unlink(f"/tmp/{name}")


async def test_output_over_the_limit_is_truncated_with_a_marker(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    t = target_on(sshd)
    events = await run(
        engine,
        plan(
            key_ref,
            [t],
            step("head -c 50000 /dev/zero | tr '\\0' x; echo tail-on-stderr >&2", name="big"),
            step("echo small", name="next"),
            max_output_bytes=1000,
        ),
    )
    big = "".join(
        e.data or "" for e in events if e.step_index == 0 and e.type in (EventType.STDOUT, EventType.STDERR)
    )
    assert big == "x" * 1000 + truncation_marker(1000)
    assert out([e for e in events if e.step_index == 1]) == "small\n"
    assert [s.status for s in of(events, EventType.STEP_FINISHED)] == [Status.SUCCEEDED] * 2
    # truncated is a field of that step on that target, not a word to search for
    assert [s.truncated for s in of(events, EventType.STEP_FINISHED)] == [True, False]


async def test_truncated_is_false_at_the_limit_and_set_for_a_cut_download(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    t = target_on(sshd)
    name = f"/tmp/opsc-big-{uuid.uuid4().hex[:8]}.txt"
    events = await run(
        engine,
        plan(
            key_ref,
            [t],
            step("head -c 1000 /dev/zero | tr '\\0' y", name="exactly"),  # exactly the limit: nothing cut
            step(f"head -c 5000 /dev/zero | tr '\\0' z > {name}; echo truncated", name="word"),
            Step(
                name="down",
                type="file_transfer",
                transfer=Transfer(direction="download", destination="label", source=name),
            ),
            step("exit 1", name="fails"),
            step("echo skipped", name="skipped"),
            max_output_bytes=1000,
        ),
    )
    done = of(events, EventType.STEP_FINISHED)
    assert [(s.step_name, s.status, s.truncated) for s in done] == [
        ("exactly", Status.SUCCEEDED, False),
        ("word", Status.SUCCEEDED, False),  # output that merely says "truncated" is not flagged
        ("down", Status.SUCCEEDED, True),
        ("fails", Status.FAILED, False),
        ("skipped", Status.SKIPPED, False),
    ]
    assert out([e for e in events if e.step_index == 2]) == "z" * 1000 + truncation_marker(1000)
    _unlink(name)


# ----------------------------------------------------------------- policies


def test_batches_by_size_and_percent() -> None:
    ids = [f"t{i}" for i in range(10)]
    assert Policy().batches(ids) == [ids]
    assert Policy(batch_size=4).batches(ids) == [ids[:4], ids[4:8], ids[8:]]
    assert Policy(batch_percent=25).batches(ids) == [ids[:3], ids[3:6], ids[6:9], ids[9:]]
    assert Policy(batch_size=3, batch_percent=50).batches(ids) == [
        ids[:3],
        ids[3:6],
        ids[6:9],
        ids[9:],
    ]
    assert Policy(batch_size=2).batches([]) == []


async def test_rolling_batches_finish_before_the_next_starts(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    targets = [target_on(sshd, host=h) for h in sshd.hosts[:5]]
    p = plan(key_ref, targets, step("sleep 0.2; echo ok"), policy=Policy(batch_size=2))
    events = await run(engine, p)
    seq_started = {e.target_id: e.seq for e in of(events, EventType.TARGET_STARTED)}
    seq_finished = {e.target_id: e.seq for e in of(events, EventType.TARGET_FINISHED)}
    batches = p.policy.batches([t.target_id for t in targets])
    assert len(batches) == 3
    for earlier, later in itertools.pairwise(batches):
        assert max(seq_finished[i] for i in earlier) < min(seq_started[i] for i in later)
    assert events[-1].status == Status.SUCCEEDED


async def test_fail_fast_cancels_the_targets_not_started(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    targets = [target_on(sshd, host=h) for h in sshd.hosts[:4]]
    p = plan(key_ref, targets, step("exit 1"), policy=Policy(batch_size=1, fail_fast_threshold=1))
    events = await run(engine, p)
    ends = {e.target_id: e for e in of(events, EventType.TARGET_FINISHED)}
    assert ends[targets[0].target_id].status == Status.FAILED
    for t in targets[1:]:
        assert ends[t.target_id].status == Status.CANCELLED
        assert ends[t.target_id].data == "fail-fast: 1 targets failed"
    assert of(events, EventType.TARGET_STARTED) and len(of(events, EventType.TARGET_STARTED)) == 1
    assert events[-1].status == Status.FAILED
    assert finished(events)["reason"] == "fail-fast: 1 targets failed"


async def test_connection_failures_are_retried_but_commands_never(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef, vault: FakeCredentialVault
) -> None:
    refused = target_on(sshd, port=closed_port())
    marker = f"/tmp/opsc-retry-{uuid.uuid4().hex[:8]}"
    failing = target_on(sshd)
    policy = Policy(retries=2, retry_backoff_seconds=0.05)
    events = await run(
        engine, plan(key_ref, [refused, failing], step(f"echo run >> {marker}; exit 1"), policy=policy)
    )
    ends = {e.target_id: e for e in of(events, EventType.TARGET_FINISHED)}
    assert ends[refused.target_id].status == Status.FAILED
    assert ends[refused.target_id].attempt == 3
    assert "connection refused" in (ends[refused.target_id].data or "")
    assert ends[failing.target_id].status == Status.FAILED
    assert ends[failing.target_id].attempt == 1
    assert _read(marker) == "run\n", "a command that ran is never run again"
    _unlink(marker)

    # Authentication is not a connection failure: no retry either.
    wrong = vault.issue(username=sshd.username, password="wrong-password")
    events = await run(engine, plan(wrong, [target_on(sshd)], step("true"), policy=policy))
    (end,) = of(events, EventType.TARGET_FINISHED)
    assert (end.status, end.attempt) == (Status.FAILED, 1)


async def test_overall_timeout_cancels_running_targets_and_fails_the_run(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    targets = [target_on(sshd, host=h) for h in sshd.hosts[:3]]
    p = plan(key_ref, targets, step("sleep 30"), policy=Policy(timeout_seconds=2))
    events = await run(engine, p, timeout_s=30)
    assert events[-1].status == Status.FAILED
    assert finished(events)["reason"] == "run timed out"
    assert {e.status for e in of(events, EventType.TARGET_FINISHED)} == {Status.CANCELLED}


async def test_two_runs_do_not_interleave_on_one_host_unless_allowed(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    async def both(allow: bool) -> list[str]:
        path = f"/tmp/opsc-overlap-{uuid.uuid4().hex[:8]}"
        target = target_on(sshd, host=sshd.hosts[10])  # the same target in two runs
        plans = [
            plan(
                key_ref,
                [target],
                step(f"echo {name}1 >> {path}; sleep 1; echo {name}2 >> {path}"),
                policy=Policy(allow_host_overlap=allow),
            )
            for name in ("A", "B")
        ]
        await asyncio.gather(*(engine.start(p) for p in plans))
        for p in plans:
            events = await collect_events(engine, p.execution_id, timeout_s=30)
            assert events[-1].status == Status.SUCCEEDED
        lines = _read(path).split()
        _unlink(path)
        return lines

    serial = await both(allow=False)
    assert serial in (["A1", "A2", "B1", "B2"], ["B1", "B2", "A1", "A2"])
    overlapping = await both(allow=True)
    assert overlapping[:2] in (["A1", "B1"], ["B1", "A1"]), overlapping


# ----------------------------------------------------------------- coordinators


async def test_runs_share_long_lived_coordinators_and_reattach_from_a_new_client(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    hosts_before = {name for name in _actor_names() if name.startswith("coordinator-")}
    marker = f"/tmp/opsc-once-{uuid.uuid4().hex[:8]}"
    p = plan(key_ref, [target_on(sshd)], step(f"echo once >> {marker}; sleep 1; echo done"))
    await engine.start(p)
    await engine.start(p)  # a second start of the same execution runs nothing

    # A new client (a restarted executions service) finds the run by id alone.
    other = EngineClient(num_shards=engine.num_shards, num_coordinators=engine.num_coordinators)
    summary = await other.reattach(p.execution_id)
    assert summary["execution_id"] == p.execution_id
    assert summary["name"] == f"exec-{p.execution_id}"
    first = await other.events(p.execution_id, after_seq=0, wait_s=5)
    events = first + await collect_events(
        other, p.execution_id, after_seq=first[-1].seq, timeout_s=30, release=False
    )
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert out(events) == "done\n"
    assert p.execution_id in {r["execution_id"] for r in await engine.runs()}
    await other.release(p.execution_id)
    assert p.execution_id not in {r["execution_id"] for r in await engine.runs()}
    with pytest.raises(Exception, match="no running execution"):
        await engine.status(p.execution_id)
    await engine.start(p)  # released: still never runs again
    assert _read(marker) == "once\n"
    _unlink(marker)

    hosts_after = {name for name in _actor_names() if name.startswith("coordinator-")}
    assert hosts_after == hosts_before == {coordinator_host_name(i) for i in range(engine.num_coordinators)}


def _actor_names() -> set[str]:
    """Named actors alive in the engine's namespace."""
    found: list[Any] = list(ray.util.list_named_actors(all_namespaces=True))
    return {str(a["name"]) for a in found if a["namespace"] == "opsconductor"}


# ----------------------------------------------------------------- limits against a strict sshd


@dataclass(frozen=True)
class StrictSshd:
    host: str
    port: int


@pytest.fixture(scope="module")
def strict_sshd(sshd: SshServer) -> Iterator[StrictSshd]:
    """A second sshd, same keys and user, with `MaxStartups 3` and `MaxSessions 2`."""
    base = Path(tempfile.mkdtemp(prefix="opsc-strict-sshd-"))
    base.chmod(0o755)
    source = sshd.log_path.parent
    for name in ("ssh_host_ed25519_key", "authorized_keys"):
        shutil.copy(source / name, base / name)
    (base / "ssh_host_ed25519_key").chmod(0o600)
    port = free_port()
    use_pam = "UsePAM yes" in (source / "sshd_config").read_text()
    (base / "sshd_config").write_text(
        "\n".join(
            [
                f"ListenAddress 127.0.0.1:{port}",
                f"HostKey {base / 'ssh_host_ed25519_key'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {base / 'authorized_keys'}",
                "MaxStartups 3",
                "MaxSessions 2",
                "Subsystem sftp internal-sftp",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                f"UsePAM {'yes' if use_pam else 'no'}",
                "StrictModes no",
                "UseDNS no",
                "PrintMotd no",
                "",
            ]
        )
    )
    log = (base / "sshd.log").open("ab")
    process = subprocess.Popen(
        [SSHD_BINARY, "-D", "-e", "-f", str(base / "sshd_config")], stdout=log, stderr=log
    )
    try:
        import socket
        import time

        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0"):
                        break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"strict sshd did not start:\n{(base / 'sshd.log').read_text()}")
                time.sleep(0.05)
        yield StrictSshd("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
async def strict_engine(ray_session: str) -> AsyncIterator[EngineClient]:
    """Its own namespace, so its PoolConfig applies: 2 shards x 1 handshake per host < MaxStartups 3,
    2 channels per connection = MaxSessions 2."""
    namespace = f"strict-{uuid.uuid4().hex[:6]}"
    client = EngineClient(
        num_shards=2,
        num_coordinators=1,
        namespace=namespace,
        pool_config=PoolConfig(max_handshakes_per_host=1, max_channels_per_connection=2),
    )
    await client.connect()
    try:
        yield client
    finally:
        for name in ("pool-0", "pool-1", coordinator_host_name(0)):
            actor = await asyncio.to_thread(ray.get_actor, name, namespace=namespace)
            ray.kill(actor, no_restart=True)


async def _raw_connect(strict: StrictSshd, sshd: SshServer) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        strict.host,
        strict.port,
        username=sshd.username,
        client_keys=[asyncssh.import_private_key(sshd.private_key_pem)],
        known_hosts=None,
        agent_path=None,
        config=None,
        connect_timeout=10,
    )


async def test_the_strict_sshd_really_drops_and_refuses(strict_sshd: StrictSshd, sshd: SshServer) -> None:
    """Without the engine's limits these settings bite: the limit test below can fail."""
    results = await asyncio.gather(
        *(_raw_connect(strict_sshd, sshd) for _ in range(16)), return_exceptions=True
    )
    conns = [r for r in results if isinstance(r, asyncssh.SSHClientConnection)]
    assert len(conns) < 16, "16 concurrent handshakes against MaxStartups 3 must lose some"
    for conn in conns:
        conn.close()
    conn = await _raw_connect(strict_sshd, sshd)
    try:
        procs = [await conn.create_process("sleep 2") for _ in range(2)]
        with pytest.raises(asyncssh.ChannelOpenError):
            await conn.create_process("true")
        for proc in procs:
            proc.close()
    finally:
        conn.close()


async def test_handshake_and_channel_limits_keep_a_strict_sshd_happy(
    strict_engine: EngineClient, strict_sshd: StrictSshd, sshd: SshServer, vault: FakeCredentialVault
) -> None:
    cred = vault.issue(
        username=sshd.username,
        private_key=sshd.private_key_pem,
        known_hosts=f"[{strict_sshd.host}]:{strict_sshd.port} {sshd.host_public_key}\n",  # same host key
    )
    targets = [target_on(sshd, host=strict_sshd.host, port=strict_sshd.port) for _ in range(16)]
    p = plan(
        cred,
        targets,
        step("sleep 0.3; echo ok"),
        policy=Policy(max_parallel=16, allow_host_overlap=True),
    )
    events = await run(strict_engine, p, timeout_s=120)
    ends = of(events, EventType.TARGET_FINISHED)
    assert [e.data for e in ends if e.status != Status.SUCCEEDED] == []
    assert out(events).count("ok\n") == 16
    stats = await strict_engine.pool_stats()
    assert stats["connect_failures"] == 0
