"""A lean ``text/event-stream`` ASGI response: one stream's batches, each written at once.

sse-starlette's ``EventSourceResponse`` runs a task group of four tasks per stream (and a
timeout task per message); an idle stream cost about 64 KB with it, against a 20 KB budget.
This response is the ASGI call itself plus one task that waits for the client to leave.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ...realtime.dispatcher import Reset
from .common import EXPIRED, HEARTBEAT, Overflowed, Unavailable
from .disconnect import stop_watching, watch_disconnect

if TYPE_CHECKING:
    from .stream import Stream

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events on as they come
]
HEARTBEAT_FRAME = ": heartbeat\r\n\r\n"
EXPIRED_FRAME = (
    'event: expired\r\ndata: {"event":"expired","reason":"credentials expired or revoked"}\r\n\r\n'
)


def event_frame(
    data: str, *, event: str | None = None, id: str | None = None, retry: int | None = None
) -> str:
    """One event, as sse-starlette wrote it: ``id:``, ``event:``, ``data:``, ``retry:``.

    ``data`` is one line of JSON and ``id`` a resume token, so neither needs splitting.
    """
    head = "" if id is None else f"id: {id}\r\n"
    if event is not None:
        head += f"event: {event}\r\n"
    tail = "" if retry is None else f"retry: {retry}\r\n"
    return f"{head}data: {data}\r\n{tail}\r\n"


class EventStreamResponse(Response):
    """Streams ``stream``'s items as Server-Sent Events until it ends or the client leaves,
    then removes its subscriber from the hub.

    Args:
        stream: the subscriber's item sequence.
        first: a frame to send right after the headers (the ``ready`` event), or ``""``.
        retry_ms: the ``retry:`` advice sent with ``unavailable``.
    """

    # Slots: no per-stream __dict__. A Response subclass, so that FastAPI passes it through
    # (and may attach background tasks).
    __slots__ = ("_first", "_retry_ms", "_stream", "background")

    def __init__(self, stream: Stream, *, first: str, retry_ms: int) -> None:
        self._stream = stream
        self._first = first
        self._retry_ms = retry_ms
        self.background: BackgroundTask | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self._stream
        watcher = watch_disconnect(receive, stream.subscriber.hang_up, "http.disconnect")
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            if self._first:
                await send(_body(self._first))
            async with contextlib.aclosing(stream.replay()) as replay:
                async for replayed in replay:
                    await send(_body(self._frame(replayed[0])))
            while not stream.ended:
                batch = stream.poll()
                if batch is None:
                    await stream.wait()
                elif batch:
                    frames = [self._frame(item) for item in batch]
                    await send(_body(frames[0] if len(frames) == 1 else "".join(frames)))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await stop_watching(watcher)
            stream.hub.remove_subscriber(stream.subscriber)
        if self.background is not None:
            await self.background()

    def _frame(self, item: Any) -> str:
        if item is HEARTBEAT:
            return HEARTBEAT_FRAME
        if item is EXPIRED:
            return EXPIRED_FRAME
        if isinstance(item, Reset):
            data = json.dumps(
                {"event": "reset", "id": item.id, "resume": item.token, "reason": item.reason}
            )
            return event_frame(data, event="reset", id=item.token)
        if isinstance(item, Unavailable):
            data = json.dumps(
                {
                    "event": "unavailable",
                    "resume": item.token,
                    "reason": item.reason,
                }
            )
            return event_frame(data, event="unavailable", id=item.token, retry=self._retry_ms)
        if isinstance(item, Overflowed):
            data = json.dumps(
                {
                    "event": "overflow",
                    "resume": item.token,
                    "reason": "subscriber too slow; reconnect to resume",
                }
            )
            return event_frame(data, event="overflow")
        return f"id: {item.token}\r\ndata: {item.text}\r\n\r\n"


def _body(text: str) -> dict[str, Any]:
    return {"type": "http.response.body", "body": text.encode(), "more_body": True}
