"""Request ids: one per HTTP request or WebSocket, recorded with every change it makes.

A client may send ``X-Request-ID`` (a short token, to tie its logs to ours); otherwise one is
generated. Responses carry it back in ``X-Request-ID``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
MAX_LENGTH = 64
_VALID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}")

_current: ContextVar[str | None] = ContextVar("capebase_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    return _current.get()


@contextmanager
def use_request_id(value: str) -> Iterator[str]:
    """Attribute the changes made inside the block to ``value`` (a job id, say).

    Example::

        with use_request_id("nightly-import-42"):
            async with cape.get_privileged_session() as session: ...
    """
    if not _VALID.fullmatch(value):
        raise ValueError(f"a request id is 1-{MAX_LENGTH} letters, digits or . _ : -")
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


class RequestIdMiddleware:
    """Pure ASGI middleware: sets the current request id and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        value = _from_headers(scope) or uuid.uuid4().hex
        token = _current.set(value)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = MutableHeaders(scope=message)
                    if HEADER not in headers:
                        headers.append(HEADER, value)
                await send(message)

            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


def _from_headers(scope: Scope) -> str | None:
    for name, raw in scope.get("headers", ()):
        if name == b"x-request-id":
            text = raw.decode("latin-1")
            return text if _VALID.fullmatch(text) else None
    return None
