"""The request body size guard (``LimitsConfig.max_body_size``): 413 above it."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import body_too_large


class BodySizeLimit:
    """Pure ASGI middleware: a request body larger than ``max_body_size`` bytes gets 413.

    A declared ``Content-Length`` above the limit is refused before anything is read; a body
    without one (chunked) is counted as it arrives and refused as soon as it passes the limit.
    The check happens when the app reads the body, so requests nobody reads cost nothing, and
    a route's own FastAPI ``max_body_size`` (decided at routing) takes precedence.
    """

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            if getattr(scope.get("route"), "max_body_size", None) is not None:
                return await receive()  # the route set its own limit; FastAPI enforces it
            if received == 0:
                declared = _content_length(scope)
                if declared is not None and declared > self.max_body_size:
                    raise body_too_large(self.max_body_size)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    raise body_too_large(self.max_body_size)
            return message

        await self.app(scope, receive_limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
