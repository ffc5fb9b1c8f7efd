"""What both transports share: opening a subscription and the message sequence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...auth.context import AuthContext
from ...errors import QueryError
from ..hub import Reset
from ..subscribers import CLOSE, Subscriber, parse_stream_filters

if TYPE_CHECKING:
    from ...app import CapeBase
    from ...crud.router import PublishedModel

HEARTBEAT = object()
"""Yielded when a stream was idle for a heartbeat interval."""


EXPIRED = object()
"""Yielded, last, when the subscriber's credentials expired or the user was disconnected."""


@dataclass(frozen=True, slots=True)
class Overflowed:
    """The subscriber fell behind and was dropped; it should resume from ``last_id``."""

    last_id: int | None


def resume_point(header: str | None, query: Mapping[str, str]) -> int | None:
    """The id to resume after, from ``Last-Event-ID`` or ``?last_event_id=``.

    Raises:
        QueryError: 422 when it is not an integer.
    """
    raw = header if header not in (None, "") else query.get("last_event_id")
    if raw in (None, ""):
        return None
    try:
        value = int(str(raw))
    except ValueError as exc:
        raise QueryError(
            f"last_event_id must be an integer change id, got {raw!r}", status_code=422
        ) from exc
    if value < 0:
        raise QueryError("last_event_id must not be negative", status_code=422)
    return value


def open_subscription(
    cape: CapeBase, published: PublishedModel, ctx: AuthContext, query: Any
) -> Subscriber:
    """Validate the stream's filters and register it with the hub (before any replay)."""
    filters = parse_stream_filters(
        query.multi_items(), published.fields, max_in=cape.crud_config.max_in_values
    )
    view = cape.hub.views[published.table.name]
    return cape.hub.subscribe(view, ctx, filters)


async def stream_items(
    cape: CapeBase, subscriber: Subscriber, last_id: int | None, heartbeat: float
) -> AsyncIterator[Any]:
    """The stream: replayed messages, then live ones; HEARTBEAT when idle; Reset; Overflowed.

    Items are ``(id, json_text)`` tuples, ``Reset``, ``HEARTBEAT``, or a final ``Overflowed``
    or ``EXPIRED`` (the context's ``expires_at`` passed, or the hub disconnected the user).
    """
    expires_at = subscriber.ctx.expires_at
    delivered = last_id
    if last_id is not None:
        async for item in cape.hub.replay(subscriber, last_id):
            if isinstance(item, Reset):
                yield item
                delivered = None
                break
            delivered = item[0]
            yield item
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
                yield Overflowed(delivered)
            elif subscriber.revoked:
                yield EXPIRED
            return
        change_id, _text = queued
        if delivered is not None and change_id <= delivered:
            continue  # already sent by the replay
        delivered = change_id
        yield queued
