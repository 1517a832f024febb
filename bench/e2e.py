"""End to end through the router: a logged-in GraphQL client (HTTP + one graphql-transport-ws
connection) and the embedded platform with the real router in front of it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from infra import Endpoint, SshdFleet, free_port, spawn_router, stop_router, wait_router_ready
from modes import COMMAND, BenchError, Sample, _expect_output, primer_targets, target_spread, timed_vault

ADMIN_PASSWORD = secrets.token_urlsafe(16)  # a throwaway platform in a temporary directory

CREATE_TARGET = """mutation($input: CreateTargetInput!) { createTarget(input: $input) {
  __typename ... on TargetCreated { target { id } } ... on Error { message } } }"""
CREATE_JOB = """mutation($input: CreateJobInput!) { createJob(input: $input) {
  __typename ... on JobCreated { job { id } } ... on Error { message } } }"""
RUN_JOB = """mutation($id: ID!) { runJob(jobId: $id) {
  __typename ... on ExecutionStarted { execution { id } } ... on Error { message } } }"""
EVENT_FIELDS = "seq type targetId data status at"
EVENTS = f"""subscription($id: ID!, $after: Int) {{ executionEvents(executionId: $id, afterSeq: $after) {{
  {EVENT_FIELDS} }} }}"""
BATCHES = f"""subscription($id: ID!, $after: Int) {{
  executionEventBatches(executionId: $id, afterSeq: $after) {{ lastSeq events {{ {EVENT_FIELDS} }} }} }}"""
EXECUTION = """query($id: ID!) { execution(id: $id) { status lastSeq totalTargets succeededTargets
  targetRuns { status message connectionReused steps { stdout } } } }"""
LOGIN = """mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
  __typename ... on LoginSuccess { accessToken } ... on Error { message } } }"""


@dataclass
class EndToEnd:
    """A logged-in GraphQL client of the router, with one open graphql-transport-ws connection
    (opened before any timing, as a UI keeps one open)."""

    url: str
    ws_url: str
    http: httpx.AsyncClient
    token: str = ""
    ws: Any = None
    _ids: int = 0

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        resp = await self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = resp.json()
        if body.get("errors"):
            raise BenchError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    async def login(self, username: str, password: str) -> None:
        result = (await self.gql(LOGIN, {"u": username, "p": password}))["login"]
        if result["__typename"] != "LoginSuccess":
            raise BenchError(f"login failed: {result}")
        self.token = result["accessToken"]

    async def open_ws(self) -> None:
        import websockets

        self.ws = await websockets.connect(
            self.ws_url,
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            open_timeout=15,
            max_size=2**24,
        )
        await self.ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}})
        )
        ack = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
        if ack["type"] != "connection_ack":
            raise BenchError(f"subscription connection refused: {ack}")

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def create_targets(self, fleet: SshdFleet, n: int) -> list[str]:
        gate = asyncio.Semaphore(4)

        async def create(i: int, endpoint: Endpoint) -> str:
            variables = {
                "input": {
                    "name": f"bench-{i:04d}",
                    "osType": "linux",
                    "environment": "testing",
                    "methods": [
                        {
                            "type": "SSH",
                            "host": endpoint.host,
                            "port": endpoint.port,
                            "credential": {
                                "type": "SSH_KEY",
                                "username": fleet.username,
                                "privateKey": fleet.private_key_pem,
                            },
                        }
                    ],
                }
            }
            async with gate:
                result = (await self.gql(CREATE_TARGET, variables))["createTarget"]
            if result["__typename"] != "TargetCreated":
                raise BenchError(f"createTarget {endpoint.host}: {result}")
            return str(result["target"]["id"])

        ids = list(await asyncio.gather(*(create(i, e) for i, e in enumerate(fleet.endpoints[:n]))))
        await self.wait_host_keys(ids)
        return ids

    async def wait_host_keys(self, ids: list[str], timeout_s: float = 120) -> None:
        """Untimed: creating a target reads its host key in the background (trust on first use
        ahead of the first run); wait for all of them, so that a cold run measures new SSH
        connections, not the one-time first use (which a target pays once in its life)."""
        query = """query($ids: [ID!]!) { targetsByIds(ids: $ids) { communicationMethods { hostKey { fingerprint } } } }"""
        deadline = time.monotonic() + timeout_s
        while True:
            found = (await self.gql(query, {"ids": ids}))["targetsByIds"]
            missing = sum(1 for t in found for m in t["communicationMethods"] if m["hostKey"] is None)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{missing} host keys still unknown after {timeout_s:.0f}s")
            await asyncio.sleep(0.5)

    async def create_job(self, target_ids: list[str], *, name: str = "", command: str = COMMAND) -> str:
        variables = {
            "input": {
                "name": name or f"bench-hello-{len(target_ids)}",
                "targetIds": target_ids,
                "steps": [{"name": "greet", "command": command}],
                "policy": {"maxParallel": max(1, len(target_ids))},
            }
        }
        result = (await self.gql(CREATE_JOB, variables))["createJob"]
        if result["__typename"] != "JobCreated":
            raise BenchError(f"createJob: {result}")
        return str(result["job"]["id"])

    async def follow(
        self, job_id: str, *, batches: bool
    ) -> tuple[str, float, list[tuple[float, dict[str, Any]]], int, float]:
        """runJob, subscribe from seq 0 and collect (receive time, event) until EXECUTION_FINISHED,
        through executionEventBatches (one message per batch) or executionEvents (one per event).
        Returns the execution id, runJob's time, the events, the WebSocket messages and the wall time."""
        self._ids += 1
        sub_id = str(self._ids)
        started = time.perf_counter()
        result = (await self.gql(RUN_JOB, {"id": job_id}))["runJob"]
        if result["__typename"] != "ExecutionStarted":
            raise BenchError(f"runJob: {result}")
        run_job_s = time.perf_counter() - started
        execution_id = result["execution"]["id"]
        payload = {"query": BATCHES if batches else EVENTS, "variables": {"id": execution_id, "after": 0}}
        await self.ws.send(json.dumps({"id": sub_id, "type": "subscribe", "payload": payload}))
        received: list[tuple[float, dict[str, Any]]] = []
        messages = 0
        deadline = started + 120
        while not received or received[-1][1]["type"] != "EXECUTION_FINISHED":
            raw = await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.perf_counter()))
            at = time.time()
            msg = json.loads(raw)
            if msg["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
            elif msg.get("id") != sub_id:
                continue
            elif msg["type"] == "next":
                if msg["payload"].get("errors"):
                    raise BenchError(f"subscription errors: {msg['payload']['errors']}")
                data = msg["payload"]["data"]
                if batches:
                    received.extend((at, e) for e in data["executionEventBatches"]["events"])
                else:
                    received.append((at, data["executionEvents"]))
                messages += 1
            elif msg["type"] in ("error", "complete"):
                raise BenchError(f"subscription ended early: {msg}")
        wall = time.perf_counter() - started
        # The server completes the subscription after EXECUTION_FINISHED; drain that (untimed).
        with contextlib.suppress(TimeoutError):
            while True:
                msg = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
                if msg.get("id") == sub_id and msg["type"] in ("complete", "error"):
                    break
        return execution_id, run_job_s, received, messages, wall

    async def run(self, job_id: str, n: int, *, warm: bool, batches: bool = True) -> Sample:
        """Time runJob -> the subscriber receiving EXECUTION_FINISHED, through executionEventBatches
        (one message per persisted batch) or, with ``batches=False``, executionEvents (one per event)."""
        wall0 = time.time()
        execution_id, run_job_s, received, messages, wall = await self.follow(job_id, batches=batches)

        final = (await self.gql(EXECUTION, {"id": execution_id}))["execution"]
        if final["status"] != "SUCCEEDED" or final["succeededTargets"] != n:
            reasons = sorted({str(r["message"]) for r in final["targetRuns"] if r["status"] != "SUCCEEDED"})
            raise BenchError(
                f"execution {execution_id}: {final['status']}, {final['succeededTargets']}/{n}; "
                f"why: {'; '.join(reasons[:3])}"
            )
        _expect_output([run["steps"][0]["stdout"] for run in final["targetRuns"]], n, "end-to-end run")
        reused = sum(1 for run in final["targetRuns"] if run["connectionReused"])
        if reused != (n if warm else 0):
            raise BenchError(f"end-to-end ({'warm' if warm else 'cold'}): {reused} of {n} connections reused")
        events = [e for _, e in received]
        if [e["seq"] for e in events] != list(range(1, len(events) + 1)):
            raise BenchError("the subscriber saw gaps in the event sequence")

        def ts(event: dict[str, Any]) -> float:
            return datetime.fromisoformat(event["at"]).timestamp()

        first, last = events[0], events[-1]
        first_target = min(ts(e) for e in events if e["type"] == "TARGET_STARTED")
        latencies = [at - ts(e) for at, e in received]
        return Sample(
            wall,
            {
                "run_job": run_job_s,
                "to_started": ts(first) - wall0,
                "to_first_target": first_target - ts(first),
                **target_spread(ts(first), [ts(e) for e in events if e["type"] == "TARGET_STARTED"]),
                "run": ts(last) - ts(first),
                "tail": received[-1][0] - ts(last),
                "events": len(events),
                "messages": messages,
                "persisted": final["lastSeq"],
                "latency_p50": statistics.median(latencies),
                "latency_max": max(latencies),
            },
        )


@dataclass
class Platform:
    """The embedded platform behind the router, logged in, with `targets` created (host keys
    known) and the subscriber's WebSocket open; `primers`/`primer_credentials` prime fresh pools."""

    client: EndToEnd
    target_ids: list[str]
    primers: tuple[Any, ...]
    primer_credentials: Any


@contextlib.asynccontextmanager
async def embedded_platform(fleet: SshdFleet, n_max: int, work: Path, log: Any) -> AsyncIterator[Platform]:
    """Every subgraph in this process (`EmbeddedPlatform`, embedded defaults: SQLite files in a
    temporary `OPSC_DATA_DIR`, in-process event bus) sharing this process's Ray, the real router
    as a subprocess, and `n_max` SSH targets created through the router."""
    from opsconductor_launcher.platform import SERVICES, EmbeddedPlatform
    from opsconductor_ray.client import EngineClient
    from opsconductor_shared.logging import configure_logging

    configure_logging("WARNING", json=False)
    data_dir = Path(tempfile.mkdtemp(prefix="opsc-bench-data-"))
    saved = dict(os.environ)
    for key in list(os.environ):  # the embedded defaults: SQLite files, in-process bus
        if key.startswith("OPSC_"):
            del os.environ[key]
    os.environ.update(
        {
            "OPSC_DATA_DIR": str(data_dir),
            "OPSC_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **{f"OPSC_SERVICE_SECRET_{name.upper()}": uuid.uuid4().hex for name in SERVICES},
            "OPSC_LOG_LEVEL": "WARNING",
            "OPSC_TARGETS_ALLOW_NETWORKS": "127.0.0.0/8",  # the bench fleet's sshd is on loopback
        }
    )
    engine = EngineClient()
    await engine.connect()
    vault = timed_vault()  # only to prime fresh pools (the runs get credentials from targets)
    await vault.start()
    primers = primer_targets(fleet, n_max)
    primer_credentials = vault.issue(
        username=fleet.username, private_key=fleet.private_key_pem, known_hosts=fleet.known_hosts
    )
    ports = {name: free_port() for name in SERVICES}
    platform = EmbeddedPlatform(services=tuple(SERVICES), ports=ports, engine=engine)
    router = None
    client: EndToEnd | None = None
    try:
        started = time.perf_counter()
        await platform.start()
        router = spawn_router(
            free_port(),
            {
                **{
                    f"OPSC_{name.upper()}_URL": f"http://127.0.0.1:{port}/graphql"
                    for name, port in ports.items()
                },
                "OPSC_JWKS_URL": f"http://127.0.0.1:{ports['auth']}/.well-known/jwks.json",
            },
            work,
        )
        await wait_router_ready(router)
        log(f"platform and router up in {time.perf_counter() - started:.1f}s")
        client = EndToEnd(router.url, router.ws_url, httpx.AsyncClient(timeout=60))
        await client.login("admin", ADMIN_PASSWORD)
        started = time.perf_counter()
        target_ids = await client.create_targets(fleet, n_max)
        log(f"created {len(target_ids)} targets in {time.perf_counter() - started:.1f}s")
        await client.open_ws()
        yield Platform(client, target_ids, primers, primer_credentials)
    finally:
        # Synchronous steps first: they must happen even if this task is being cancelled.
        if router is not None:
            stop_router(router)
        os.environ.clear()
        os.environ.update(saved)
        try:
            if client is not None:
                await client.close()
                await client.http.aclose()
            await platform.stop()
            await vault.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
