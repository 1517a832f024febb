"""Engine logic without a cluster: exception mapping, sharding, parallelism split,
credential resolution against the fake vault, and the protocol's guarantees."""

from __future__ import annotations

import errno
import pickle
import socket

import asyncssh
import pytest

from opsconductor_ray.client import EngineClient
from opsconductor_ray.config import DEFAULT_NUM_SHARDS, shard_of
from opsconductor_ray.coordinator import split_parallelism
from opsconductor_ray.credentials import Credential, KeyCache, fetch_credential, fetch_credentials
from opsconductor_ray.errors import (
    AuthenticationFailed,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    CredentialUnavailable,
    EngineError,
    HostKeyRejected,
    map_exception,
)
from opsconductor_ray.protocol import (
    CredentialRef,
    EngineEvent,
    EventType,
    ExecutionPlan,
    Status,
    TargetSpec,
)
from opsconductor_ray.settings import EngineSettings, EventRetentionSettings
from opsconductor_ray.testing import FakeCredentialVault
from opsconductor_shared.runplan import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_PARALLEL, Step
from tests.support.sshd import SshServer

WHERE = {"host": "127.0.0.1", "port": 2222, "username": "x", "timeout_s": 3.0}


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
            ConnectionRefused,
            "connection refused by 127.0.0.1:2222",
        ),
        (TimeoutError(), ConnectTimeout, "connect timed out after 3s"),
        (TimeoutError(), ConnectTimeout, "connect timed out after 3s"),
        (
            asyncssh.PermissionDenied("Permission denied"),
            AuthenticationFailed,
            "authentication rejected for user 'x'",
        ),
        (
            asyncssh.HostKeyNotVerifiable("Host key is not trusted"),
            HostKeyRejected,
            "host key of 127.0.0.1:2222",
        ),
        (asyncssh.ConnectionLost("Connection lost"), ConnectError, "connection to 127.0.0.1:2222 was lost"),
        (
            asyncssh.ProtocolError("bad packet"),
            ConnectError,
            "127.0.0.1:2222 closed the SSH connection: bad packet",
        ),
        (ConnectionResetError(errno.ECONNRESET, "reset"), ConnectError, "connection reset by 127.0.0.1:2222"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), ConnectError, "127.0.0.1:2222 is unreachable"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            ConnectError,
            "cannot resolve host",
        ),
        (RuntimeError("boom"), EngineError, "unexpected error with 127.0.0.1:2222: RuntimeError: boom"),
    ],
)
def test_transport_exceptions_map_to_readable_engine_errors(
    exc: BaseException, kind: type[EngineError], message: str
) -> None:
    error = map_exception(exc, **WHERE)  # type: ignore[arg-type]

    assert type(error) is kind
    assert message in str(error)
    assert isinstance(error, EngineError)


def test_connect_errors_form_a_hierarchy() -> None:
    assert issubclass(ConnectTimeout, ConnectError)
    assert issubclass(ConnectionRefused, ConnectError)
    assert issubclass(AuthenticationFailed, EngineError)
    assert not issubclass(AuthenticationFailed, ConnectError)


