"""``GET /{table}/subscribe``: the change stream as Server-Sent Events."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from ...auth.context import AuthContext
from ..hub import TooManySubscriptionsError
from ..resume import format_token
from .common import client_key, open_subscription, resume_point
from .eventstream import EventStreamResponse, event_frame
from .stream import Stream

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
            subscriber = open_subscription(
                cape, published, ctx, request.query_params, client=client_key(ctx, request)
            )
        except TooManySubscriptionsError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=429)
        ready = ""
        if resume is None:
            # A new stream's position, so a client that drops before the first change can
            # still resume from here (EventSource keeps the last ``id:`` it saw).
            opened_at = format_token(cape.hub.cursor, cape.hub.unsettled())
            data = json.dumps({"event": "ready", "id": opened_at})
            ready = event_frame(data, event="ready", id=opened_at)
        return EventStreamResponse(
            Stream(cape.hub, subscriber, resume, cape.realtime_config.heartbeat),
            first=ready,
            retry_ms=cape.limits.retry_after * 1000,
        )

    return subscribe_sse
