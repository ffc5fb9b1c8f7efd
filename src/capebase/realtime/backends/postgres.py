"""``postgresql://``: LISTEN/NOTIFY on a dedicated asyncpg connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ...errors import ConfigurationError
from .base import BrokerBackend

QUEUE_SIZE = 1024


class PostgresBackend(BrokerBackend):
    """NOTIFY carries the wake-up; payloads are tiny (the change id)."""

    def __init__(self, url: str) -> None:
        try:
            import asyncpg
        except ModuleNotFoundError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "The postgres broker needs asyncpg: pip install 'capebase[postgres]'"
            ) from exc
        self._asyncpg = asyncpg
        self._dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self._connection: Any = None

    async def connect(self) -> None:
        self._connection = await self._asyncpg.connect(self._dsn)

    async def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            await connection.close()

    async def publish(self, channel: str, message: bytes) -> None:
        if self._connection is None or self._connection.is_closed():
            await self.connect()
        await self._connection.execute("SELECT pg_notify($1, $2)", channel, message.decode())

    async def listen(self, channel: str) -> AsyncIterator[bytes]:
        connection = await self._asyncpg.connect(self._dsn)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=QUEUE_SIZE)

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if not queue.full():  # dropped: one wake-up is enough; the re-check ends streams
                queue.put_nowait(payload.encode())

        def on_lost(_conn: Any) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)

        connection.add_termination_listener(on_lost)
        await connection.add_listener(channel, on_notify)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), 5.0)
                except TimeoutError:
                    if connection.is_closed():
                        raise ConnectionError("LISTEN connection closed") from None
                    continue
                if item is None:
                    raise ConnectionError("LISTEN connection lost")
                yield item
        finally:
            if not connection.is_closed():
                connection.terminate()
