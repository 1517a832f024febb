"""Unit tests of the follower's output handling (no database needed)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from opsconductor_executions.service.persist import RunWriter
from opsconductor_ray.protocol import EngineEvent, truncation_marker


def _follower() -> RunWriter:
    execution = SimpleNamespace(last_seq=0, status="RUNNING", id="x")
    return RunWriter(execution)  # type: ignore[arg-type]


def _out(seq: int, target: str, step: int, kind: str, data: str) -> EngineEvent:
    return EngineEvent(seq=seq, type=kind, at=1.0, target_id=target, step_index=step, data=data)


def test_output_is_stored_as_the_engine_cut_it() -> None:
    """Item 3: the engine's cut (with its marker) is the only one; the follower cuts nothing again."""
    follower = _follower()
    chunks = ["x" * 10_000, "y" * 10_000 + truncation_marker(20_000)]
    staged = follower.stage([_out(i + 1, "t", 0, "STDOUT", c) for i, c in enumerate(chunks)])
    text = "".join(p["data"] for p in staged.payloads)  # what is stored and streamed (the event rows)
    assert text == "".join(chunks) and text.endswith(truncation_marker(20_000))
    assert text.count("output truncated") == 1


def test_streams_are_kept_apart() -> None:
    follower = _follower()
    batch = [
        _out(1, "t", 0, "STDOUT", "out"),
        _out(2, "t", 0, "STDERR", "err"),
        _out(3, "u", 1, "STDOUT", "other"),
    ]
    rows = follower.stage(batch).rows
    assert [(r["targetId"], r["stepIndex"], r["type"], r["data"]) for r in rows] == [
        ("t", 0, "STDOUT", "out"),
        ("t", 0, "STDERR", "err"),
        ("u", 1, "STDOUT", "other"),
    ]


def test_live_messages_are_cut_by_count_and_by_output_size() -> None:
    from opsconductor_executions.service.live import chunk_events

    events = [{"seq": i, "data": "x" * 100} for i in range(1, 11)]
    assert [len(c) for c in chunk_events(events, 4)] == [4, 4, 2]
    assert [len(c) for c in chunk_events(events, 100, max_bytes=250)] == [2, 2, 2, 2, 2]
    big = [{"seq": 1, "data": "y" * 1000}, {"seq": 2, "data": None}, {"seq": 3, "data": "z"}]
    assert [[e["seq"] for e in c] for c in chunk_events(big, 100, max_bytes=10)] == [[1], [2, 3]]
    assert [e for c in chunk_events(events, 3, max_bytes=350) for e in c] == events  # order, nothing lost
    assert chunk_events([], 5) == []


def test_m12_the_follower_keeps_no_step_output_in_memory() -> None:
    """M12, and item 3 (output stored once): the follower keeps no step output (TargetRun.steps
    reads it from the event rows, and truncation is the engine's field), not even a tail."""
    follower = _follower()
    before = set(vars(follower))
    seq = 0
    for target in range(50):
        for step in range(3):
            for _ in range(100):
                seq += 1
                follower.stage([_out(seq, f"t{target}", step, "STDOUT", "0123456789" * 10)])
    assert set(vars(follower)) == before and follower.staged_seq == seq
    held = [v for v in vars(follower).values() if isinstance(v, (str, list, dict, set))]
    assert all("0123456789" not in repr(v) for v in held)


def test_m9_a_subscriptions_live_inbox_is_bounded() -> None:
    """M9: a reader that never reads holds at most `size` live messages (the rest come from the
    database when it reads on), not every message of the run."""
    from opsconductor_executions.service.live import LiveInbox

    inbox = LiveInbox(8)
    for i in range(10_000):
        inbox.put(json.dumps([{"seq": i}]))
    assert inbox.queue.qsize() == 8 and inbox.dropped == 10_000 - 8
    assert json.loads(inbox.queue.get_nowait()) == [{"seq": 10_000 - 8}]  # the newest are kept


