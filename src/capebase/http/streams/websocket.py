"""``WS /{table}/subscribe``: the change stream over a WebSocket, same JSON as SSE."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from fastapi import Depends, WebSocket, WebSocketDisconnect

from ...errors import QueryError, TooManySubscriptionsError
from ...identity.context import AuthContext
from ...realtime.dispatcher import Reset
from ..errors import GOING_AWAY, POLICY_VIOLATION, TRY_AGAIN_LATER, close_websocket
from .common import (
    EXPIRED,
    HEARTBEAT,
    Delivery,
    Overflowed,
    Unavailable,
    binding_for,
    client_key,
    open_subscription,
    resume_token,
)
from .disconnect import stop_watching, watch_disconnect
from .stream import Stream

if TYPE_CHECKING:
    from ...crud.published import PublishedModel
    from ..services import RouteServices


def websocket_endpoint(services: RouteServices, published: PublishedModel) -> Any:
    """The WebSocket endpoint of ``published``'s model."""

    async def subscribe_ws(
        websocket: WebSocket, ctx: AuthContext = Depends(services.auth_dependency)
    ) -> None:
        try:
            resume = resume_token(websocket.headers.get("last-event-id"), websocket.query_params)
            binding = binding_for(services, published, ctx, websocket.query_params)
            subscriber = open_subscription(
                services, published, ctx, websocket.query_params, client=client_key(ctx, websocket)
            )
        except (QueryError, TooManySubscriptionsError) as exc:
            # Accepted first: a close before accept is an HTTP 403 to the client, which shows
            # neither the close code nor the reason (browsers hide the status too).
            await close_websocket(websocket, exc)
            return
        watcher = None
        # From here on the subscription is ours to end, whatever fails: a client that hangs
        # up during the handshake makes accept() raise, and a subscriber left in the hub
        # would count against the caller's limit until the process ends.
        try:
            stream = Stream(services.hub, subscriber, resume, binding, services.realtime.heartbeat)
            # A new stream's position, as SSE's ``ready`` event: a client that drops before
            # its first change resumes from here (only the server can issue a token).
            ready = None if resume is not None else stream.opening_token()
            await websocket.accept()
            watcher = watch_disconnect(
                websocket.receive, subscriber.hang_up, "websocket.disconnect"
            )
            if ready is not None:
                await websocket.send_text(json.dumps({"event": "ready", "id": ready}))
            async with contextlib.aclosing(stream.replay()) as replay:
                async for replayed in replay:
                    if not await _send(websocket, replayed[0]):
                        return
            while not stream.ended:
                batch = stream.poll()
                if batch is None:
                    await stream.wait()
                    continue
                for item in batch:
                    if not await _send(websocket, item):
                        return
            if not subscriber.gone:
                await websocket.close(code=GOING_AWAY, reason="server shutting down")
        except WebSocketDisconnect:
            pass
        finally:
            if watcher is not None:
                await stop_watching(watcher)
            services.hub.remove_subscriber(subscriber)

    return subscribe_ws


async def _send(websocket: WebSocket, item: Any) -> bool:
    """Send ``item``; ``False`` once the stream is over (the socket was closed)."""
    if item is HEARTBEAT:
        await websocket.send_text('{"event":"heartbeat"}')
    elif item is EXPIRED:
        await websocket.close(code=POLICY_VIOLATION, reason="credentials expired")
        return False
    elif isinstance(item, Reset):
        await websocket.send_text(
            json.dumps(
                {"event": "reset", "id": item.id, "resume": item.token, "reason": item.reason}
            )
        )
    elif isinstance(item, Unavailable):
        await websocket.send_text(
            json.dumps(
                {
                    "event": "unavailable",
                    "resume": item.token,
                    "reason": item.reason,
                }
            )
        )
        await websocket.close(code=TRY_AGAIN_LATER, reason=item.reason.split(";")[0])
        return False
    elif isinstance(item, Overflowed):
        await websocket.close(code=TRY_AGAIN_LATER, reason=f"too slow; resume from {item.token}")
        return False
    else:
        await websocket.send_text(_with_resume(item))
    return True


def _with_resume(item: Delivery) -> str:
    """The shared JSON text, plus ``"resume"``: the signed token to resume after it."""
    return f'{item.text[:-1]},"resume":"{item.token}"}}'
