"""The dispatcher's connection: opened on first use, since most dispatches need none."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class OnDemandConnection:
    """An engine connection opened on first use: most dispatches never need one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def execute(self, statement: Any, /) -> Any:
        if self._connection is None:
            self._connection = await self._engine.connect()
        return await self._connection.execute(statement)

    async def recover(self) -> None:
        """After a statement failed: end its transaction, so the next one runs."""
        if self._connection is not None:
            try:
                await self._connection.rollback()
            except Exception:
                await self.close()
                raise

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
