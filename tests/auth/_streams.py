"""SSE and WebSocket clients for the auth tests: they record what a stream got and how it ended.

The uvicorn server comes from the realtime tests' helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect as ws_connect

from tests.auth._support import bearer
from tests.realtime._live import TIMEOUT, LiveServer, wait_until

PATH = "/auth_memo/subscribe"


@dataclass
class Got:
    """What a stream client received, and how the stream ended."""

    texts: list[str] = field(default_factory=list)
    """``text`` of each change message."""
    controls: list[str] = field(default_factory=list)
    """Names of control events: ``expired``, ``reset``, ``overflow``."""
    status: int | None = None
    body: Any = None
    close_code: int | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, data: dict[str, Any]) -> None:
        if data.get("event") in ("expired", "reset", "overflow"):
            self.controls.append(data["event"])
        elif data.get("event") not in ("heartbeat", "ready"):
            self.texts.append(data["payload"]["text"])

    async def wait_for(self, text: str) -> None:
        await wait_until(lambda: text in self.texts or self.ended.is_set(), what=repr(text))
        assert text in self.texts, f"stream ended before {text!r}: {self}"

    async def wait_ended(self, within: float = TIMEOUT) -> None:
        await wait_until(self.ended.is_set, within=within, what="the stream to end")


class _Client:
    def __init__(self) -> None:
        self.got = Got()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Got:
        self._task = asyncio.create_task(self._run())
        await wait_until(
            lambda: self.got.opened.is_set() or self.got.ended.is_set(), what="the stream to open"
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
        finally:
            self.got.ended.set()

    async def _read(self) -> None:
        raise NotImplementedError


class SSE(_Client):
    """``GET /auth_memo/subscribe`` as an EventSource would (``Accept: text/event-stream``)."""

    def __init__(
        self,
        live: LiveServer,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.live, self.params, self.headers = live, dict(params or {}), dict(headers or {})
        self.cookies = dict(cookies or {})

    async def _read(self) -> None:
        async with (
            httpx.AsyncClient(
                base_url=self.live.url, timeout=httpx.Timeout(30), cookies=self.cookies
            ) as client,
            aconnect_sse(client, "GET", PATH, params=self.params, headers=self.headers) as source,
        ):
            self.got.status = source.response.status_code
            if self.got.status != 200:
                await source.response.aread()
                self.got.body = source.response.json()
                return
            self.got.opened.set()
            async for event in source.aiter_sse():
                if event.data:
                    self.got.record(json.loads(event.data))


class WS(_Client):
    """``WS /auth_memo/subscribe`` through the ``websockets`` client."""

    def __init__(
        self,
        live: LiveServer,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        query = str(httpx.QueryParams(params or {}))
        self.uri = f"{live.ws_url}{PATH}" + (f"?{query}" if query else "")
        self.headers = dict(headers or {})

    async def _read(self) -> None:
        try:
            async with ws_connect(
                self.uri, additional_headers=self.headers, proxy=None, open_timeout=TIMEOUT
            ) as websocket:
                self.got.status = 101
                self.got.opened.set()
                async for text in websocket:
                    self.got.record(json.loads(text))
        except websockets.ConnectionClosed as closed:
            self.got.close_code = closed.rcvd.code if closed.rcvd is not None else None
            return
        except websockets.InvalidStatus as refused:
            self.got.status = refused.response.status_code
            return
        self.got.close_code = websocket.close_code

async def write_memo(live: LiveServer, token: str, text: str) -> None:
    """``POST /auth_memo`` as the holder of ``token``; it must be created."""
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.post("/auth_memo", json={"text": text}, headers=bearer(token))
        assert response.status_code == 201, response.text
