"""What both transports share: opening a subscription and the message sequence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
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
        async for item in hub.replay(subscriber, point):
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


def _token(unsettled: list[int], highest: int | None, replayed: set[int]) -> str:
    if highest is None:
        return ""
    return format_token(highest, (h for h in unsettled if h not in replayed))
