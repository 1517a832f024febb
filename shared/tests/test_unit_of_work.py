"""`@transactional`: the resolver owns the transaction, written once (issue 15 item 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.errors import DomainError, Error, NotFound, NotFoundError, ValidationError
from opsconductor_shared.events import EventEnvelope, record_event
from opsconductor_shared.unit_of_work import ErrorTable, maps_errors, transactional, unit_of_work
from shared.tests.outbox_models import Outbox


class Conflict(DomainError):
    code = "CONFLICT"

    def __init__(self, message: str, current: int) -> None:
        super().__init__(message)
        self.current = current


@strawberry.type
class VersionConflict(Error):
    current: int


@strawberry.type
class Done:
    n: int


ERRORS = ErrorTable({Conflict: lambda e: VersionConflict(message=e.message, current=e.current)})
Result = Annotated[Done | NotFound | VersionConflict, strawberry.union("Result")]


@dataclass
class FakeRuntime:
    """The part of `Runtime` the helper uses: it counts the relay wake-ups."""

    committed: int = 0

    def events_committed(self) -> None:
        self.committed += 1


@dataclass
class Context:
    runtime: FakeRuntime = field(default_factory=FakeRuntime)


async def _write(n: int) -> None:
    await record_event(Outbox, EventEnvelope(type=f"t{n}.did", source=f"t{n}", subject=str(n), data={}))


@strawberry.type
class Query:
    @strawberry.field
    @maps_errors(ERRORS)
    async def look(self, info: Info, fail: bool) -> Result:
        if fail:
            raise NotFoundError("no such thing", id="x")
        return Done(n=0)


@strawberry.type
class Mutation:
    @strawberry.mutation
    @transactional(ERRORS)
    async def act(self, info: Info, n: int, fail: str = "") -> Result:
        await _write(n)
        if fail == "conflict":
            raise Conflict("stale", current=7)
        if fail == "missing":
            raise NotFoundError("gone", id="42")
        if fail == "invalid":  # not a member of Result: a top-level error with its code
            raise ValidationError("bad n", field="n")
        if fail == "bug":
            raise RuntimeError("boom")
        return Done(n=n)


schema = strawberry.federation.Schema(query=Query, mutation=Mutation)
ACT = "mutation($n: Int!, $f: String!) { act(n: $n, fail: $f) { __typename ... on Done { n } ... on Error { message } ... on VersionConflict { current } ... on NotFound { id } } }"


async def _act(ctx: Context, n: int, fail: str = "") -> Any:
    return await schema.execute(ACT, variable_values={"n": n, "f": fail}, context_value=ctx)


async def test_success_commits_and_wakes_the_relay_once(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        ctx = Context()
        result = await _act(ctx, 1)
        assert result.errors is None
        assert result.data == {"act": {"__typename": "Done", "n": 1}}
        assert await Outbox.filter(stream="opsc.events.t1").count() == 1
        assert ctx.runtime.committed == 1


async def test_domain_errors_become_union_members_and_roll_back(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        ctx = Context()
        conflict = await _act(ctx, 2, "conflict")
        assert conflict.data == {"act": {"__typename": "VersionConflict", "message": "stale", "current": 7}}
        missing = await _act(ctx, 3, "missing")
        assert missing.data == {"act": {"__typename": "NotFound", "message": "gone", "id": "42"}}
        assert (
            await Outbox.filter(stream__in=["opsc.events.t2", "opsc.events.t3"]).count() == 0
        )  # rolled back
        assert ctx.runtime.committed == 0


async def test_an_error_outside_the_union_is_a_top_level_error_with_its_code(
    outbox_db: ServiceDatabase,
) -> None:
    with outbox_db.bind():
        ctx = Context()
        invalid = await _act(ctx, 4, "invalid")
        assert invalid.data is None
        assert invalid.errors is not None
        assert invalid.errors[0].message == "bad n"
        assert invalid.errors[0].extensions == {"code": "BAD_USER_INPUT", "field": "n"}
        bug = await _act(ctx, 5, "bug")
        assert bug.errors is not None and "boom" in bug.errors[0].message
        assert await Outbox.filter(stream__in=["opsc.events.t4", "opsc.events.t5"]).count() == 0
        assert ctx.runtime.committed == 0


async def test_maps_errors_without_a_transaction(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        ctx = Context()
        result = await schema.execute(
            "{ look(fail: true) { __typename ... on Error { message } } }", context_value=ctx
        )
        assert result.data == {"look": {"__typename": "NotFound", "message": "no such thing"}}
        ok = await schema.execute("{ look(fail: false) { __typename } }", context_value=ctx)
        assert ok.data == {"look": {"__typename": "Done"}}
        assert ctx.runtime.committed == 0


async def test_unit_of_work_for_background_work(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        runtime = FakeRuntime()
        async with unit_of_work(runtime):
            await _write(9)
        assert await Outbox.filter(stream="opsc.events.t9").count() == 1
        assert runtime.committed == 1
        try:
            async with unit_of_work(runtime):
                await _write(10)
                raise Conflict("no", current=1)
        except Conflict:
            pass
        assert await Outbox.filter(stream="opsc.events.t10").count() == 0
        assert runtime.committed == 1


def test_the_most_specific_handler_wins() -> None:
    class Narrow(NotFoundError):
        pass

    table = ERRORS.extend({Narrow: lambda e: VersionConflict(message="narrow", current=0)})
    assert isinstance(table.to_graphql(Narrow("x")), VersionConflict)
    assert isinstance(table.to_graphql(NotFoundError("x")), NotFound)
    assert table.to_graphql(DomainError("plain")) is None
