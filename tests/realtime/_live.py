"""A real uvicorn server in the test's event loop, and SSE and WebSocket clients that record.

Everything waits by bounded polling (``wait_until``), never by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
import websockets
from fastapi import FastAPI
from httpx_sse import aconnect_sse
from sqlalchemy import func, select
from websockets.asyncio.client import connect as ws_connect

from capebase import AuthContext, CapeBase
from capebase.changes.changelog import changes

TIMEOUT = 5.0


async def wait_until(
    predicate: Callable[[], Any], *, within: float = TIMEOUT, what: str = "a condition"
) -> Any:
    """Poll ``predicate`` (sync or async) until it is truthy; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


def free_socket(send_buffer: int | None = None) -> socket.socket:
    """A listening-ready TCP socket on a free 127.0.0.1 port.

    ``send_buffer`` fixes the kernel send buffer of the connections it accepts (Linux copies
    it from the listening socket), so a client that stops reading stalls the server sooner.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class LiveServer:
    """A uvicorn server running ``app`` as a task of the current event loop."""

    app: FastAPI
    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        """Ask uvicorn to exit (as on SIGTERM) and wait for it; fail if it hangs."""
        self.server.should_exit = True
        await asyncio.wait_for(asyncio.shield(self.task), 15)


@asynccontextmanager
async def serve(app: FastAPI, *, send_buffer: int | None = None) -> AsyncIterator[LiveServer]:
    """Run ``app`` under uvicorn (lifespan on) on a free port until the block ends."""
    sock = free_socket(send_buffer)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False, timeout_graceful_shutdown=10
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    live = LiveServer(app, server, task, port)
    try:
        await wait_until(lambda: server.started or task.done(), what="uvicorn to start")
        if task.done():
            task.result()
            raise AssertionError("uvicorn exited during startup")
        yield live
    finally:
        if not task.done():
            await live.stop()
        sock.close()


async def last_change_id(cape: CapeBase) -> int:
    async with cape.engine.connect() as connection:
        return (await connection.execute(select(func.max(changes.c.id)))).scalar() or 0


async def dispatched(cape: CapeBase) -> int:
    """Wait until the hub has dispatched every committed change; return the last id."""
    last = await last_change_id(cape)
    await wait_until(lambda: cape.hub.cursor >= last, what=f"dispatch up to change {last}")
    return last


@dataclass
class Recorded:
    """What a stream client has received so far."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    """Change messages (decoded JSON), in arrival order."""
    tokens: list[str] = field(default_factory=list)
    """Resume tokens of change messages: SSE ``id:`` (WebSocket: ``resume`` or the ``id``)."""
    controls: list[dict[str, Any]] = field(default_factory=list)
    """``reset``, ``overflow``, ``expired`` and ``unavailable`` messages (and a refusal's
    error body)."""
    ready: list[dict[str, Any]] = field(default_factory=list)
    """The SSE ``ready`` event that opens a stream without a resume point."""
    heartbeats: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    close_code: int | None = None
    error: BaseException | None = None

    def events(self) -> list[tuple[str, int]]:
        """``(event, row id)`` of each change message."""
        return [(m["event"], m["payload"]["id"]) for m in self.messages]

    def titles(self) -> list[tuple[str, str | None]]:
        """``(event, title)`` of each change message (DELETE payloads carry no title)."""
        return [(m["event"], m["payload"].get("title")) for m in self.messages]

    async def wait_for_title(self, title: str, within: float = TIMEOUT) -> None:
        await wait_until(
            lambda: (
                any(m["payload"].get("title") == title for m in self.messages)
                or self.ended.is_set()
            ),
            within=within,
            what=f"a message about {title!r}",
        )
        if not any(m["payload"].get("title") == title for m in self.messages):
            raise AssertionError(f"stream ended before {title!r}: {self} ")

    def _record(self, data: dict[str, Any], sse_id: str | None = None) -> None:
        kind = data.get("event")
        if kind == "heartbeat":
            self.heartbeats += 1
        elif kind == "ready":
            self.ready.append(data)
        elif kind in ("reset", "overflow", "expired", "unavailable"):
            self.controls.append(data)
        else:
            # A WebSocket message carries its stream's own token; the change itself is shared.
            resume = data.pop("resume", None)
            self.messages.append(data)
            self.tokens.append(sse_id or resume or str(data["id"]))

    @property
    def ids(self) -> list[int]:
        """Change ids of the change messages, in arrival order."""
        return [m["id"] for m in self.messages]


class Stream:
    """A change stream client reading in the background; use ``async with``."""

    def __init__(self) -> None:
        self.got = Recorded()
        self.opened = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recorded:
        self._task = asyncio.create_task(self._run())
        await wait_until(
            lambda: self.opened.is_set() or self.got.ended.is_set(), what="the stream to open"
        )
        return self.got

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        try:
            await self._read()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # recorded for the test to inspect
            self.got.error = error
        finally:
            self.got.ended.set()

    async def _read(self) -> None:
        raise NotImplementedError


class SSEStream(Stream):
    """``GET {path}`` as Server-Sent Events, through httpx and httpx_sse."""

    def __init__(
        self,
        url: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.url, self.path = url, path
        self.headers, self.params = dict(headers or {}), dict(params or {})

    async def _read(self) -> None:
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(30)) as client,
            aconnect_sse(
                client, "GET", self.path, headers=self.headers, params=self.params
            ) as source,
        ):
            self.got.status = source.response.status_code
            if source.response.status_code != 200:
                await source.response.aread()
                self.got.controls.append(source.response.json())
                self.opened.set()
                return
            self.opened.set()
            async for event in source.aiter_sse():
                if not event.data:
                    # httpx_sse dispatches the blank line after a comment (our heartbeat) as
                    # an empty event once an id was seen; the SSE spec drops it.
                    continue
                data = json.loads(event.data)
                if event.event == "message":
                    self.got._record(data, event.id)
                else:
                    assert data["event"] == event.event, event
                    self.got._record(data)


class WSStream(Stream):
    """``WS {path}`` through the ``websockets`` client."""

    def __init__(
        self,
        url: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        query = str(httpx.QueryParams(params or {}))
        self.uri = f"{url}{path}" + (f"?{query}" if query else "")
        self.headers = dict(headers or {})

    async def _read(self) -> None:
        try:
            async with ws_connect(
                self.uri, additional_headers=self.headers, proxy=None, open_timeout=TIMEOUT
            ) as websocket:
                self.got.status = 101
                self.opened.set()
                async for text in websocket:
                    self.got._record(json.loads(text))
        except websockets.ConnectionClosed as closed:
            self.got.close_code = closed.rcvd.code if closed.rcvd is not None else None
            return
        except websockets.InvalidStatus as refused:
            self.got.status = refused.response.status_code
            return
        # A clean close ends the ``async for``; record its code too.
        self.got.close_code = websocket.close_code


def sse(live: LiveServer, headers: Mapping[str, str] | None = None, **params: Any) -> SSEStream:
    """An SSE client of ``/rt_task/subscribe`` as the caller ``headers`` name."""
    return SSEStream(live.url, "/rt_task/subscribe", headers, _params(params))


def ws(live: LiveServer, headers: Mapping[str, str] | None = None, **params: Any) -> WSStream:
    """A WebSocket client of ``/rt_task/subscribe`` as the caller ``headers`` name."""
    return WSStream(live.ws_url, "/rt_task/subscribe", headers, _params(params))


def minted(
    cape: CapeBase,
    position: str,
    user: str | None,
    table: str = "rt_task",
    filters: Mapping[str, str] | None = None,
) -> str:
    """A token the server would have issued at ``position`` to ``user``'s stream of ``table``
    with ``filters`` (to resume from a chosen point, as a client that was there could)."""
    binding = cape.hub.binding(table, AuthContext(id=user), list((filters or {}).items()))
    return cape.hub.tokens.issue(binding, position)


def position(token: str) -> str:
    """The position a signed resume token names (``"41~38"`` of ``"41~38.<issued>.<mac>"``)."""
    return token.partition(".")[0]


def _params(params: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in params.items()}


async def refusal(
    app: FastAPI, cape: CapeBase, headers: Mapping[str, str], **params: Any
) -> tuple[int, str]:
    """Open ``params``' stream over SSE and WebSocket, expect both refused before any event
    (WebSocket: close 1008, no subscriber left): the SSE status and its ``detail``."""
    async with serve(app) as live:
        async with sse(live, headers, **params) as over_sse:
            await over_sse.ended.wait()
        async with ws(live, headers, **params) as over_ws:
            await over_ws.ended.wait()
        assert cape.hub.subscriber_count == 0
    assert over_ws.status == 101 and over_ws.close_code == 1008
    assert not over_ws.messages and over_ws.error is None
    assert len(over_sse.controls) == 1
    return over_sse.status, str(over_sse.controls[0]["detail"])
