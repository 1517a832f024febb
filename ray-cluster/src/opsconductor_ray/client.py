"""`EngineClient`: the only door services use into the engine (they never import ray).

Every method is async and never blocks the caller's event loop: Ray calls that block
(init, actor lookup and creation) run in a worker thread; results are awaited as futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayError

from opsconductor_ray.config import ActorHandle, PoolConfig, shard_of
from opsconductor_ray.coordinator import ExecutionCoordinator, coordinator_host_name, coordinator_index
from opsconductor_ray.errors import EngineError, ExecutionNotFound
from opsconductor_ray.protocol import (
    ConnectionTestResult,
    CredentialRef,
    EngineEvent,
    ExecutionPlan,
    TargetSpec,
)
from opsconductor_ray.settings import EngineSettings

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "opsconductor"


class EngineTimeout(EngineError):
    """The engine did not answer in time: what the call did (if anything) is unknown."""


class EngineUnavailable(EngineError):
    """The engine could not be asked (an actor temporarily unreachable): nothing is known."""


class EngineClient:
    """Start runs, read their events, cancel them, test connections.

    `address` None starts (or joins, if this process already called `ray.init`) a local Ray;
    otherwise it is a Ray cluster address such as "127.0.0.1:6380" or "ray://head:10001".

    Runs are hosted by `num_coordinators` long-lived coordinator actors (`coordinator-<k>`),
    chosen by a stable hash of the execution id, so any client (a restarted executions
    service included) finds a run again by its id alone.
    """

    def __init__(
        self,
        address: str | None = None,
        num_shards: int | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        pool_config: PoolConfig | None = None,
        num_coordinators: int = 2,
        pool_resource: str | None = None,
        coordinator_resource: str | None = None,
        call_timeout_s: float | None = None,
        slow_call_timeout_s: float | None = None,
        *,
        settings: EngineSettings | None = None,
    ) -> None:
        """Explicit arguments win over `settings` (default: `EngineSettings()`, from `OPSC_RAY_*`)."""
        if settings is None:
            settings = EngineSettings()
        if num_shards is None:
            num_shards = settings.pool_shards
        if num_shards < 1 or num_coordinators < 1:
            raise ValueError("num_shards and num_coordinators must be at least 1")
        self.address = address or settings.address
        self.num_shards = num_shards
        self.num_coordinators = num_coordinators
        # Custom Ray resources that place pools / coordinators on chosen workers (deploy/).
        self.pool_resource = pool_resource or settings.pool_resource
        self.coordinator_resource = coordinator_resource or settings.coordinator_resource
        self.namespace = namespace
        self.pool_config = pool_config or PoolConfig()
        # Every Ray call is bounded (a stuck or unschedulable actor never hangs a caller); a
        # timeout raises EngineTimeout. Ray never retries our calls (max_task_retries=0 on the
        # coordinator and pool actors): a start or a batch is never run twice by Ray.
        self.call_timeout_s = call_timeout_s or settings.call_timeout_seconds
        self.slow_call_timeout_s = slow_call_timeout_s or settings.slow_call_timeout_seconds
        self._owns_ray = False
        self._hosts: dict[int, ActorHandle] = {}
        self._pools: dict[int, ActorHandle] = {}

    async def connect(self, *, dashboard: bool = False, num_cpus: int | None = None) -> None:
        """Attach to Ray: reuse this process's Ray if initialised, else join `address`, else
        start a local one (dashboard on 127.0.0.1:8265 when `dashboard`). Then make sure the
        pool and coordinator actors exist and answer, so that their start-up (a worker
        process each) does not delay the first run."""
        if not ray.is_initialized():
            await self._init_ray(dashboard=dashboard, num_cpus=num_cpus)
        pools = [await self._pool(shard) for shard in range(self.num_shards)]
        hosts = [await self._host(index) for index in range(self.num_coordinators)]
        slow = self.slow_call_timeout_s
        await self._bounded(
            asyncio.gather(*(p.stats.remote() for p in pools), *(h.ping.remote() for h in hosts)),
            "connect",
            slow,
        )
        handles = dict(enumerate(pools))
        await self._bounded(asyncio.gather(*(h.prepare.remote(handles) for h in hosts)), "prepare", slow)

    async def _init_ray(self, *, dashboard: bool, num_cpus: int | None) -> None:
        if self.address is not None:
            await asyncio.to_thread(ray.init, address=self.address, namespace=self.namespace)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        else:
            await asyncio.to_thread(
                ray.init,  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
                address="local",  # OPSC_RAY_ADDRESS unset means our own local Ray, never a stray cluster
                num_cpus=num_cpus,
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                dashboard_port=8265,
                namespace=self.namespace,
            )
        self._owns_ray = True

    async def start(self, plan: ExecutionPlan) -> bool:
        """Hand the run to its coordinator and start it. Idempotent per execution id: a
        second start of a known (or `forbid`den) id runs nothing and returns False.

        EngineTimeout / EngineError: whether it started is unknown; `forbid` settles it."""
        # The coordinator checks each shard's pool when it calls it (waiting for a restarting
        # one): no ping of every pool here, so a start costs one Ray call.
        pools = {shard: await self._pool(shard) for shard in range(self.num_shards)}
        host = await self._host(coordinator_index(plan.execution_id, self.num_coordinators))
        try:
            return bool(await self._bounded(host.start.remote(plan, pools), "start"))
        except RayError as exc:
            raise EngineError(f"the execution coordinator is unavailable: {type(exc).__name__}") from exc

    async def forbid(self, execution_id: str) -> str:
        """Settle, for good, whether the run was started: "known" (a coordinator has it),
        "released" (it ran and was released), or "forbidden" (no coordinator ever started it,
        and none will: a `start` still on its way runs nothing). Never a guess: EngineTimeout /
        EngineUnavailable / EngineError when a coordinator cannot be asked."""
        answers: list[str] = []
        for index in self._candidates(execution_id):
            host = await self._host(index)
            try:
                answer = await self._bounded(host.forbid.remote(execution_id), "forbid")
            except ActorUnavailableError as exc:
                raise EngineUnavailable(f"an execution coordinator is unreachable: {exc}") from exc
            except RayError as exc:
                self._hosts.pop(index, None)
                raise EngineError(f"an execution coordinator failed: {type(exc).__name__}") from exc
            if answer == "known":
                return "known"
            answers.append(answer)
        return "released" if "released" in answers else "forbidden"

    async def cancel_run(self, execution_id: str) -> str:
        """Cancel the run whatever its state on the engine: "cancelling" (its coordinator got
        the request and ends it CANCELLED), "released" (it had ended and was released) or
        "never-started" (no coordinator has it and none will start it). Raises EngineTimeout /
        EngineError when the engine cannot be asked: then nothing is known."""
        for _ in range(3):
            try:
                await self.cancel(execution_id)
                return "cancelling"
            except ExecutionNotFound:
                pass
            settled = await self.forbid(execution_id)
            if settled == "forbidden":
                return "never-started"
            if settled == "released":
                return "released"
            # "known": it started between the two calls; cancel it now
        raise EngineError(f"could not settle the cancellation of execution {execution_id}")

    async def update_credentials(self, execution_id: str, credentials: CredentialRef) -> bool:
        """Hand the run's coordinator a renewed connection grant for its later batches."""
        try:
            return bool(await self._ask(execution_id, "update_credentials", credentials))
        except ExecutionNotFound:
            return False

    async def events(
        self, execution_id: str, after_seq: int, wait_s: float = 1.0, gather_s: float = 0.0
    ) -> list[EngineEvent]:
        """Events with seq > `after_seq` (long poll: waits up to `wait_s` if none yet; then, with
        `gather_s`, collects for up to that long, returning at once when the run finishes)."""
        return await self._ask(
            execution_id,
            "events",
            after_seq,
            wait_s,
            gather_s,
            timeout_s=self.call_timeout_s + max(0.0, wait_s) + max(0.0, gather_s),
        )

    async def status(self, execution_id: str) -> dict[str, Any]:
        """The run's summary: state (CREATED/RUNNING/FINISHED), status, last_seq..."""
        return await self._ask(execution_id, "status")

    async def cancel(self, execution_id: str) -> None:
        await self._ask(execution_id, "cancel")

    async def release(self, execution_id: str) -> None:
        """Let the coordinator forget the run (call once its events are persisted). Idempotent."""
        for index in self._candidates(execution_id):
            with contextlib.suppress(RayActorError):
                # a still running run is cancelled and awaited (up to 30 s) by the coordinator
                await self._bounded(
                    (await self._host(index)).release.remote(execution_id),
                    "release",
                    self.call_timeout_s + 30,
                )

    async def reattach(self, execution_id: str) -> dict[str, Any]:
        """Find a run again after this process restarted: its summary (`last_seq` tells how
        far the coordinator got); raises `ExecutionNotFound` if no coordinator hosts it."""
        return await self.status(execution_id)

    async def runs(self) -> list[dict[str, Any]]:
        """Every run the coordinators host (running, or finished and not yet released)."""
        hosts = [await self._host(index) for index in range(self.num_coordinators)]
        found: list[list[dict[str, Any]]] = await self._bounded(
            asyncio.gather(*(h.runs.remote() for h in hosts)), "runs"
        )
        return [run for runs in found for run in runs]

    async def is_running(self, execution_id: str) -> bool:
        """True while the coordinator exists and has not emitted EXECUTION_FINISHED."""
        try:
            state = await self.status(execution_id)
        except ExecutionNotFound:
            return False
        return state["state"] != "FINISHED"

    async def test_connection(self, target: TargetSpec, cred: CredentialRef) -> ConnectionTestResult:
        shard = shard_of(target.target_id, self.num_shards)
        for attempt in (1, 2):
            pool = await self._pool(shard)
            try:
                return await self._bounded(
                    pool.test_connection.remote(target, cred), "test_connection", self.slow_call_timeout_s
                )
            except RayActorError as exc:
                # A pool killed for good (or replaced under its name): look it up again and, the
                # test being read-only, try once more with the live one.
                self._pools.pop(shard, None)
                if attempt == 2:
                    return ConnectionTestResult(
                        ok=False, latency_ms=None, message=f"execution pool died: {type(exc).__name__}"
                    )
            except EngineTimeout as exc:
                return ConnectionTestResult(ok=False, latency_ms=None, message=str(exc))
        raise AssertionError("unreachable")

    async def pool_stats(self) -> dict[str, Any]:
        """Totals over all shards (`open_connections`, `connects`, `reuses`, ...) and the
        per-shard figures under `shards`."""
        pools = [await self._pool(shard) for shard in range(self.num_shards)]
        shards: list[dict[str, int]] = await self._bounded(
            asyncio.gather(*(pool.stats.remote() for pool in pools)), "stats"
        )
        totals: dict[str, Any] = {
            key: sum(stats[key] for stats in shards) for key in shards[0] if key != "shard"
        }
        totals["shards"] = shards
        return totals

    async def health(self) -> dict[str, Any]:
        """The engine's health for system health checks: Ray nodes (all, alive) and each pool and
        coordinator actor pinged (bounded): ALIVE, DEAD (the actor died) or UNREACHABLE."""
        self._require_ray()
        nodes: list[dict[str, Any]] = await self._bounded(asyncio.to_thread(ray.nodes), "nodes")  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        alive = sum(1 for node in nodes if node.get("Alive"))

        async def check(kind: str, name: str, index: int) -> dict[str, str]:
            try:
                if kind == "pool":
                    handle = await self._pool(index)
                    await self._bounded(handle.stats.remote(), "pool ping")
                else:
                    handle = await self._host(index)
                    await self._bounded(handle.ping.remote(), "coordinator ping")
            except RayActorError:
                (self._pools if kind == "pool" else self._hosts).pop(index, None)
                return {"name": name, "kind": kind, "state": "DEAD"}
            except (EngineError, RayError, OSError):
                (self._pools if kind == "pool" else self._hosts).pop(index, None)
                return {"name": name, "kind": kind, "state": "UNREACHABLE"}
            return {"name": name, "kind": kind, "state": "ALIVE"}

        actors = await asyncio.gather(
            *(check("pool", f"pool-{shard}", shard) for shard in range(self.num_shards)),
            *(check("coordinator", coordinator_host_name(i), i) for i in range(self.num_coordinators)),
        )
        return {"nodes": len(nodes), "aliveNodes": alive, "actors": list(actors)}

    def shutdown(self) -> None:
        """Disconnect from Ray (stopping it if `connect` started it here)."""
        self._hosts.clear()
        self._pools.clear()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()  # pyright: ignore[reportUnknownMemberType]
        self._owns_ray = False

    # ----------------------------------------------------------------- internals

    def _require_ray(self) -> None:
        if not ray.is_initialized():
            raise EngineError("EngineClient is not connected: await connect() first")

    def _candidates(self, execution_id: str) -> list[int]:
        home = coordinator_index(execution_id, self.num_coordinators)
        return [home, *(i for i in range(self.num_coordinators) if i != home)]

    async def _bounded(self, awaitable: Any, what: str, timeout_s: float | None = None) -> Any:
        """Await a Ray call at most `timeout_s` (default: call_timeout_s); EngineTimeout after."""
        limit = timeout_s if timeout_s is not None else self.call_timeout_s
        try:
            return await asyncio.wait_for(awaitable, limit)
        except TimeoutError as exc:
            raise EngineTimeout(f"the execution engine did not answer {what} within {limit:g}s") from exc

    async def _ask(self, execution_id: str, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        """Call `method(execution_id, *args)` on the run's coordinator. Its home first; the
        others too, in case the run was started with another `num_coordinators`.

        ExecutionNotFound only when every coordinator answered (or died: a restarted one knows
        no runs); EngineTimeout / EngineUnavailable when one could not be asked."""
        for index in self._candidates(execution_id):
            host = await self._host(index)
            try:
                answer = await self._bounded(
                    getattr(host, method).remote(execution_id, *args), method, timeout_s
                )
            except ActorUnavailableError as exc:
                raise EngineUnavailable(
                    f"the coordinator of execution {execution_id} is unreachable"
                ) from exc
            except RayActorError as exc:
                self._hosts.pop(index, None)
                raise ExecutionNotFound(f"the coordinator of execution {execution_id} is gone") from exc
            if answer is not None and answer is not False:
                return answer
        raise ExecutionNotFound(f"no running execution {execution_id}")

    async def _host(self, index: int) -> ActorHandle:
        host = self._hosts.get(index)
        if host is None:
            self._require_ray()
            host = await self._bounded(
                asyncio.to_thread(self._get_host, index), "coordinator lookup", self.slow_call_timeout_s
            )
            self._hosts[index] = host
        return host

    def _get_host(self, index: int) -> ActorHandle:
        return ExecutionCoordinator.options(  # type: ignore[attr-defined]
            name=coordinator_host_name(index),
            namespace=self.namespace,
            lifetime="detached",
            get_if_exists=True,
            **({"resources": {self.coordinator_resource: 1}} if self.coordinator_resource else {}),
        ).remote(index, self.num_shards, self.pool_config, self.namespace)

    def _get_pool(self, shard: int) -> ActorHandle:
        # imported here: a service that only imports EngineClient never loads asyncssh or httpx
        from opsconductor_ray.pool.actor import get_pool

        return get_pool(shard, self.pool_config, self.namespace, self.pool_resource)

    async def _pool(self, shard: int) -> ActorHandle:
        pool = self._pools.get(shard)
        if pool is None:
            self._require_ray()
            pool = await self._bounded(
                asyncio.to_thread(self._get_pool, shard),
                "pool lookup",
                self.slow_call_timeout_s,
            )
            self._pools[shard] = pool
        return pool
