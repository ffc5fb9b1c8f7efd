"""``memory://``: one process, no broker. Local commits wake the dispatcher directly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from .base import BrokerBackend


class MemoryBackend(BrokerBackend):
    """Delivers nothing across processes; ``listen`` waits until disconnect."""

    def __init__(self, url: str = "memory://") -> None:
        self._closed = asyncio.Event()

    async def connect(self) -> None:
        self._closed = asyncio.Event()  # for the running event loop

    async def disconnect(self) -> None:
        self._closed.set()

    async def publish(self, channel: str, message: bytes) -> None:
        return None

    async def listen(self, channel: str) -> AsyncIterator[bytes]:
        await self._closed.wait()
        return
        yield b""  # pragma: no cover - makes this an async generator
