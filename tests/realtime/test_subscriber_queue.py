"""A subscriber's filters and its bounded queue, on their own: what a stream filter lets
through, and what is left in the queue when a stream is closed (issue 17: mutants of
``realtime.subscribers`` the stream tests did not reach)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from capebase import AuthContext
from capebase.realtime.subscribers import CLOSE, StreamFilter, StreamQueue, Subscriber
from capebase.realtime.views import ModelView
from tests.realtime._app import Task

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
