"""Fakes and helpers for testing code that uses the engine (no mocks: real HTTP, real Ray).

Not imported by the engine itself. `FakeCredentialVault` lets tests hand the engine
credentials the way the targets service does; `collect_events` follows a run to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from opsconductor_ray.client import EngineClient
from opsconductor_ray.protocol import CredentialRef, EngineEvent, EventType


@dataclass
class _Grant:
    body: dict[str, Any]
    status: int = 200


@dataclass
class FakeCredentialVault:
    """Stands in for the targets service's internal credential endpoint.

    A real HTTP server on 127.0.0.1 (plain asyncio, HTTP/1.1, one request per connection)
    that answers the engine's `POST {"grant", "targetId"}` the way the targets service
    does: 200 with `{"username", "password", "privateKey", "passphrase"}`, or an error
    status with `{"message"}`; and the batch form `POST {"grant", "targetIds"}` with
    `{"credentials": {id: ...}, "refused": {}}` (one grant's login for every target). `issue` registers a grant and returns its `CredentialRef`.
    """

    grants: dict[str, _Grant] = field(default_factory=dict[str, _Grant])
    requests: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    drop_next: int = 0
    """This many coming requests are read, then the connection is closed without an answer."""
    known_hosts: str | None = None
    """Handed out as `knownHosts` with every grant `issue` makes without its own (the pool
    refuses SSH credentials without a trusted host key, review H3)."""
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/internal/credentials/resolve"

    def issue(
        self,
        *,
        username: str,
        password: str | None = None,
        private_key: str | None = None,
        passphrase: str | None = None,
        known_hosts: str | None = None,
        **options: Any,
    ) -> CredentialRef:
        """`known_hosts` defaults to the vault's; pass "" for none. `options`: further
        resolver fields (WinRM `transport`, `scheme`, `serverCertValidation`, `allowInsecure`)."""
        grant = secrets.token_urlsafe(12)
        body: dict[str, Any] = {
            "username": username,
            "password": password,
            "privateKey": private_key,
            "passphrase": passphrase,
            **options,
        }
        known = self.known_hosts if known_hosts is None else known_hosts
        if known:
            body["knownHosts"] = known
        self.grants[grant] = _Grant(body)
        return CredentialRef(resolver_url=self.url, grant=grant)

    def refuse(self, status: int, message: str) -> CredentialRef:
        """A grant the vault answers with `status` and `{"message": message}`."""
        grant = secrets.token_urlsafe(12)
        self.grants[grant] = _Grant({"message": message}, status=status)
        return CredentialRef(resolver_url=self.url, grant=grant)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            method = request_line.split(b" ", 1)[0]
            if self.drop_next > 0:
                self.drop_next -= 1
                return
            status, answer = self._answer(method, body)
            payload = json.dumps(answer).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, method: bytes, body: bytes) -> tuple[int, dict[str, Any]]:
        if method != b"POST":
            return 405, {"message": "POST only"}
        try:
            request = json.loads(body)
        except ValueError:
            return 400, {"message": "body is not JSON"}
        self.requests.append(request)
        grant = self.grants.get(request.get("grant", ""))
        if grant is None:
            return 403, {"message": "credential grant is unknown or expired"}
        ids = request.get("targetIds")
        if ids is None or grant.status != 200:
            return grant.status, grant.body
        return 200, {"credentials": dict.fromkeys(ids, grant.body), "refused": {}}


def check_sequence(events: list[EngineEvent]) -> None:
    """Assert seq is 1..n without gaps and each target's target_seq is 1..k without gaps."""
    seqs = [event.seq for event in events]
    if seqs != list(range(1, len(events) + 1)):
        raise AssertionError(f"seq is not 1..{len(events)} without gaps: {seqs}")
    per_target: dict[str, list[int | None]] = {}
    for event in events:
        if event.target_id is not None:
            per_target.setdefault(event.target_id, []).append(event.target_seq)
    for target_id, target_seqs in per_target.items():
        if target_seqs != list(range(1, len(target_seqs) + 1)):
            raise AssertionError(f"target_seq of {target_id} is not 1..k without gaps: {target_seqs}")


async def collect_events(
    engine: EngineClient,
    execution_id: str,
    *,
    timeout_s: float = 60,
    release: bool = True,
    after_seq: int = 0,
) -> list[EngineEvent]:
    """Long-poll a run's events after `after_seq` until EXECUTION_FINISHED (then release the run)."""
    events: list[EngineEvent] = []
    deadline = time.monotonic() + timeout_s
    while not events or events[-1].type != EventType.EXECUTION_FINISHED:
        if time.monotonic() > deadline:
            raise AssertionError(f"execution {execution_id} did not finish in {timeout_s}s: {events}")
        events.extend(await engine.events(execution_id, after_seq=after_seq + len(events), wait_s=1.0))
    if release:
        await engine.release(execution_id)
    if after_seq == 0:
        check_sequence(events)
    return events
