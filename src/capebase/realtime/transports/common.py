"""What both transports share: opening a subscription and the message sequence."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection

from ...auth.context import AuthContext
from ...db.failures import classify
from ...limits import check_filter_count
from ..hub import Reset
from ..resume import ResumePoint, format_token
from ..subscribers import CLOSE, NOT_FILTERS, Subscriber, parse_stream_filters

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


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The database failed while replaying; the client should resume from ``token`` later."""

    token: str


def resume_point(header: str | None, query: Mapping[str, str]) -> ResumePoint | None:
    """Where to resume, from ``Last-Event-ID`` or ``?last_event_id=`` (``None``: live only).

    Raises:
        QueryError: 422 when the token is malformed.
    """
    raw = header if header not in (None, "") else query.get("last_event_id")
    if raw is None or raw == "":
        return None
    return ResumePoint.parse(raw)


def client_key(ctx: AuthContext, connection: HTTPConnection) -> str:
    """Who counts against ``max_subscriptions_per_client``: the user, or for anonymous
    callers their network address."""
    if ctx.id is not None:
        return f"user:{ctx.id}"
    address = connection.client.host if connection.client is not None else "unknown"
    return f"address:{address}"


def open_subscription(
    cape: CapeBase,
    published: PublishedModel,
    ctx: AuthContext,
    query: Any,
    *,
    client: str | None = None,
) -> Subscriber:
    """Validate the stream's filters and register it with the hub (before any replay).

    Raises:
        QueryError: a bad filter, or more than ``LimitsConfig.max_filters`` of them.
        TooManySubscriptionsError: the process, or ``client``, has too many streams open.
    """
    params = query.multi_items()
    check_filter_count(params, ignored=NOT_FILTERS, limit=cape.limits.max_filters)
    filters = parse_stream_filters(params, published.fields, max_in=cape.crud_config.max_in_values)
    view = cape.hub.views[published.table.name]
    return cape.hub.subscribe(view, ctx, filters, client=client)


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

    Items are ``Delivery``, ``Reset``, ``HEARTBEAT``, or a final ``Overflowed``, ``EXPIRED``
    (the context's ``expires_at`` passed, or the hub disconnected the user) or
    ``Unavailable`` (the database failed during the replay).
    """
    hub = cape.hub
    expires_at = subscriber.ctx.expires_at
    highest = point.last_id if point else None
    replayed: set[int] = set()
    # What the client already has: up to its token but its holes. A process that is behind
    # the one that issued the token delivers those changes live later; they are skipped.
    had_upto, had_not = (point.last_id, set(point.holes)) if point else (0, set())

    def unsettled() -> list[int]:
        """This process's unsettled ids, less those the client already had."""
        return [h for h in hub.unsettled() if h > had_upto or h in had_not]

    if point is not None:
        resume_from = format_token(point.last_id, point.holes)
        try:
            async with contextlib.aclosing(_in_own_task(hub.replay(subscriber, point))) as replay:
                async for item in replay:
                    if isinstance(item, Reset):
                        yield item
                        highest, had_upto = None, 0
                        break
                    change_id, text = item
                    replayed.add(change_id)
                    highest = change_id if highest is None else max(highest, change_id)
                    resume_from = _token(unsettled(), highest, replayed)
                    yield Delivery(change_id, text, resume_from)
        except Exception as exc:
            if classify(exc) is None:
                raise
            # The database went away mid-replay: end the stream with where to resume from,
            # rather than cutting the connection.
            yield Unavailable(resume_from)
            return
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
                token = _token(unsettled(), highest, replayed) if highest else None
                yield Overflowed(token)
            elif subscriber.revoked:
                yield EXPIRED
            return
        change_id, text = queued
        if change_id in replayed or (change_id <= had_upto and change_id not in had_not):
            continue  # a late commit the replay already sent, or one the client had
        highest = change_id if highest is None else max(highest, change_id)
        yield Delivery(change_id, text, _token(unsettled(), highest, replayed))


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
