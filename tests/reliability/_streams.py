"""Stream clients for the reliability tests and the soak.

A ``StreamClient`` is one logical subscriber over SSE or WebSocket: it records the change
messages it receives and keeps its resume token, so it can disconnect (or be dropped) and
connect again without losing anything. It can also read slowly, or vanish mid-stream.
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import websockets
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect as ws_connect

from tests.realtime._live import wait_until as _wait_until

Transport = Literal["sse", "ws"]
CONTROL_EVENTS = frozenset({"ready", "reset", "overflow", "unavailable", "expired"})
TIMEOUT = 10.0


async def wait_until(
    predicate: Callable[[], Any], *, within: float = TIMEOUT, what: str = "a condition"
) -> Any:
    """``tests.realtime._live.wait_until`` with this suite's longer default (servers restart
    here)."""
    return await _wait_until(predicate, within=within, what=what)


@dataclass
class StreamClient:
    """One subscriber of ``path`` on ``base_url`` (``http://``), over SSE or WebSocket."""

    base_url: str
    path: str
    transport: Transport
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    token: str | None = None
    """Where the next connection resumes from: the last token received (or given)."""
    delay: float = 0.0
    """Seconds to sleep after each message: a slow reader."""
    receive_buffer: int | None = None
    """A small kernel receive buffer (bytes), so a slow reader holds the server up sooner."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Change messages, in arrival order, across every connection."""
    controls: list[dict[str, Any]] = field(default_factory=list)
    """``reset``, ``overflow``, ``unavailable`` and ``expired`` messages."""
    status: int | None = None
    close_code: int | None = None
    error: BaseException | None = None
    connections: int = 0
    _task: asyncio.Task[None] | None = None
    _opened: asyncio.Event = field(default_factory=asyncio.Event)
    _ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_open(self) -> bool:
        return self._task is not None and not self._ended.is_set()

    @property
    def ids(self) -> list[int]:
        return [int(m["id"]) for m in self.messages]

    async def connect(self) -> None:
        """Open a connection, resuming from ``token``; returns once the server answered."""
        await self.disconnect()
        self._opened, self._ended = asyncio.Event(), asyncio.Event()
        self.status = self.close_code = None
        self.error = None
        self.connections += 1
        self._task = asyncio.create_task(self._run(), name=f"stream-{self.transport}")
        await wait_until(
            lambda: self._opened.is_set() or self._ended.is_set(),
            what=f"the {self.transport} stream to open",
        )

    async def disconnect(self) -> None:
        """Close the connection abruptly (as a client that vanishes does)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def ended(self, within: float = TIMEOUT) -> None:
        """Wait until the server ended the current connection."""
        await wait_until(self._ended.is_set, within=within, what="the stream to end")

    def _record(self, data: dict[str, Any], sse_id: str | None = None) -> None:
        kind = data.get("event")
        if kind == "heartbeat":
            return
        if kind in CONTROL_EVENTS:
            if kind == "ready":
                self.token = str(data["id"])
                return
            self.controls.append(data)
            if data.get("resume"):  # reset, overflow, unavailable
                self.token = str(data["resume"])
            return
        resume = data.pop("resume", None)  # this stream's own token; the change is shared
        self.messages.append(data)
        self.token = sse_id or resume or str(data["id"])

    async def _run(self) -> None:
        try:
            if self.transport == "sse":
                await self._read_sse()
            else:
                await self._read_ws()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # recorded for the caller to inspect
            self.error = error
        finally:
            self._ended.set()

    def _closed(self, code: int | None, reason: str | None) -> None:
        self.close_code = code
        if code == 1013 and (reason or "").startswith("too slow"):
            self.controls.append({"event": "overflow", "reason": reason})  # as SSE reports it

    def _resume_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.token:
            headers["Last-Event-ID"] = self.token
        return headers

    async def _read_sse(self) -> None:
        options = (
            [(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)]
            if self.receive_buffer
            else None
        )
        transport = httpx.AsyncHTTPTransport(socket_options=options)
        async with (
            httpx.AsyncClient(
                base_url=self.base_url, timeout=httpx.Timeout(30), transport=transport
            ) as client,
            aconnect_sse(
                client, "GET", self.path, headers=self._resume_headers(), params=self.params
            ) as source,
        ):
            self.status = source.response.status_code
            self._opened.set()
            if self.status != 200:
                await source.response.aread()
                self.controls.append(
                    {"event": "refused", "status": self.status, "body": source.response.text}
                )
                return
            async for event in source.aiter_sse():
                if not event.data:
                    continue  # the blank line after a heartbeat comment
                self._record(json.loads(event.data), event.id if event.event == "message" else None)
                if self.delay:
                    await asyncio.sleep(self.delay)

    async def _read_ws(self) -> None:
        uri = self.base_url.replace("http://", "ws://", 1) + self.path
        if self.params:
            uri += "?" + str(httpx.QueryParams(dict(self.params)))
        extra: dict[str, Any] = {}
        if self.receive_buffer:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
            sock.setblocking(False)
            host, port = httpx.URL(self.base_url).host, httpx.URL(self.base_url).port
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            extra["sock"] = sock
        try:
            async with ws_connect(
                uri,
                additional_headers=self._resume_headers(),
                proxy=None,
                open_timeout=TIMEOUT,
                max_queue=4 if self.delay else 16,
                **extra,
            ) as websocket:
                self.status = 101
                self._opened.set()
                async for text in websocket:
                    self._record(json.loads(text))
                    if self.delay:
                        await asyncio.sleep(self.delay)
            self._closed(websocket.close_code, websocket.close_reason)
        except websockets.ConnectionClosed as closed:
            rcvd = closed.rcvd
            self._closed(rcvd.code if rcvd else None, rcvd.reason if rcvd else None)
        except websockets.InvalidStatus as refused:
            self.status = refused.response.status_code
            self._opened.set()
