"""What both transports share: opening a subscription and the message sequence."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...auth.context import AuthContext
from ..hub import Reset
from ..resume import ResumePoint, format_token
from ..subscribers import CLOSE, Subscriber, parse_stream_filters

if TYPE_CHECKING:
    from ...app import CapeBase
    from ...crud.router import PublishedModel

HEARTBEAT = object()
"""Yielded when a stream was idle for a heartbeat interval."""

REPLAY_BUFFER = 64
"""Replayed messages read ahead of the client."""


EXPIRED = object()
"""Yielded, last, when the subscriber's credentials expired or the user was disconnected."""


@dataclass(frozen=True, slots=True)
class Overflowed:
    """The subscriber fell behind and was dropped; it should resume from ``token``."""

    token: str | None


def resume_point(header: str | None, query: Mapping[str, str]) -> ResumePoint | None:
    """Where to resume, from ``Last-Event-ID`` or ``?last_event_id=`` (``None``: live only).

    Raises:
        QueryError: 422 when the token is malformed.
    """
    raw = header if header not in (None, "") else query.get("last_event_id")
    if raw is None or raw == "":
        return None
    return ResumePoint.parse(raw)


def open_subscription(
    cape: CapeBase, published: PublishedModel, ctx: AuthContext, query: Any
) -> Subscriber:
    """Validate the stream's filters and register it with the hub (before any replay)."""
    filters = parse_stream_filters(
        query.multi_items(), published.fields, max_in=cape.crud_config.max_in_values
    )
    view = cape.hub.views[published.table.name]
    return cape.hub.subscribe(view, ctx, filters)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One change for the client: its JSON text and the token to resume after it."""

    change_id: int
    text: str
    token: str


async def stream_items(
    cape: CapeBase, subscriber: Subscriber, point: ResumePoint | None, heartbeat: float
) -> AsyncIterator[Any]:
    """The stream: replayed deliveries, then live ones; HEARTBEAT when idle; Reset.

    Items are ``Delivery``, ``Reset``, ``HEARTBEAT``, or a final ``Overflowed`` or ``EXPIRED``
    (the context's ``expires_at`` passed, or the hub disconnected the user).
    """
    hub = cape.hub
    expires_at = subscriber.ctx.expires_at
    highest = point.last_id if point else None
    replayed: set[int] = set()
    if point is not None:
        async with contextlib.aclosing(_in_own_task(hub.replay(subscriber, point))) as replay:
            async for item in replay:
                if isinstance(item, Reset):
                    yield item
                    highest = None
                    break
                change_id, text = item
                replayed.add(change_id)
                highest = change_id if highest is None else max(highest, change_id)
                yield Delivery(change_id, text, _token(hub.unsettled(), highest, replayed))
    while True:
        wait = heartbeat
        if expires_at is not None:
            remaining = (expires_at - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                yield EXPIRED
                return
            wait = min(wait, remaining)
        try:
            queued: Any = await asyncio.wait_for(subscriber.queue.get(), wait)
        except TimeoutError:
            if expires_at is None or datetime.now(UTC) < expires_at:
                yield HEARTBEAT
            continue
        if queued is CLOSE:
            if subscriber.overflowed:
                token = _token(hub.unsettled(), highest, replayed) if highest else None
                yield Overflowed(token)
            elif subscriber.revoked:
                yield EXPIRED
            return
        change_id, text = queued
        if change_id in replayed:
            continue  # a late commit the replay already sent
        highest = change_id if highest is None else max(highest, change_id)
        yield Delivery(change_id, text, _token(hub.unsettled(), highest, replayed))


async def _in_own_task(items: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """``items``, produced by a task of their own through a small bounded queue.

    The replay reads the database. A client that disconnects mid-query cancels the stream, and
    under anyio (sse-starlette) it is cancelled again at every await: SQLAlchemy then terminates
    the connection instead of returning it, which with aiosqlite leaves a task pending forever.
    The reading task gets a single plain cancel instead and closes its generator itself.
    """
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=REPLAY_BUFFER)

    async def pump() -> None:
        try:
            async for item in items:
                await queue.put((True, item))
        except Exception as exc:
            await queue.put((False, exc))
            return
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()
        await queue.put((False, None))

    task = asyncio.create_task(pump(), name="capebase-replay")
    try:
        while True:
            is_item, value = await queue.get()
            if not is_item:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        task.cancel()
        # When we are being cancelled this wait is cut short at once; the task still ends by
        # itself, right after its current query.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})


def _token(unsettled: list[int], highest: int | None, replayed: set[int]) -> str:
    if highest is None:
        return ""
    return format_token(highest, (h for h in unsettled if h not in replayed))
