"""SSH host keys: trust on first use, the background learner, and acceptHostKey.

Never an SSH credential without the host key to verify (review H3): the credential resolver asks
``HostKeys.known_hosts_many`` for every SSH target of a batch. A key seen for the first time is
recorded (outside strict environments), each in its own unit of work (this is background work or
the engine's credential request, never a resolver); ``accept_host_key`` records in the resolver's
transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncssh
from tortoise.exceptions import IntegrityError

from opsconductor_shared.errors import ValidationError
from opsconductor_shared.events import record_event
from opsconductor_shared.logging import get_logger
from opsconductor_shared.unit_of_work import Committer, unit_of_work
from opsconductor_targets import events
from opsconductor_targets.errors import AddressDenied, GrantRejected, HostKeyProblem
from opsconductor_targets.models import CommunicationMethod, KnownHostKey, Outbox, Target
from opsconductor_targets.service.netpolicy import NetPolicy
from opsconductor_targets.service.reads import find_method, get_target, get_targets
from opsconductor_targets.settings import Settings

log = get_logger("opsconductor.targets")


def known_hosts_line(host: str, port: int, key_line: str) -> str:
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key_line}\n"


async def fetch_host_key(host: str, port: int, timeout_s: float) -> asyncssh.SSHKey:
    """The server's host key, read from the key exchange (no authentication is attempted)."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(host, port, config=None), timeout_s)
    except TimeoutError:
        raise HostKeyProblem(
            f"could not read the host key of {host}:{port}: timed out after {timeout_s:g}s"
        ) from None
    except ConnectionRefusedError:
        raise HostKeyProblem(f"could not read the host key of {host}:{port}: connection refused") from None
    except (OSError, asyncssh.Error) as exc:
        raise HostKeyProblem(
            f"could not read the host key of {host}:{port}: {type(exc).__name__}: {exc}"
        ) from None
    if key is None:
        raise HostKeyProblem(f"{host}:{port} presented no host key")
    return key


async def record_host_key(
    *, target: Target, method: CommunicationMethod, key: asyncssh.SSHKey, how: str, actor: str | None
) -> tuple[KnownHostKey, str | None]:
    """Trust `key` for the method (recording it, or replacing the recorded one), in the caller's
    transaction; returns the row and the fingerprint it replaced. A concurrent first use that won
    keeps its key."""
    line = key.export_public_key("openssh").decode().strip()
    fingerprint = key.get_fingerprint("sha256")
    row = await KnownHostKey.get_or_none(method_id=method.id, host=method.host, port=method.port)
    previous = row.fingerprint if row is not None else None
    if row is None:
        try:
            row = await KnownHostKey.create(
                target=target,
                method_id=method.id,
                host=method.host,
                port=method.port,
                key=line,
                fingerprint=fingerprint,
                trusted_by=how,
                actor=actor,
            )
        except IntegrityError:  # a concurrent first use recorded it: theirs stands
            return await KnownHostKey.get(method_id=method.id, host=method.host, port=method.port), None
    else:
        row.key, row.fingerprint, row.trusted_by, row.actor = line, fingerprint, how, actor
        await row.save()
    await record_event(
        Outbox,
        events.target_event(
            events.HOST_KEY_TRUSTED,
            target,
            actor,
            {"methodId": method.id, "fingerprint": fingerprint, "previous": previous, "how": how},
        ),
    )
    log.info(
        "host key trusted",
        target_id=target.id,
        method_id=method.id,
        fingerprint=fingerprint,
        previous=previous,
        how=how,
    )
    return row, previous


