"""Server-side handlers: each committed change is claimed in the log, handled once, then marked.

A claim is a lease: if the process dies mid-handler, another run (here or in another process)
takes the change over once the lease expires, so handlers see every change at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..changes.change import ModelChange
from ..changes.changelog import ChangeRecord, changes, now
from ..observer import ObserverSlot
from .config import RealtimeConfig
from .handlers import ChangeHandler, HandlerRegistry
from .views import ModelView

logger = logging.getLogger("capebase.realtime")


class HandlerRunner:
    """Runs ``@cape.subscribe`` handlers for changes offered to it or found pending in the log."""

    def __init__(
        self,
        engine: AsyncEngine,
        handlers: HandlerRegistry,
        config: RealtimeConfig,
        views: dict[str, ModelView],
        process_id: str,
        observers: ObserverSlot,
    ) -> None:
        self.engine = engine
        self.observers = observers
        self.handlers = handlers
        self.config = config
        self.views = views
        self.process_id = process_id
        self._queue: asyncio.Queue[ChangeRecord] = asyncio.Queue(maxsize=config.replay_batch)

    def restart(self) -> None:
        """An empty queue for the running event loop (a change left queued by an earlier run
        is still pending in the log, where ``run_forever``'s sweep finds it)."""
        self._queue = asyncio.Queue(maxsize=self.config.replay_batch)

    def has_handlers(self, table: str) -> bool:
        """Whether a handler is registered for ``table``."""
        return any(m.__table__.name == table for m in self.handlers.models())

    def offer(self, record: ChangeRecord) -> None:
        """Queue ``record`` if there is room; otherwise the next sweep finds it in the log."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(record)

    async def run_forever(self) -> None:
        """Handle queued changes one at a time, in the order they were queued."""
        while True:
            record = await self._queue.get()
            try:
                await self._handle(record)
            except Exception:
                logger.exception(
                    "capebase: could not record handler progress for change %s", record.id
                )
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued change has been handled (used at shutdown)."""
        await self._queue.join()

    async def _handle(self, record: ChangeRecord) -> None:
        model = next((m for m in self.handlers.models() if m.__table__.name == record.table), None)
        if model is None or not await self._claim(record.id):
            return
        view = self.views.get(record.table) or _view_for(model)
        image = view.decode(record.new if record.new is not None else record.old) or {}
        change: ModelChange[Any] = ModelChange(
            id=record.id,
            table=record.table,
            event=record.op,  # type: ignore[arg-type]  # the log only holds the three ops
            payload=view.instance(image),
            old=record.old,
            timestamp=record.created_at,
            actor_id=record.actor_id,
            actor_role=record.actor_role,
            new=record.new,
        )
        observer = self.observers.observer
        for handler in self.handlers.for_model(model):
            name = getattr(handler, "__qualname__", repr(handler))
            try:
                await asyncio.wait_for(
                    observer.timed_handler(record.table, name, _call(handler, change)),
                    self.config.handler_timeout,
                )
            except Exception:
                logger.exception("capebase: handler %s failed on change %s", name, record.id)
        async with self.engine.begin() as connection:
            await connection.execute(
                update(changes).where(changes.c.id == record.id).values(handlers_pending=False)
            )

    async def _claim(self, change_id: int) -> bool:
        """Take change ``change_id`` for this process unless another holds a live lease."""
        expired = now() - timedelta(seconds=self.config.handler_lease)
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(changes)
                .where(
                    changes.c.id == change_id,
                    changes.c.handlers_pending.is_(True),
                    or_(changes.c.claimed_by.is_(None), changes.c.claimed_at < expired),
                )
                .values(claimed_by=self.process_id, claimed_at=now())
            )
        return bool(result.rowcount)

    async def sweep(self) -> None:
        """Queue every pending change that no live claim covers (crash, full queue, late commit)."""
        if not self.handlers.models():
            return
        expired = now() - timedelta(seconds=self.config.handler_lease)
        query = (
            select(changes)
            .where(
                changes.c.handlers_pending.is_(True),
                or_(changes.c.claimed_by.is_(None), changes.c.claimed_at < expired),
            )
            .order_by(changes.c.id)
            .limit(self.config.replay_batch)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        for row in rows:
            await self._queue.put(ChangeRecord.from_row(row))


async def _call(handler: ChangeHandler, change: ModelChange[Any]) -> None:
    """Await an async handler; run a plain one in a thread so it cannot block the loop."""
    if inspect.iscoroutinefunction(handler):
        await handler(change)
        return
    result = await asyncio.to_thread(handler, change)
    if inspect.isawaitable(result):
        await result


def _view_for(model: type[Any]) -> ModelView:
    from ..wire.schemas import read_schema_for

    return ModelView(model=model, table=model.__table__, read_schema=read_schema_for(model))