def test_live_events_past_a_gap_are_kept_until_it_is_filled() -> None:
    """Item 5: events are published before they are stored, so a reader may see seq 5 before 3
    and 4 reach it (from a later message or the database): each seq once, in order, none skipped."""
    from opsconductor_executions.service.live import Sequencer

    def ev(seq: int, kind: str = "STDOUT") -> dict:
        return {"seq": seq, "type": kind}

    order = Sequencer(2)
    assert order.take([ev(5), ev(6)]) == ([], True)
    assert order.take([ev(1), ev(2), ev(3)]) == ([ev(3)], True)  # old ones dropped, 4 still missing
    fresh, gap = order.take([ev(4), ev(5)])
    assert [e["seq"] for e in fresh] == [4, 5, 6] and not gap
    fresh, gap = order.take([ev(8, "EXECUTION_FINISHED"), ev(7), ev(9)])
    assert [e["seq"] for e in fresh] == [7, 8] and not gap and order.last == 8


def test_a_batch_is_staged_for_publishing_before_it_is_stored() -> None:
    """Item 5: staging numbers nothing itself (the coordinator did) and cuts nothing (the engine
    did); the same rows are what is published and what is stored, once."""
    follower = _follower()
    batch = [
        EngineEvent(seq=1, type="EXECUTION_STARTED", at=1.0),
        EngineEvent(seq=2, type="STDOUT", at=1.0, target_id="t", step_index=0, data="abcdef"),
    ]
    staged = follower.stage(batch)
    assert [p["seq"] for p in staged.payloads] == [1, 2]
    assert staged.payloads[1]["data"] == "abcdef"
    assert follower.staged_seq == 2 and follower.last_seq == 0  # published, not stored yet
    assert follower.stage(batch).events == []  # a repeated batch is not staged twice


def test_stored_events_win_over_live_ones_of_the_same_seq() -> None:
    """A stray live message with a seq still missing never replaces what the database holds."""
    from opsconductor_executions.service.live import Sequencer

    order = Sequencer(0)
    assert order.take([{"seq": 2, "type": "STDOUT", "data": "stray"}]) == ([], True)
    real = [{"seq": 1, "type": "STDOUT", "data": "a"}, {"seq": 2, "type": "STDOUT", "data": "b"}]
    fresh, gap = order.take(real, stored=True)
    assert [e["data"] for e in fresh] == ["a", "b"] and not gap


def test_truncated_is_the_engines_field_not_the_word() -> None:
    """Review §3.2 point 3 / item 3: `truncated` is the engine's STEP_FINISHED field; a command that
    prints "truncated" (even the marker's text) is not flagged, a step the engine cut is."""
    import asyncio
    from datetime import UTC, datetime

    follower = _follower()
    names = ["word", "marker-text", "cut"]
    runs = {t: SimpleNamespace(id=i, target_id=t, exit_code=None) for i, t in enumerate(names)}
    follower.stage(
        [
            _out(1, "word", 0, "STDOUT", "the log was truncated"),
            _out(2, "marker-text", 0, "STDERR", "abc" + truncation_marker(1000)),
            _out(3, "cut", 0, "STDOUT", "abc"),
        ]
    )
    results: dict = {}
    for seq, target in enumerate(names, start=4):
        done = EngineEvent(
            seq=seq,
            type="STEP_FINISHED",
            at=1.0,
            target_id=target,
            step_index=0,
            status="SUCCEEDED",
            truncated=target == "cut",
        )
        asyncio.run(follower._apply(None, runs, done, datetime.now(UTC), set(), results))  # type: ignore[arg-type]
    assert [results[(i, 0)]["truncated"] for i in range(3)] == [False, False, True]


def test_batches_queued_for_storing_are_merged_in_order() -> None:
    """Issue 15: storing is paced; the batches queued meanwhile go into one transaction, in seq
    order, each event once."""
    from opsconductor_executions.service.persist import merge_staged

    follower = _follower()
    first = follower.stage([_out(1, "a", 0, "STDOUT", "1\n"), _out(2, "b", 0, "STDOUT", "2\n")])
    second = follower.stage([_out(2, "b", 0, "STDOUT", "2\n"), _out(3, "a", 0, "STDOUT", "3\n")])
    assert merge_staged([first]) is first
    merged = merge_staged([first, second])
    assert [e.seq for e in merged.events] == [1, 2, 3]
    assert [row["seq"] for row in merged.rows] == [1, 2, 3]
    assert [p["data"] for p in merged.payloads] == ["1\n", "2\n", "3\n"]
