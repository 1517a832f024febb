"""Relay cursors, page-size bounds, keyset connections and offset paging of a real queryset."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.events import EventEnvelope, record_event
from opsconductor_shared.paging import (
    MAX_PAGE,
    build_connection,
    check_first,
    decode_cursor,
    encode_cursor,
    paginate,
)
from shared.tests.outbox_models import Outbox


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("key", ["0", "42", "2026-11-29T17:00:00+00:00|01a2284f", "a:b:c", "ünï cödé"])
def test_cursor_round_trip(key: str) -> None:
    cursor = encode_cursor(key)
    assert key not in cursor  # opaque to clients
    assert "=" not in cursor  # no padding to escape in URLs
    assert decode_cursor(cursor) == key
    assert decode_cursor(encode_cursor(key, "o"), "o") == key


def test_no_cursor_means_from_the_start() -> None:
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "%%%",
        "a",
        b64("k1:"),  # no key
        b64("x1:5"),  # another kind
        b64("k2:5"),  # another version
        b64("5"),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd").decode(),  # not UTF-8
    ],
    ids=["garbage", "symbols", "short", "empty-key", "other-kind", "other-version", "bare", "not-utf8"],
)
def test_invalid_cursor_is_a_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_cursor(cursor)
    assert info.value.field == "after"
    assert info.value.message == "invalid cursor"


def test_a_cursor_of_one_kind_is_refused_by_another() -> None:
    with pytest.raises(ValidationError):
        decode_cursor(encode_cursor("5", "o"), "k")
    with pytest.raises(ValidationError) as info:
        decode_cursor("garbage", field="before")
    assert info.value.field == "before"


@pytest.mark.parametrize(("first", "expected"), [(None, 50), (0, 0), (1, 1), (MAX_PAGE, MAX_PAGE)])
def test_check_first_accepts(first: int | None, expected: int) -> None:
    assert check_first(first) == expected


def test_check_first_default_and_maximum() -> None:
    assert check_first(None, default=20) == 20
    assert check_first(10, maximum=10) == 10
    with pytest.raises(ValidationError, match="between 0 and 10"):
        check_first(11, maximum=10)


@pytest.mark.parametrize("first", [-1, MAX_PAGE + 1, 10**9])
def test_check_first_rejects(first: int) -> None:
    with pytest.raises(ValidationError) as info:
        check_first(first)
    assert info.value.field == "first"
    assert str(MAX_PAGE) in info.value.message


@dataclass
class Row:
    id: str
    name: str


def test_build_connection_keyset() -> None:
    rows = [Row("r1", "alpha"), Row("r2", "beta")]
    page = build_connection(
        rows, node=lambda r: r.name.upper(), key=lambda r: r.id, has_next=True, total=5, after="c0"
    )
    assert [e.node for e in page.edges] == ["ALPHA", "BETA"]
    assert [decode_cursor(e.cursor) for e in page.edges] == ["r1", "r2"]
    assert page.page_info.has_next_page
    assert page.page_info.has_previous_page  # requested with `after`
    assert page.page_info.start_cursor == page.edges[0].cursor
    assert page.page_info.end_cursor == page.edges[-1].cursor
    assert page.total_count == 5

    empty = build_connection([], node=str, key=str, has_next=False, total=0)
    assert empty.edges == []
    assert not empty.page_info.has_previous_page
    assert empty.page_info.start_cursor is None
    assert empty.page_info.end_cursor is None


async def test_paginate_walks_a_queryset_page_by_page(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        for n in range(5):
            await record_event(Outbox, EventEnvelope(type="things.made", source="things", data={"n": n}))
        rows = Outbox.all().order_by("created_at")

        def number(row: Outbox) -> int:
            return int(row.envelope["data"]["n"])

        seen: list[int] = []
        after = None
        pages = 0
        while True:
            page = await paginate(rows, first=2, after=after, convert=number)
            pages += 1
            assert page.total_count == 5
            assert page.page_info.has_previous_page == (after is not None)
            seen += [edge.node for edge in page.edges]
            if not page.page_info.has_next_page:
                break
            after = page.page_info.end_cursor
        assert seen == [0, 1, 2, 3, 4]
        assert pages == 3

        empty = await paginate(rows, first=0, after=None, convert=number)
        assert empty.edges == []
        assert empty.page_info.has_next_page
        past_the_end = await paginate(rows, first=2, after=encode_cursor("10", "o"), convert=number)
        assert past_the_end.edges == []
        assert not past_the_end.page_info.has_next_page


@pytest.mark.parametrize(
    "after",
    [encode_cursor("-5", "o"), encode_cursor("1.5", "o"), encode_cursor("3", "k"), "garbage"],
    ids=["negative", "fraction", "keyset-cursor", "garbage"],
)
async def test_paginate_refuses_a_bad_offset_cursor(outbox_db: ServiceDatabase, after: str) -> None:
    with outbox_db.bind(), pytest.raises(ValidationError) as info:
        await paginate(Outbox.all(), first=2, after=after, convert=str)
    assert info.value.field == "after"
