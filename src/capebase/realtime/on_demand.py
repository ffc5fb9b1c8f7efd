"""The dispatcher's connection: opened on first use, since most dispatches need none."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class OnDemandConnection:
    """An engine connection opened on first use: most dispatches never need one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._unreachable = False

    async def execute(self, statement: Any, /) -> Any:
        if self._connection is None:
            self._unreachable = True  # until the connection opens
            self._connection = await self._engine.connect()
            self._unreachable = False
        return await self._connection.execute(statement)

    async def survives(self) -> bool:
        """After judging a change failed: whether the database is still there, asked of the
        connection rather than read from the error. The connection's transaction is rolled
        back, so that the next statement runs; one that could not open, that SQLAlchemy found
        lost, or that cannot roll back is closed, and the answer is ``False``."""
        if self._unreachable:
            return False
        connection = self._connection
        if connection is None:
            return True  # the failure was in Python: nothing ran on a connection
        if not connection.invalidated:
            try:
                await connection.rollback()  # a round trip: it answers, or it is gone
            except Exception:
                await connection.invalidate()  # the pool opens a new one, not this
            else:
                return True
        await self.close()
        return False

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
