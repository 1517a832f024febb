"""Unit tests of the follower's output handling (no database needed)."""

from __future__ import annotations

from types import SimpleNamespace

from opsconductor_executions.service import TRUNCATED_MARKER, _Follower


def _follower(limit: int) -> _Follower:
    execution = SimpleNamespace(last_seq=0, status="RUNNING", id="x")
    return _Follower(execution, limit)  # type: ignore[arg-type]


def test_output_over_the_limit_is_cut_with_a_marker() -> None:
    follower = _follower(10)
    follower._append("t", 0, "STDOUT", "12345")
    follower._append("t", 0, "STDOUT", "67890abc")
    follower._append("t", 0, "STDOUT", "more")
    text = "".join(follower.output[("t", 0, "STDOUT")])
    assert text.startswith("1234567890")
    assert text.endswith(TRUNCATED_MARKER.format(limit=10))
    assert "abc" not in text and "more" not in text


def test_streams_are_kept_apart() -> None:
    follower = _follower(100)
    follower._append("t", 0, "STDOUT", "out")
    follower._append("t", 0, "STDERR", "err")
    follower._append("u", 1, "STDOUT", "other")
    assert follower.output[("t", 0, "STDOUT")] == ["out"]
    assert follower.output[("t", 0, "STDERR")] == ["err"]
    assert follower.output[("u", 1, "STDOUT")] == ["other"]


def test_live_messages_are_cut_by_count_and_by_output_size() -> None:
    from opsconductor_executions.service import chunk_events

    events = [{"seq": i, "data": "x" * 100} for i in range(1, 11)]
    assert [len(c) for c in chunk_events(events, 4)] == [4, 4, 2]
    assert [len(c) for c in chunk_events(events, 100, max_bytes=250)] == [2, 2, 2, 2, 2]
    big = [{"seq": 1, "data": "y" * 1000}, {"seq": 2, "data": None}, {"seq": 3, "data": "z"}]
    assert [[e["seq"] for e in c] for c in chunk_events(big, 100, max_bytes=10)] == [[1], [2, 3]]
    assert [e for c in chunk_events(events, 3, max_bytes=350) for e in c] == events  # order, nothing lost
    assert chunk_events([], 5) == []
