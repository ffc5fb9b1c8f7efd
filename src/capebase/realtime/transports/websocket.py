"""``WS /{table}/subscribe``: the change stream over a WebSocket, same JSON as SSE."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from fastapi import Depends, WebSocket, WebSocketDisconnect

from ...auth.context import AuthContext
from ...errors import QueryError
from ..hub import Reset, TooManySubscriptionsError
from .common import (
    EXPIRED,
    HEARTBEAT,
    Delivery,
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

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


def websocket_endpoint(cape: CapeBase, published: PublishedModel) -> Any:
    """The WebSocket endpoint of ``published``'s model."""

    async def subscribe_ws(
        websocket: WebSocket, ctx: AuthContext = Depends(cape.auth_dependency)
    ) -> None:
        try:
            resume = resume_point(websocket.headers.get("last-event-id"), websocket.query_params)
            subscriber = open_subscription(
                cape, published, ctx, websocket.query_params, client=client_key(ctx, websocket)
            )
        except (QueryError, TooManySubscriptionsError) as exc:
            # Accept first: a close before accept is an HTTP 403 to the client, which shows
            # neither the close code nor the reason (browsers hide the status too).
            code = POLICY_VIOLATION if isinstance(exc, QueryError) else TRY_AGAIN_LATER
            await websocket.accept()
            await websocket.close(code=code, reason=str(exc)[:120])
            return
        await websocket.accept()
        watcher = asyncio.create_task(_wait_for_disconnect(websocket))
        try:
            async for item in _race(
                stream_items(cape, subscriber, resume, cape.realtime_config.heartbeat), watcher
            ):
                if item is HEARTBEAT:
                    await websocket.send_text('{"event":"heartbeat"}')
                elif item is EXPIRED:
                    await websocket.close(code=POLICY_VIOLATION, reason="credentials expired")
                    return
                elif isinstance(item, Reset):
                    await websocket.send_text(
                        json.dumps({"event": "reset", "id": item.id, "reason": item.reason})
                    )
                elif isinstance(item, Unavailable):
                    await websocket.send_text(
                        json.dumps(
                            {
                                "event": "unavailable",
                                "resume": item.token,
                                "reason": "database unavailable; reconnect to resume",
                            }
                        )
                    )
                    await websocket.close(code=TRY_AGAIN_LATER, reason="database unavailable")
                    return
                elif isinstance(item, Overflowed):
                    await websocket.close(
                        code=TRY_AGAIN_LATER, reason=f"too slow; resume from {item.token}"
                    )
                    return
                else:
                    await websocket.send_text(_with_resume(item))
            if not watcher.done():
                await websocket.close(code=1001, reason="server shutting down")
        except WebSocketDisconnect:
            pass
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            cape.hub.unsubscribe(subscriber)

    return subscribe_ws


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def _with_resume(item: Delivery) -> str:
    """The shared JSON text, plus ``"resume"`` when the token says more than the id does."""
    if item.token == str(item.change_id):
        return item.text
    return f'{item.text[:-1]},"resume":"{item.token}"}}'


async def _race(items: Any, watcher: asyncio.Task[None]) -> Any:
    """Items from ``items`` until ``watcher`` (the client's disconnect) finishes."""
    iterator = items.__aiter__()
    try:
        while True:
            step = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({step, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if step not in done:
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await step
                return
            try:
                yield step.result()
            except StopAsyncIteration:
                return
    finally:
        await iterator.aclose()
