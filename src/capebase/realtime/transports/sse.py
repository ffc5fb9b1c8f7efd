"""``GET /{table}/subscribe``: the change stream as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from ...auth.context import AuthContext
from ..hub import Reset, TooManySubscriptionsError
from .common import EXPIRED, HEARTBEAT, Overflowed, open_subscription, resume_point, stream_items

if TYPE_CHECKING:
    from ...app import CapeBase
    from ...crud.router import PublishedModel


def sse_endpoint(cape: CapeBase, published: PublishedModel) -> Any:
    """The SSE endpoint of ``published``'s model."""

    async def subscribe_sse(
        request: Request,
        ctx: AuthContext = Depends(cape.auth_dependency),
        last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    ) -> Any:
        resume = resume_point(last_event_id, request.query_params)
        try:
            subscriber = open_subscription(cape, published, ctx, request.query_params)
        except TooManySubscriptionsError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=429)
        heartbeat = cape.realtime_config.heartbeat

        async def events() -> AsyncIterator[ServerSentEvent]:
            try:
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
                    elif isinstance(item, Overflowed):
                        yield ServerSentEvent(
                            data=json.dumps(
                                {
                                    "event": "overflow",
                                    "last_id": item.last_id,
                                    "reason": "subscriber too slow; reconnect to resume",
                                }
                            ),
                            event="overflow",
                        )
                    else:
                        change_id, text = item
                        yield ServerSentEvent(data=text, id=str(change_id))
            finally:
                cape.hub.unsubscribe(subscriber)

        return EventSourceResponse(events(), ping=None, headers={"Cache-Control": "no-store"})

    return subscribe_sse
