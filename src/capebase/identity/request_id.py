"""Request ids: one per HTTP request or WebSocket, recorded with every change it makes.

The server makes the id of every request; responses carry it in ``X-Request-ID``. A client may
send its own ``X-Request-ID`` (to tie its logs to ours): that value is recorded apart, as the
*client's* request id, never as the request's own. A client could otherwise pass its changes off
as another request's in the audit trail. It is kept only when printable ASCII, and cut to
``MAX_LENGTH`` characters.
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

_PRINTABLE = re.compile(r"[\x20-\x7e]+")

_current: ContextVar[str | None] = ContextVar("capebase_request_id", default=None)
_client: ContextVar[str | None] = ContextVar("capebase_client_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled (the server's own), or ``None`` outside a request."""
    return _current.get()


def current_client_request_id() -> str | None:
    """The ``X-Request-ID`` the client of the current request sent, as far as it is kept
    (printable ASCII, at most ``MAX_LENGTH`` characters), or ``None``. Unverified: any client
    can send any value."""
    return _client.get()


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
        value = uuid.uuid4().hex
        token = _current.set(value)
        client_token = _client.set(_from_headers(scope))
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
            _client.reset(client_token)
            _current.reset(token)


def _from_headers(scope: Scope) -> str | None:
    """The client's ``X-Request-ID``, cut to ``MAX_LENGTH``; ``None`` when absent, blank or
    not printable ASCII (control characters would forge lines in logs)."""
    for name, raw in scope.get("headers", ()):
        if name == b"x-request-id":
            text = raw.decode("latin-1").strip()
            return text[:MAX_LENGTH] if _PRINTABLE.fullmatch(text) else None
    return None