async def test_a_host_key_mismatch_is_rejected(sshd: SshServer, tmp_path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_bytes(b"[127.0.0.1]:%d " % sshd.port + other.export_public_key("openssh"))

    with pytest.raises(asyncssh.Error) as raised:
        await asyncssh.connect(
            sshd.host,
            sshd.port,
            username=sshd.username,
            known_hosts=str(known_hosts),
            config=None,
            agent_path=None,
        )
    error = map_exception(raised.value, host=sshd.host, port=sshd.port, username=sshd.username)

    assert isinstance(error, HostKeyRejected)
    assert f"host key of 127.0.0.1:{sshd.port} was rejected" in error.message


def test_shards_are_stable_and_spread() -> None:
    assert shard_of("target-1", 4) == shard_of("target-1", 4)
    assert shard_of("anything", 1) == 0
    used = {shard_of(f"target-{i}", 4) for i in range(100)}
    assert used == {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("max_parallel", "sizes", "expected_total"),
    [
        (5, {0: 7, 1: 5, 2: 4, 3: 4}, 5),
        (50, {0: 7, 1: 5, 2: 4, 3: 4}, 20),
        (8, {0: 20, 1: 1}, 8),
        (2, {0: 3, 1: 3, 2: 3, 3: 3}, 4),  # more busy shards than slots: gated by the coordinator
        (10, {0: 0, 1: 6}, 6),
    ],
)
def test_parallelism_is_shared_among_shards(
    max_parallel: int, sizes: dict[int, int], expected_total: int
) -> None:
    limits = split_parallelism(max_parallel, sizes)

    assert sum(limits.values()) == expected_total
    assert set(limits) == {shard for shard, size in sizes.items() if size}
    assert all(1 <= limits[shard] <= sizes[shard] for shard in limits)


async def test_fetch_credential_parses_the_key_once(vault: FakeCredentialVault, sshd: SshServer) -> None:
    ref = vault.issue(username="deploy", private_key=sshd.private_key_pem)
    cache = KeyCache()

    first = await fetch_credential(ref, "t-1", key_cache=cache)
    second = await fetch_credential(ref, "t-2", key_cache=cache)

    assert first.username == "deploy"
    assert first.private_key is not None
    assert second.private_key is first.private_key
    assert first.fingerprint == second.fingerprint
    assert len(cache) == 1
    assert vault.requests[-1] == {"grant": ref.grant, "targetId": "t-2"}


async def test_fetch_credentials_asks_once_for_many_targets(
    vault: FakeCredentialVault, sshd: SshServer
) -> None:
    ref = vault.issue(username="deploy", private_key=sshd.private_key_pem)
    cache = KeyCache()
    asked = len(vault.requests)

    found = await fetch_credentials(ref, ["t-1", "t-2", "t-1", "t-3"], key_cache=cache)

    assert vault.requests[asked:] == [{"grant": ref.grant, "targetIds": ["t-1", "t-2", "t-3"]}]
    assert list(found) == ["t-1", "t-2", "t-3"]
    credentials = [c for c in found.values() if isinstance(c, Credential)]
    assert len(credentials) == 3 and len({id(c.private_key) for c in credentials}) == 1
    assert len(cache) == 1

    # a resolver that drops one request is asked again
    vault.drop_next = 1
    again = await fetch_credentials(ref, ["t-4"], key_cache=cache)
    assert isinstance(again["t-4"], Credential) and vault.drop_next == 0

    # a grant refused as a whole: every target gets the resolver's message
    refused = await fetch_credentials(vault.refuse(403, "grant expired"), ["t-1", "t-2"])
    assert {k: str(v) for k, v in refused.items()} == {"t-1": "grant expired", "t-2": "grant expired"}
    # an unreachable resolver: a readable error per target, no exception
    gone = await fetch_credentials(CredentialRef(resolver_url="http://127.0.0.1:9/x", grant="g"), ["t-1"])
    assert isinstance(gone["t-1"], CredentialUnavailable) and "unreachable" in str(gone["t-1"])


async def test_fetch_credential_reports_the_resolvers_message(vault: FakeCredentialVault) -> None:
    refused = vault.refuse(404, "target t-9 has no credential")
    with pytest.raises(CredentialUnavailable, match="target t-9 has no credential"):
        await fetch_credential(refused, "t-9")

    unknown = CredentialRef(resolver_url=vault.url, grant="never-issued")
    with pytest.raises(CredentialUnavailable, match="unknown or expired"):
        await fetch_credential(unknown, "t-9")

    bad_key = vault.issue(username="deploy", private_key="-----BEGIN NONSENSE-----")
    with pytest.raises(CredentialUnavailable, match="could not be parsed"):
        await fetch_credential(bad_key, "t-9")


async def test_fetch_credential_when_the_resolver_is_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ref = CredentialRef(resolver_url=f"http://127.0.0.1:{port}/resolve", grant="g")

    with pytest.raises(
        CredentialUnavailable, match=r"credential resolver http://127.0.0.1:\d+/resolve unreachable"
    ):
        await fetch_credential(ref, "t-1")


def test_credentials_hide_secrets_and_refuse_serialization() -> None:
    credential = Credential(username="deploy", password="hunter2", fingerprint="f")

    assert "hunter2" not in repr(credential)
    assert "deploy" in repr(credential)
    with pytest.raises(TypeError, match="must not be serialized"):
        pickle.dumps(credential)


def test_protocol_objects_pickle_and_carry_no_secrets() -> None:
    plan = ExecutionPlan(
        execution_id="e-1",
        steps=(Step(name="s", command="true"),),
        targets=(TargetSpec(target_id="t-1", name="web-1", host="127.0.0.1"),),
        credentials=CredentialRef(resolver_url="http://127.0.0.1:1/resolve", grant="g"),
    )
    event = EngineEvent(
        seq=1, type=EventType.STEP_FINISHED, at=1.0, status=Status.SUCCEEDED, exit_code=0, truncated=False
    )

    # Our own objects, round-tripped the way Ray ships them.
    assert pickle.loads(pickle.dumps(plan)) == plan  # noqa: S301
    assert pickle.loads(pickle.dumps(event)) == event  # noqa: S301
    assert event.to_dict()["type"] == "STEP_FINISHED"
    assert type(event.to_dict()["status"]) is str
    assert event.to_dict()["truncated"] is False
    # The defaults are the run plan's own (opsconductor_shared.runplan), in one place.
    assert plan.policy.max_parallel == DEFAULT_MAX_PARALLEL
    assert plan.steps[0].timeout_seconds == 300
    assert plan.max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES
    assert not hasattr(plan, "max_parallel") and not hasattr(plan, "effective_parallel")


def test_credentials_are_asked_for_in_growing_chunks() -> None:
    from opsconductor_ray.pool import credential_chunks

    ids = [f"t{i}" for i in range(140)]
    chunks = credential_chunks(ids)
    assert [len(c) for c in chunks] == [10, 25, 50, 50, 5]
    assert [t for c in chunks for t in c] == ids  # every target once, in order
    assert credential_chunks(ids[:4]) == [ids[:4]]
    assert credential_chunks([]) == []


def test_asyncssh_debug_arguments_are_not_formatted_when_debug_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    import opsconductor_ray.pool

    assert "asyncssh" not in vars(opsconductor_ray.pool)  # nothing patched at import
    from opsconductor_ray.pool.ssh_connections import skip_disabled_asyncssh_logs

    skip_disabled_asyncssh_logs()  # what a pool actor does when it is constructed
    skip_disabled_asyncssh_logs()  # idempotent

    class Loud:
        def __str__(self) -> str:
            raise AssertionError("formatted although debug logging is off")

    ssh_logger = asyncssh.logging.logger
    with caplog.at_level(logging.INFO, logger="asyncssh"):
        ssh_logger.debug1("channel %s", [Loud()])  # skipped before its arguments are touched
        ssh_logger.info("kept %s", [b"abc", "def"])
    with caplog.at_level(logging.DEBUG, logger="asyncssh"):
        ssh_logger.debug1("open %s", (("127.0.0.1", 22)))
    messages = [r.getMessage() for r in caplog.records]
    assert "kept abc,def" in messages and "open 127.0.0.1, port 22" in messages, messages


def test_pool_shards_come_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPSC_RAY_POOL_SHARDS", raising=False)
    assert EngineSettings().pool_shards == DEFAULT_NUM_SHARDS == 2
    assert EngineClient().num_shards == 2
    monkeypatch.setenv("OPSC_RAY_POOL_SHARDS", " 6 ")
    assert EngineClient().num_shards == 6
    assert EngineClient(num_shards=3).num_shards == 3  # an explicit argument wins
    for bad in ("0", "-1", "four", "2.5"):
        monkeypatch.setenv("OPSC_RAY_POOL_SHARDS", bad)
        with pytest.raises(ValueError, match="OPSC_RAY_POOL_SHARDS"):
            EngineClient()


def test_engine_settings_keep_the_documented_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from opsconductor_ray.retention import RetentionLimits

    monkeypatch.setenv("OPSC_RAY_ADDRESS", "127.0.0.1:6390")
    monkeypatch.setenv("OPSC_RAY_POOL_RESOURCE", "opsc_pool")
    monkeypatch.setenv("OPSC_RAY_COORDINATOR_RESOURCE", "")  # empty: unset, as before
    monkeypatch.setenv("OPSC_RAY_CALL_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("OPSC_RAY_EVENTS_MAX_RUN_EVENTS", "1234")
    client = EngineClient()
    assert client.address == "127.0.0.1:6390"
    assert client.pool_resource == "opsc_pool" and client.coordinator_resource is None
    assert client.call_timeout_s == 7 and client.slow_call_timeout_s == 120
    explicit = EngineClient(settings=EngineSettings(address=None, call_timeout_seconds=3), call_timeout_s=5)
    assert explicit.address is None and explicit.call_timeout_s == 5  # an argument wins over settings
    limits = RetentionLimits.from_settings(EventRetentionSettings())
    assert limits.run_events == 1234 and limits.run_bytes == RetentionLimits().run_bytes


def test_numbering_an_event_copies_it_with_the_new_sequence_numbers() -> None:
    """Issue 15: the coordinator numbers events with `numbered` (not dataclasses.replace, ten
    times slower); the copy is equal to what replace gives, the original is untouched."""
    import dataclasses

    event = EngineEvent(seq=0, type=EventType.STDOUT, at=1.5, target_id="t", step_index=0, data="x\n")
    numbered = event.numbered(7, 3)
    assert numbered == dataclasses.replace(event, seq=7, target_seq=3)
    assert (event.seq, event.target_seq) == (0, None)
    assert pickle.loads(pickle.dumps(numbered)) == numbered  # noqa: S301 - what Ray does with it
