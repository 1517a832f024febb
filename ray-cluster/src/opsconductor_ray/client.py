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
from ray.exceptions import RayActorError

from opsconductor_ray.config import ActorHandle, PoolConfig, shard_of
from opsconductor_ray.coordinator import ExecutionCoordinator, coordinator_name
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
    """

    def __init__(
        self,
        address: str | None = None,
        num_shards: int = 4,
        namespace: str = DEFAULT_NAMESPACE,
        pool_config: PoolConfig | None = None,
    ) -> None:
        if num_shards < 1:
            raise ValueError("num_shards must be at least 1")
        self.address = address
        self.num_shards = num_shards
        self.namespace = namespace
        self.pool_config = pool_config or PoolConfig()
        self._owns_ray = False
        self._coordinators: dict[str, ActorHandle] = {}
        self._pools: dict[int, ActorHandle] = {}

    async def connect(self, *, dashboard: bool = False, num_cpus: int | None = None) -> None:
        """Attach to Ray: reuse this process's Ray if initialised, else join `address`, else
        start a local one (dashboard on 127.0.0.1:8265 when `dashboard`). Then make sure the
        pool actors exist, so that their start-up does not delay the first run."""
        if not ray.is_initialized():
            await self._init_ray(dashboard=dashboard, num_cpus=num_cpus)
        for shard in range(self.num_shards):
            await self._pool(shard)

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
        """Create the run's coordinator and start it. Idempotent per execution id."""
        shards = {shard_of(t.target_id, self.num_shards) for t in plan.targets}
        pools = {shard: await self._live_pool(shard) for shard in shards}
        coordinator = await asyncio.to_thread(self._create_coordinator, plan, pools)
        self._coordinators[plan.execution_id] = coordinator
        await coordinator.start.remote()

    async def events(self, execution_id: str, after_seq: int, wait_s: float = 1.0) -> list[EngineEvent]:
        """Events with seq > `after_seq` (long poll: waits up to `wait_s` if none yet)."""
        coordinator = await self._coordinator(execution_id)
        try:
            return await coordinator.events.remote(after_seq, wait_s)
        except RayActorError as exc:
            self._coordinators.pop(execution_id, None)
            raise ExecutionNotFound(f"the coordinator of execution {execution_id} is gone") from exc

    async def status(self, execution_id: str) -> dict[str, Any]:
        """The coordinator's summary: state (CREATED/RUNNING/FINISHED), status, last_seq..."""
        coordinator = await self._coordinator(execution_id)
        try:
            return await coordinator.status.remote()
        except RayActorError as exc:
            self._coordinators.pop(execution_id, None)
            raise ExecutionNotFound(f"the coordinator of execution {execution_id} is gone") from exc

    async def cancel(self, execution_id: str) -> None:
        coordinator = await self._coordinator(execution_id)
        try:
            await coordinator.cancel.remote()
        except RayActorError as exc:
            self._coordinators.pop(execution_id, None)
            raise ExecutionNotFound(f"the coordinator of execution {execution_id} is gone") from exc

    async def release(self, execution_id: str) -> None:
        """Let the coordinator exit (call once its events are persisted). Idempotent."""
        try:
            coordinator = await self._coordinator(execution_id)
        except ExecutionNotFound:
            return
        self._coordinators.pop(execution_id, None)
        with contextlib.suppress(RayActorError):  # it exited, as asked
            await coordinator.release.remote()

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
        self._coordinators.clear()
        self._pools.clear()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False

    # ----------------------------------------------------------------- internals

    def _require_ray(self) -> None:
        if not ray.is_initialized():
            raise EngineError("EngineClient is not connected: await connect() first")

    def _create_coordinator(self, plan: ExecutionPlan, pools: dict[int, ActorHandle]) -> ActorHandle:
        self._require_ray()
        return ExecutionCoordinator.options(  # type: ignore[attr-defined]
            name=coordinator_name(plan.execution_id),
            namespace=self.namespace,
            lifetime="detached",
            get_if_exists=True,
        ).remote(plan, self.num_shards, self.pool_config, self.namespace, pools)

    async def _coordinator(self, execution_id: str) -> ActorHandle:
        coordinator = self._coordinators.get(execution_id)
        if coordinator is None:
            self._require_ray()
            try:
                coordinator = await asyncio.to_thread(
                    ray.get_actor, coordinator_name(execution_id), namespace=self.namespace
                )
            except ValueError as exc:
                raise ExecutionNotFound(f"no running execution {execution_id}") from exc
            self._coordinators[execution_id] = coordinator
        return coordinator

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
            pool = await asyncio.to_thread(get_pool, shard, self.pool_config, self.namespace)
            self._pools[shard] = pool
        return pool