class HostKeys:
    """Trust on first use, and the learner that records keys ahead of the first run."""

    def __init__(self, *, settings: Settings, netpolicy: NetPolicy, committer: Committer) -> None:
        self.settings = settings
        self.netpolicy = netpolicy
        self.committer = committer
        self._pending: set[str] = set()
        self._learner: asyncio.Task[None] | None = None

    def strict(self, environment: str) -> bool:
        return environment in self.settings.strict_environments

    async def fetch(self, method: CommunicationMethod) -> asyncssh.SSHKey:
        """The server's key, read from the address the network policy checked (M11)."""
        address = await self.netpolicy.check(method.host, method.port)
        return await fetch_host_key(address, method.port, self.settings.host_key_timeout_seconds)

    async def known_hosts_many(
        self, pairs: Sequence[tuple[Target, CommunicationMethod]]
    ) -> dict[str, str | GrantRejected]:
        """By method id: the known_hosts text the engine must verify against, or the refusal
        (strict environment, or the key could not be read: never a credential without a key).

        Trust on first use: with no key recorded, fetch the server's key now (a bounded number at
        once) and record it, unless the target's environment is strict, then refuse until an
        operator runs acceptHostKey. Recorded keys come from one query.
        """
        if not pairs:
            return {}
        rows = await KnownHostKey.filter(method_id__in=[m.id for _, m in pairs])
        recorded = {(r.method_id, r.host, r.port): r for r in rows}
        out: dict[str, str | GrantRejected] = {}
        unknown: list[tuple[Target, CommunicationMethod]] = []
        for target, method in pairs:
            row = recorded.get((method.id, method.host, method.port))
            if row is not None:
                out[method.id] = known_hosts_line(method.host, method.port, row.key)
            elif self.strict(target.environment):
                out[method.id] = GrantRejected(
                    f"host key of {method.host}:{method.port} is not known and {target.environment} "
                    "requires strict host key checking: accept it with acceptHostKey"
                )
            else:
                unknown.append((target, method))
        limit = asyncio.Semaphore(32)

        async def first_use(target: Target, method: CommunicationMethod) -> None:
            async with limit:
                try:
                    key = await self.fetch(method)
                except (HostKeyProblem, AddressDenied) as exc:
                    # Fail closed (review H3): no key, no credential. The engine would otherwise
                    # connect unchecked, and whoever answers there gets the password.
                    log.warning(
                        "host key not readable for trust on first use",
                        target_id=target.id,
                        reason=exc.message,
                    )
                    out[method.id] = GrantRejected(
                        f"{exc.message}; the SSH host key must be known before the credential is "
                        "released (it is read on first use, or run acceptHostKey)"
                    )
                    return
            async with unit_of_work(self.committer):
                row, _ = await record_host_key(target=target, method=method, key=key, how="tofu", actor=None)
            out[method.id] = known_hosts_line(method.host, method.port, row.key)

        await asyncio.gather(*(first_use(t, m) for t, m in unknown))
        return out

    def learn_soon(self, target_ids: Sequence[str]) -> None:
        """Record, in the background, the host keys of these targets' SSH methods that have none
        yet (trust on first use ahead of the first run; never in strict environments). Call it
        after the transaction that created or re-pointed the methods has committed."""
        if not self.settings.learn_host_keys_on_create or not target_ids:
            return
        self._pending.update(target_ids)
        if self._learner is None or self._learner.done():
            self._learner = asyncio.create_task(self._learn(), name="targets-learn-host-keys")

    async def _learn(self) -> None:
        while self._pending:
            ids = sorted(self._pending)[:200]
            self._pending.difference_update(ids)
            try:
                pairs = [
                    (target, method)
                    for target in await get_targets(ids)
                    if not self.strict(target.environment)
                    for method in target.methods
                    if method.is_active and method.type == "ssh"
                ]
                await self.known_hosts_many(pairs)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("learning host keys failed", targets=len(ids))

    async def stop(self) -> None:
        if self._learner is not None:
            self._learner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._learner
            self._learner = None


async def accept_host_key(
    *, host_keys: HostKeys, target_id: str, method_id: str, fingerprint: str | None, actor: str | None
) -> tuple[KnownHostKey, str | None]:
    """Fetch the key the server presents now and trust it (replacing a recorded one).

    With ``fingerprint`` the key must be the one the operator verified out of band.
    """
    target = await get_target(target_id)
    method = find_method(target, method_id)
    if method.type != "ssh":
        raise ValidationError("host keys exist for ssh methods only", field="methodId")
    try:
        key = await host_keys.fetch(method)
    except AddressDenied as exc:
        raise HostKeyProblem(exc.message) from None
    presented = key.get_fingerprint("sha256")
    if fingerprint and fingerprint.strip() != presented:
        raise HostKeyProblem(
            f"the server presents {presented}, not the fingerprint you confirmed ({fingerprint.strip()})"
        )
    return await record_host_key(target=target, method=method, key=key, how="accepted", actor=actor)
