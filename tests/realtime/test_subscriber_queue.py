"""A subscriber's filters and its bounded queue, on their own: what a stream filter lets
through, and what is left in the queue when a stream is closed (issue 17: mutants of
``realtime.subscribers`` the stream tests did not reach)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from capebase import AuthContext, CapeBase
from capebase.filters.streams import StreamFilter
from capebase.realtime.index import SubscriberIndex, pins_for
from capebase.realtime.subscribers import CLOSE, StreamQueue, Subscriber
from capebase.realtime.views import ModelView
from tests.realtime._app import Task, make_app

ROWS: list[dict[str, Any]] = [
    {"id": 1, "title": "a", "level": None},
    {"id": 2, "title": "b", "level": 2},
    {"id": 3, "title": "c", "level": 5},
    {"id": 4, "title": "d", "level": "not a number"},  # an image the schema could not decode
]


@pytest.mark.parametrize(
    ("op", "value", "ids"),
    [
        ("isnull", True, [1]),
        ("isnull", False, [2, 3, 4]),
        ("eq", 2, [2]),
        ("ne", 2, [3, 4]),  # NULL matches no comparison, not even "not equal"
        ("in", frozenset({2, 7}), [2]),
        ("nin", frozenset({2, 7}), [3, 4]),  # nor "not in"
        ("gt", 2, [3]),  # a value that cannot be compared matches nothing
        ("gte", 2, [2, 3]),
        ("lt", 5, [2]),
        ("lte", 5, [2, 3]),
    ],
)
def test_a_stream_filter_matches_as_the_list_filters_do(
    op: str, value: Any, ids: list[int]
) -> None:
    condition = StreamFilter("level", op, value)
    assert [row["id"] for row in ROWS if condition.matches(row)] == ids


def subscriber(queue_size: int) -> Subscriber:
    view = ModelView(Task, Task.__table__, BaseModel)  # type: ignore[attr-defined]
    return Subscriber(view, AuthContext(id="alice"), [], queue_size)


def test_closing_a_stream_keeps_its_backlog_unless_the_queue_is_full() -> None:
    """A stream ended with room in its queue (revoked, shut down) delivers what is queued,
    then ends; one whose queue is full drops the backlog (the client resumes from its last
    id). Closing twice ends it once; nothing is queued after the end."""
    roomy = subscriber(3)
    roomy.offer("a")
    roomy.close()
    roomy.close()
    roomy.offer("b")
    assert roomy.closed and roomy.queue.take(10) == ["a", CLOSE]

    full = subscriber(2)
    full.offer("a")
    full.offer("b")
    full.close()
    assert not full.overflowed and full.queue.take(10) == [CLOSE]

    behind = subscriber(1)
    behind.offer("a")
    behind.offer("b")  # the queue is full: the subscriber is dropped
    assert behind.overflowed and behind.closed and behind.queue.take(10) == [CLOSE]


async def test_the_queue_is_a_bounded_fifo_that_wakes_its_reader() -> None:
    queue = StreamQueue(2)
    assert queue.empty() and not queue.full()
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    waiter = queue.waiter()
    queue.put_nowait("a")
    assert waiter.done()
    queue.put_nowait("b")
    assert queue.full() and queue.qsize() == 2
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait("c")
    queue.put_nowait(CLOSE, force=True)
    assert queue.get_nowait() == "a"
    assert queue.take(1) == ["b"] and queue.take(5) == [CLOSE] and queue.empty()


def test_the_index_finds_subscribers_by_any_pinned_value_and_forgets_them() -> None:
    index = SubscriberIndex()
    owner, org, anyone = subscriber(1), subscriber(1), subscriber(1)
    index.add(owner, [("owner_id", "alice")])
    index.add(org, [("org_id", "o1"), ("org_id", "o2")])
    index.add(anyone, None)
    # An image with no value (NULL) in one pinned field is still found by another field.
    row = {"org_id": None, "owner_id": "alice"}
    assert index.candidates([row]) == {owner, anyone}
    assert index.candidates([None, {"owner_id": None, "org_id": "o2"}]) == {org, anyone}
    assert index.candidates([{"owner_id": ["unhashable"], "org_id": "o1"}]) == {org, anyone}
    assert len(index) == 3 and set(index) == {owner, org, anyone}
    for gone in (owner, org, anyone):
        index.remove(gone)
        index.remove(gone)  # twice: the second finds nothing to forget
    assert len(index) == 0
    assert index.candidates([row, {"owner_id": "alice", "org_id": "o2"}]) == set()
    assert not index._by_pin and not index._unpinned  # nothing of them stays behind


def test_pins_come_from_a_filter_or_else_from_every_rule_that_applies(sqlite_url: str) -> None:
    _app, cape = make_app(sqlite_url)
    view = ModelView(Task, Task.__table__, BaseModel)  # type: ignore[attr-defined]

    def pins(ctx: AuthContext, *filters: StreamFilter) -> Any:
        return pins_for(cape.policy, Subscriber(view, ctx, list(filters), 1))

    carol = AuthContext(id="carol", context={"org_id": "o2"})
    assert pins(carol) == [("owner_id", "carol"), ("org_id", "o2")]
    assert pins(carol, StreamFilter("level", "eq", 3)) == [("level", 3)]
    assert sorted(pins(carol, StreamFilter("level", "in", frozenset({1, 2})))) == [
        ("level", 1), ("level", 2)
    ]
    assert pins(carol, StreamFilter("level", "gt", 3)) == pins(carol)
    assert pins(AuthContext(id="root", role="admin")) is None  # reads every row
    # A `where` rule pins nothing, even when it is the first rule that applies.
    guest_only = CapeBase(app=FastAPI(), db_path=sqlite_url)
    guest_only.permission_required(
        Task, role="guest", where=lambda _c: Task.public == True, actions=["read"]  # noqa: E712
    )
    guest_only.permission_required(Task, owner_field="owner_id", actions=["read"])
    assert pins_for(guest_only.policy, Subscriber(view, AuthContext(role="guest"), [], 1)) is None
