"""The targets subgraph as the jobs service sees it: do these ids exist, which targets match a
selector, which are Windows. :class:`TargetsSubgraph` is the GraphQL client (built once in
``app.py``, held in ``service.Deps``); tests pass any object with the :class:`TargetDirectory` methods.

Targets are checked before the resolver opens its transaction, so no database transaction waits
on another service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from opsconductor_jobs.errors import UnknownTargetsError
from opsconductor_jobs.service.definition import ValidJob
from opsconductor_jobs.service.validation import MAX_TARGETS
from opsconductor_shared.client import ServiceCallError, ServiceClient
from opsconductor_shared.errors import DependencyUnavailableError, ValidationError
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.jobs")


class TargetDirectory(Protocol):
    """Target lookups. Raise ``DependencyUnavailableError`` when they cannot tell."""

    async def existing(self, target_ids: Sequence[str]) -> set[str]: ...

    async def matching(self, selector: Mapping[str, list[str]], limit: int) -> list[str]: ...

    async def windows(self, target_ids: Sequence[str]) -> set[str]: ...


TARGETS_BY_IDS = "query($ids: [ID!]!) { activeTargetIds(ids: $ids) }"
TARGETS_MATCHING = """query($first: Int!, $after: String, $filter: TargetFilter) {
  targets(first: $first, after: $after, filter: $filter) { pageInfo { hasNextPage endCursor } edges { node { id } } } }"""


TARGETS_OS = """query($ids: [ID!]!) { targetsByIds(ids: $ids) { id osType communicationMethods { type } } }"""


class TargetsSubgraph:
    """The targets subgraph, called directly with the jobs service token (``targets:read``)."""

    chunk = 500

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            # One retry only: a person is waiting, and a down service stays down.
            return await self.client.execute(query, variables, retries=1)
        except ServiceCallError as exc:
            log.warning("targets service call failed", url=self.client.url, error=str(exc))
            raise DependencyUnavailableError(
                "the targets service is unavailable, so the targets could not be checked; try again shortly",
                "targets",
            ) from exc

    async def windows(self, target_ids: Sequence[str]) -> set[str]:
        """The ids of Windows targets (OS type windows*, or a WinRM method): commands there run
        through cmd.exe."""
        found: set[str] = set()
        for start in range(0, len(target_ids), self.chunk):
            data = await self._call(TARGETS_OS, {"ids": list(target_ids[start : start + self.chunk])})
            try:
                for t in data["targetsByIds"]:
                    methods = {str(m["type"]).upper() for m in t.get("communicationMethods") or []}
                    if str(t["osType"]).lower().startswith("windows") or "WINRM" in methods:
                        found.add(str(t["id"]))
            except (KeyError, TypeError) as exc:
                raise DependencyUnavailableError(
                    "the targets service answered unexpectedly", "targets"
                ) from exc
        return found

    async def existing(self, target_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(target_ids), self.chunk):
            data = await self._call(TARGETS_BY_IDS, {"ids": list(target_ids[start : start + self.chunk])})
            try:
                found.update(str(t) for t in data["activeTargetIds"])
            except (KeyError, TypeError) as exc:
                raise DependencyUnavailableError(
                    "the targets service answered unexpectedly", "targets"
                ) from exc
        return found

    async def matching(self, selector: Mapping[str, list[str]], limit: int) -> list[str]:
        """Active targets with all the tags, any of the OS types and any of the environments.

        The targets filter takes one OS type and one environment, so each combination is one
        paged query; results keep the targets service's order (oldest first), duplicates once.
        """
        ids: list[str] = []
        seen: set[str] = set()
        for os_type in selector.get("osTypes") or [None]:
            for environment in selector.get("environments") or [None]:
                flt: dict[str, Any] = {"status": "ACTIVE", "tags": selector.get("tags") or None}
                if os_type:
                    flt["osType"] = os_type
                if environment:
                    flt["environment"] = environment
                after: str | None = None
                while True:
                    data = await self._call(
                        TARGETS_MATCHING, {"first": self.chunk, "after": after, "filter": flt}
                    )
                    try:
                        page = data["targets"]
                        for edge in page["edges"]:
                            target_id = str(edge["node"]["id"])
                            if target_id not in seen:
                                seen.add(target_id)
                                ids.append(target_id)
                        more, after = bool(page["pageInfo"]["hasNextPage"]), page["pageInfo"]["endCursor"]
                    except (KeyError, TypeError) as exc:
                        raise DependencyUnavailableError(
                            "the targets service answered unexpectedly", "targets"
                        ) from exc
                    if len(ids) > limit:
                        raise ValidationError(
                            f"the target selector matches more than {limit} targets", field="targetSelector"
                        )
                    if not more:
                        break
        return ids


async def check_targets(*, directory: TargetDirectory, target_ids: Sequence[str]) -> None:
    """Every id names an active target, else ``UnknownTargetsError`` listing the others in input order."""
    if not target_ids:
        return
    found = await directory.existing(target_ids)
    missing = [t for t in target_ids if t not in found]
    if missing:
        raise UnknownTargetsError(missing)


async def resolve_targets(
    *, directory: TargetDirectory, job: ValidJob, requested: Sequence[str] | None, check_ids: bool = True
) -> list[str]:
    """Explicit ids (which must still exist) plus selector matches, then narrowed to ``requested``.

    Order: explicit ids as stored, then selector matches. A requested id outside the job's
    targets is an ``UnknownTargetsError`` (a run must not reach a host the job does not name).
    ``check_ids=False`` skips asking the targets service whether the explicit ids still exist: a
    run's connection grant checks them anyway, and it is the authoritative check (issue 15 item 6).
    """
    if check_ids:
        await check_targets(directory=directory, target_ids=job.target_ids)
    resolved = list(job.target_ids)
    if job.target_selector:
        known = set(resolved)
        resolved += [t for t in await directory.matching(job.target_selector, MAX_TARGETS) if t not in known]
    if requested is not None:
        wanted = list(dict.fromkeys(str(t).strip() for t in requested))
        outside = [t for t in wanted if t not in set(resolved)]
        if outside:
            raise UnknownTargetsError(outside, f"not targets of this job: {', '.join(outside)}")
        chosen = set(wanted)
        resolved = [t for t in resolved if t in chosen]
    if not resolved:
        raise ValidationError("the job resolves to no targets", field="targetIds")
    return resolved
