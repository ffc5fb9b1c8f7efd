"""Retention of the change log: pruning old changes and remembering how far it pruned."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .changelog import changes, meta, now

PRUNED_THROUGH = "pruned_through"


async def prune(engine: AsyncEngine, retention: timedelta) -> int | None:
    """Delete changes older than ``retention`` whose handlers are done.

    Returns the highest id removed (``None`` when nothing was), which is also stored so a
    resume from an older id gets an explicit reset instead of a silent gap.
    """
    cutoff = now() - retention
    old = (changes.c.created_at < cutoff) & changes.c.handlers_pending.is_(False)
    async with engine.begin() as connection:
        highest = (await connection.execute(select(func.max(changes.c.id)).where(old))).scalar()
        if highest is None:
            return None
        await connection.execute(delete(changes).where(old, changes.c.id <= highest))
        previous = await pruned_through(connection)
        await connection.execute(delete(meta).where(meta.c.key == PRUNED_THROUGH))
        await connection.execute(
            meta.insert().values(key=PRUNED_THROUGH, value=str(max(previous, highest)))
        )
    return int(highest)


async def pruned_through(connection: AsyncConnection) -> int:
    """The highest change id retention has removed (0 when none)."""
    value = (
        await connection.execute(select(meta.c.value).where(meta.c.key == PRUNED_THROUGH))
    ).scalar()
    return int(value) if value is not None else 0
