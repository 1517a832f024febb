"""`EngineClient`: the only door services use into the engine (they never import ray).

Every method is async and never blocks the caller's event loop: Ray calls that block
(init, actor lookup and creation) run in a worker thread; results are awaited as futures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

import ray
from ray.exceptions import RayActorError

from opsconductor_ray.config import ActorHandle, PoolConfig, num_shards_from_env, shard_of
from opsconductor_ray.coordinator import ExecutionCoordinator, coordinator_host_name, coordinator_index
from opsconductor_ray.errors import EngineError, ExecutionNotFound
from opsconductor_ray.pool import get_pool
from opsconductor_ray.protocol import (
    ConnectionTestResult,
    CredentialRef,
    EngineEvent,
    ExecutionPlan,
    TargetSpec,
)

logger = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "opsconductor"


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
    ) -> None:
        if num_shards is None:
            num_shards = num_shards_from_env()
        if num_shards < 1 or num_coordinators < 1:
            raise ValueError("num_shards and num_coordinators must be at least 1")
        self.address = address
        self.num_shards = num_shards
        self.num_coordinators = num_coordinators
        # Custom Ray resources that place pools / coordinators on chosen workers (deploy/).
        self.pool_resource = pool_resource or os.environ.get("OPSC_RAY_POOL_RESOURCE") or None
        self.coordinator_resource = (
            coordinator_resource or os.environ.get("OPSC_RAY_COORDINATOR_RESOURCE") or None
        )
        self.namespace = namespace
        self.pool_config = pool_config or PoolConfig()
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
        await asyncio.gather(*(p.stats.remote() for p in pools), *(h.ping.remote() for h in hosts))
        handles = dict(enumerate(pools))
        await asyncio.gather(*(h.prepare.remote(handles) for h in hosts))

    async def _init_ray(self, *, dashboard: bool, num_cpus: int | None) -> None:
        if self.address is not None:
            await asyncio.to_thread(ray.init, address=self.address, namespace=self.namespace)
        else:
            await asyncio.to_thread(
                ray.init,
                address="local",  # OPSC_RAY_ADDRESS unset means our own local Ray, never a stray cluster
                num_cpus=num_cpus,
                include_dashboard=dashboard,
                dashboard_host="127.0.0.1",
                dashboard_port=8265,
                namespace=self.namespace,
            )
        self._owns_ray = True

    async def start(self, plan: ExecutionPlan) -> None:
        """Hand the run to its coordinator and start it. Idempotent per execution id: a
        second start of a known id runs nothing."""
        pools = await self._live_pools()
        host = await self._host(coordinator_index(plan.execution_id, self.num_coordinators))
        try:
            await host.start.remote(plan, pools)
        except RayActorError as exc:
            raise EngineError(f"the execution coordinator is unavailable: {type(exc).__name__}") from exc

    async def events(
        self, execution_id: str, after_seq: int, wait_s: float = 1.0, gather_s: float = 0.0
    ) -> list[EngineEvent]:
        """Events with seq > `after_seq` (long poll: waits up to `wait_s` if none yet; then, with
        `gather_s`, collects for up to that long, returning at once when the run finishes)."""
        return await self._ask(execution_id, "events", after_seq, wait_s, gather_s)

    async def status(self, execution_id: str) -> dict[str, Any]:
        """The run's summary: state (CREATED/RUNNING/FINISHED), status, last_seq..."""
        return await self._ask(execution_id, "status")

    async def cancel(self, execution_id: str) -> None:
        await self._ask(execution_id, "cancel")

    async def release(self, execution_id: str) -> None:
        """Let the coordinator forget the run (call once its events are persisted). Idempotent."""
        for index in self._candidates(execution_id):
            with contextlib.suppress(RayActorError):
                await (await self._host(index)).release.remote(execution_id)

    async def reattach(self, execution_id: str) -> dict[str, Any]:
        """Find a run again after this process restarted: its summary (`last_seq` tells how
        far the coordinator got); raises `ExecutionNotFound` if no coordinator hosts it."""
        return await self.status(execution_id)

    async def runs(self) -> list[dict[str, Any]]:
        """Every run the coordinators host (running, or finished and not yet released)."""
        hosts = [await self._host(index) for index in range(self.num_coordinators)]
        found: list[list[dict[str, Any]]] = await asyncio.gather(*(h.runs.remote() for h in hosts))
        return [run for runs in found for run in runs]

    async def is_running(self, execution_id: str) -> bool:
        """True while the coordinator exists and has not emitted EXECUTION_FINISHED."""
        try:
            state = await self.status(execution_id)
        except ExecutionNotFound:
            return False
        return state["state"] != "FINISHED"

    async def test_connection(self, target: TargetSpec, cred: CredentialRef) -> ConnectionTestResult:
        pool = await self._pool(shard_of(target.target_id, self.num_shards))
        try:
            return await pool.test_connection.remote(target, cred)
        except RayActorError as exc:
            return ConnectionTestResult(
                ok=False, latency_ms=None, message=f"execution pool died: {type(exc).__name__}"
            )

    async def pool_stats(self) -> dict[str, Any]:
        """Totals over all shards (`open_connections`, `connects`, `reuses`, ...) and the
        per-shard figures under `shards`."""
        pools = [await self._pool(shard) for shard in range(self.num_shards)]
        shards: list[dict[str, int]] = await asyncio.gather(*(pool.stats.remote() for pool in pools))
        totals: dict[str, Any] = {
            key: sum(stats[key] for stats in shards) for key in shards[0] if key != "shard"
        }
        totals["shards"] = shards
        return totals

    def shutdown(self) -> None:
        """Disconnect from Ray (stopping it if `connect` started it here)."""
        self._hosts.clear()
        self._pools.clear()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False

    # ----------------------------------------------------------------- internals

    def _require_ray(self) -> None:
        if not ray.is_initialized():
            raise EngineError("EngineClient is not connected: await connect() first")

    def _candidates(self, execution_id: str) -> list[int]:
        home = coordinator_index(execution_id, self.num_coordinators)
        return [home, *(i for i in range(self.num_coordinators) if i != home)]

    async def _ask(self, execution_id: str, method: str, *args: Any) -> Any:
        """Call `method(execution_id, *args)` on the run's coordinator. Its home first; the
        others too, in case the run was started with another `num_coordinators`."""
        for index in self._candidates(execution_id):
            host = await self._host(index)
            try:
                answer = await getattr(host, method).remote(execution_id, *args)
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
            host = await asyncio.to_thread(self._get_host, index)
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

    async def _live_pools(self) -> dict[int, ActorHandle]:
        """Handles of every pool, each checked with one cheap call (in parallel): it waits
        for a restarting pool, and a pool killed for good and created again under its name
        needs a new handle."""
        await asyncio.gather(*(self._live_pool(shard) for shard in range(self.num_shards)))
        return dict(self._pools)

    async def _live_pool(self, shard: int) -> ActorHandle:
        """A handle that answers: a pool killed for good and created again under its name needs a new one."""
        pool = await self._pool(shard)
        try:
            await asyncio.wait_for(pool.stats.remote(), 10)
        except (RayActorError, TimeoutError):
            self._pools.pop(shard, None)
            pool = await self._pool(shard)
        return pool

    async def _pool(self, shard: int) -> ActorHandle:
        pool = self._pools.get(shard)
        if pool is None:
            self._require_ray()
            pool = await asyncio.to_thread(
                get_pool, shard, self.pool_config, self.namespace, self.pool_resource
            )
            self._pools[shard] = pool
        return pool
