"""``GET /{table}/subscribe``: the change stream as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from ...auth.context import AuthContext
from ..hub import Reset, TooManySubscriptionsError
from ..resume import format_token
from .common import (
    EXPIRED,
    HEARTBEAT,
    Overflowed,
    Unavailable,
    client_key,
    open_subscription,
    resume_point,
    stream_items,
)

if TYPE_CHECKING:
    from ...app import CapeBase
    from ...crud.router import PublishedModel

SHUTDOWN_GRACE = 5.0
"""Seconds a stream gets to end by itself at server shutdown before it is cut."""


def sse_endpoint(cape: CapeBase, published: PublishedModel) -> Any:
    """The SSE endpoint of ``published``'s model."""

    async def subscribe_sse(
        request: Request,
        ctx: AuthContext = Depends(cape.auth_dependency),
        last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    ) -> Any:
        resume = resume_point(last_event_id, request.query_params)
        try:
            subscriber = open_subscription(
                cape, published, ctx, request.query_params, client=client_key(ctx, request)
            )
        except TooManySubscriptionsError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=429)
        heartbeat = cape.realtime_config.heartbeat

        # A new stream's position, so a client that drops before the first change can still
        # resume from here (EventSource keeps the last ``id:`` it saw).
        opened_at = None if resume else format_token(cape.hub.cursor, cape.hub.unsettled())

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:
                if opened_at is not None:
                    yield ServerSentEvent(
                        data=json.dumps({"event": "ready", "id": opened_at}),
                        event="ready",
                        id=opened_at,
                    )
                async for item in stream_items(cape, subscriber, resume, heartbeat):
                    if item is HEARTBEAT:
                        yield ServerSentEvent(comment="heartbeat")
                    elif item is EXPIRED:
                        yield ServerSentEvent(
                            data='{"event":"expired","reason":"credentials expired or revoked"}',
                            event="expired",
                        )
                    elif isinstance(item, Reset):
                        yield ServerSentEvent(
                            data=json.dumps(
                                {"event": "reset", "id": item.id, "reason": item.reason}
                            ),
                            event="reset",
                            id=str(item.id),
                        )
                    elif isinstance(item, Unavailable):
                        yield ServerSentEvent(
                            data=json.dumps(
                                {
                                    "event": "unavailable",
                                    "resume": item.token,
                                    "reason": "database unavailable; reconnect to resume",
                                }
                            ),
                            event="unavailable",
                            id=item.token,
                            retry=cape.limits.retry_after * 1000,
                        )
                    elif isinstance(item, Overflowed):
                        yield ServerSentEvent(
                            data=json.dumps(
                                {
                                    "event": "overflow",
                                    "resume": item.token,
                                    "reason": "subscriber too slow; reconnect to resume",
                                }
                            ),
                            event="overflow",
                        )
                    else:
                        yield ServerSentEvent(data=item.text, id=item.token)
            finally:
                cape.hub.unsubscribe(subscriber)

        shutdown = anyio.Event()

        async def end_on_shutdown() -> None:
            # sse-starlette sets ``shutdown`` when the server is stopping; ending the stream
            # ourselves finishes the response properly instead of cutting the connection.
            await shutdown.wait()
            subscriber.close()

        return EventSourceResponse(
            events(),
            ping=None,
            headers={"Cache-Control": "no-store"},
            data_sender_callable=end_on_shutdown,
            shutdown_event=shutdown,
            shutdown_grace_period=SHUTDOWN_GRACE,
        )

    return subscribe_sse
