"""A stream subscriber: who it is, what it filters on, and its bounded queue."""

from __future__ import annotations

import asyncio
from typing import Any

from ..filters.streams import StreamCondition
from ..identity.context import AuthContext
from .views import ModelView, Selection

CLOSE = object()
"""Queue item that ends a stream (shutdown, or the subscriber fell behind)."""


class StreamQueue:
    """A bounded FIFO read by one stream, with one reusable wake-up.

    ``asyncio.Queue`` keeps three deques and makes a future per ``get``; a stream has exactly
    one reader, which takes what is queued in batches, so a list and at most one pending
    future do (an idle stream holds an empty list, not a deque's 64-slot block).
    """

    __slots__ = ("_items", "_maxsize", "_waiter")

    def __init__(self, maxsize: int) -> None:
        self._items: list[Any] = []
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        """Items queued."""
        return len(self._items)

    def empty(self) -> bool:
        """Whether nothing is queued."""
        return not self._items

    def full(self) -> bool:
        """Whether ``put_nowait`` would raise ``asyncio.QueueFull``."""
        return len(self._items) >= self._maxsize

    def put_nowait(self, item: Any, *, force: bool = False) -> None:
        """Queue ``item`` and wake the reader; ``force`` ignores the bound (for CLOSE).

        Raises:
            asyncio.QueueFull: the queue holds ``maxsize`` items.
        """
        if not force and len(self._items) >= self._maxsize:
            raise asyncio.QueueFull
        self._items.append(item)
        self.wake()

    def get_nowait(self) -> Any:
        """The oldest item.

        Raises:
            asyncio.QueueEmpty: nothing is queued.
        """
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def take(self, limit: int) -> list[Any]:
        """The oldest ``limit`` items at most, oldest first."""
        items = self._items
        if len(items) <= limit:
            self._items = []
            return items
        self._items = items[limit:]
        return items[:limit]

    def clear(self) -> None:
        """Drop everything queued."""
        self._items = []

    def wake(self) -> None:
        """Complete the reader's current waiter (an item came, a timer fired, the client left)."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def waiter(self) -> asyncio.Future[None]:
        """A future done once something is queued or ``wake`` is called (done already if
        something is queued). Only the latest waiter is woken."""
        waiter = asyncio.get_running_loop().create_future()
        if self._items:
            waiter.set_result(None)
        else:
            self._waiter = waiter
        return waiter


class Subscriber:
    """One open stream. Its queue is bounded; when it is full the subscriber is dropped."""

    __slots__ = (
        "closed", "ctx", "failed", "filters", "gone", "overflowed", "queue", "revoked",
        "selection", "view",
    )

    def __init__(
        self,
        view: ModelView,
        ctx: AuthContext,
        filters: list[StreamCondition],
        queue_size: int,
        selection: Selection = None,
    ) -> None:
        self.view = view
        self.ctx = ctx
        self.filters = filters
        self.selection = selection
        self.queue = StreamQueue(queue_size)
        self.closed = False
        self.overflowed = False
        self.revoked = False
        self.failed = False  # its read rule failed in the database; set by the dispatcher
        self.gone = False  # the client left; set by the transport through hang_up()

    def passes_filters(self, image: dict[str, Any] | None) -> bool:
        """Whether ``image`` exists and satisfies every filter of this stream."""
        if image is None:
            return False
        return not self.filters or all(f.matches(image) for f in self.filters)

    def offer(self, item: Any) -> None:
        """Queue ``item`` without waiting; a full queue closes the subscriber instead."""
        if self.closed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            self.close()

    def close(self) -> None:
        """End the stream: the transport sees CLOSE next (or right away when overflowed)."""
        if self.closed:
            return
        self.closed = True
        if self.overflowed or self.queue.full():
            # Drop the backlog: the client resumes from its last id anyway.
            self.queue.clear()
        self.queue.put_nowait(CLOSE, force=True)

    def hang_up(self) -> None:
        """The client disconnected: wake the stream so that it ends and unsubscribes."""
        self.gone = True
        self.queue.wake()
