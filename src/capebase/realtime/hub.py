"""The hub: reads committed changes from the change log and delivers them.

One dispatcher task per process reads the log in id order when a local commit (or the poll
timer) wakes it, checks each change once per candidate subscriber against the subscriber's
read rule and filters, and queues the resulting message. Handlers run in their own task and
claim each change in the log first, so a change is handled once, and again after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..auth.context import AuthContext
from ..errors import CapeBaseError
from ..policy.registry import Policy
from ..policy.sqlexpr import with_row_values
from .change import ModelChange
from .changelog import ChangeRecord, changes, meta, now
from .config import RealtimeConfig
from .handlers import ChangeHandler, HandlerRegistry
from .index import SubscriberIndex, pins_for
from .subscribers import StreamFilter, Subscriber
from .views import Message, ModelView

logger = logging.getLogger("capebase.realtime")

HOLE_TIMEOUT = 10.0
"""Seconds a missing change id is watched for a late commit before it is taken as rolled back."""
MAX_HOLES = 10_000
SWEEP_INTERVAL = 5.0


class TooManySubscriptionsError(CapeBaseError):
    """The process already serves ``RealtimeConfig.max_subscriptions`` streams."""


class Reset:
    """A resume point the log no longer covers: the client must reload, then follow live."""

    __slots__ = ("id", "reason")

    def __init__(self, id: int, reason: str) -> None:
        self.id = id
        self.reason = reason


class Hub:
    """Delivery of committed changes to streams and handlers, for one process."""

    def __init__(
        self,
        engine: AsyncEngine,
        policy: Policy,
        handlers: HandlerRegistry,
        config: RealtimeConfig,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.handlers = handlers
        self.config = config
        self.process_id = uuid.uuid4().hex
        self.views: dict[str, ModelView] = {}
        self.cursor = 0
        self._indexes: dict[str, SubscriberIndex] = {}
        self._index_version = -1
        self._holes: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._handler_queue: asyncio.Queue[ChangeRecord] = asyncio.Queue(
            maxsize=config.replay_batch
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    # -- ChangeSink (called from sessions) ---------------------------------------------------

    @property
    def capture(self) -> bool:
        """Whether sessions write changes to the log."""
        return self.config.capture

    def has_handlers(self, table: str) -> bool:
        """Whether a handler is registered for ``table``."""
        return any(m.__table__.name == table for m in self.handlers.models())

    def notify(self) -> None:
        """A transaction with changes committed: wake the dispatcher."""
        self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def add_view(self, view: ModelView) -> None:
        """Make ``view``'s model streamable."""
        self.views[view.table.name] = view
        self._indexes.setdefault(view.table.name, SubscriberIndex())

    async def start(self) -> None:
        """Start following the log from its end, and handle what earlier runs left pending."""
        async with self.engine.connect() as connection:
            self.cursor = (await connection.execute(select(func.max(changes.c.id)))).scalar() or 0
        self._running = True
        self._tasks = [
            asyncio.create_task(self._dispatch_forever(), name="capebase-dispatch"),
            asyncio.create_task(self._handle_forever(), name="capebase-handlers"),
            asyncio.create_task(self._sweep_forever(), name="capebase-sweep"),
        ]

    async def stop(self) -> None:
        """Close every stream and cancel and await every task."""
        self._running = False
        for index in self._indexes.values():
            for subscriber in index:
                subscriber.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    @property
    def subscriber_count(self) -> int:
        """Open streams in this process."""
        return sum(len(index) for index in self._indexes.values())

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(
        self, view: ModelView, ctx: AuthContext, filters: list[StreamFilter]
    ) -> Subscriber:
        """Open a subscription; live changes after ``self.cursor`` reach its queue.

        Raises:
            TooManySubscriptionsError: the process is at ``max_subscriptions``.
        """
        if self.subscriber_count >= self.config.max_subscriptions:
            raise TooManySubscriptionsError("Too many open subscriptions; retry later")
        subscriber = Subscriber(view, ctx, filters, self.config.queue_size)
        self._refresh_pins()
        self._indexes[view.table.name].add(subscriber, pins_for(self.policy, subscriber))
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget ``subscriber``; nothing of it stays behind."""
        subscriber.closed = True
        index = self._indexes.get(subscriber.view.table.name)
        if index is not None:
            index.remove(subscriber)

    def disconnect_user(self, user_id: str) -> int:
        """End every stream of ``user_id`` (disabled user, logout); returns how many."""
        count = 0
        for index in self._indexes.values():
            for subscriber in index:
                if subscriber.ctx.id == user_id and not subscriber.closed:
                    subscriber.revoked = True
                    subscriber.close()
                    count += 1
        return count

    def _refresh_pins(self) -> None:
        """Rules can change at run time; re-file every subscriber when they did."""
        if self._index_version == self.policy.version:
            return
        self._index_version = self.policy.version
        for index in self._indexes.values():
            for subscriber in index:
                index.remove(subscriber)
                index.add(subscriber, pins_for(self.policy, subscriber))

    async def replay(
        self, subscriber: Subscriber, last_id: int
    ) -> AsyncIterator[tuple[int, str] | Reset]:
        """The messages ``subscriber`` missed after ``last_id``, up to where live delivery began.

        Yields a single Reset when the log no longer reaches back to ``last_id``.
        """
        upto = self.cursor
        table = subscriber.view.table.name
        async with self.engine.connect() as connection:
            pruned = await _pruned_through(connection)
            if last_id < pruned or last_id > upto:
                reason = "expired" if last_id < pruned else "unknown"
                yield Reset(upto, f"last event id {last_id} is {reason}; reload and follow live")
                return
            position = last_id
            while position < upto:
                rows = (
                    (
                        await connection.execute(
                            select(changes)
                            .where(
                                changes.c.table_name == table,
                                changes.c.id > position,
                                changes.c.id <= upto,
                            )
                            .order_by(changes.c.id)
                            .limit(self.config.replay_batch)
                        )
                    )
                    .mappings()
                    .all()
                )
                if not rows:
                    break
                for row in rows:
                    record = ChangeRecord.from_row(row)
                    position = record.id
                    text = await self._message_for(subscriber, record, Message(record), connection)
                    if text is not None:
                        yield (record.id, text)

    # -- dispatch ----------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
            self._wake.clear()
            try:
                await self.dispatch_pending()
            except Exception:
                logger.exception("capebase: reading the change log failed; retrying")
                await asyncio.sleep(self.config.poll_interval)

    async def dispatch_pending(self) -> None:
        """Deliver every change committed since the last call, in id order."""
        async with self.engine.connect() as connection:
            if self._holes:
                await self._fill_holes(connection)
            while True:
                rows = (
                    (
                        await connection.execute(
                            select(changes)
                            .where(changes.c.id > self.cursor)
                            .order_by(changes.c.id)
                            .limit(self.config.replay_batch)
                        )
                    )
                    .mappings()
                    .all()
                )
                for row in rows:
                    record = ChangeRecord.from_row(row)
                    self._note_holes(record.id)
                    self.cursor = record.id
                    await self._deliver(record, connection)
                if len(rows) < self.config.replay_batch:
                    return

    def _note_holes(self, change_id: int) -> None:
        """Ids skipped between the cursor and ``change_id`` may belong to transactions that
        have not committed yet (ids are handed out before commit); watch them for a while."""
        if change_id > self.cursor + 1 and len(self._holes) < MAX_HOLES:
            seen_at = time.monotonic()
            for missing in range(self.cursor + 1, min(change_id, self.cursor + 1 + MAX_HOLES)):
                self._holes[missing] = seen_at

    async def _fill_holes(self, connection: AsyncConnection) -> None:
        expired = time.monotonic() - HOLE_TIMEOUT
        for hole in [h for h, seen in self._holes.items() if seen < expired]:
            del self._holes[hole]
        if not self._holes:
            return
        rows = (
            (
                await connection.execute(
                    select(changes)
                    .where(changes.c.id.in_(list(self._holes)))
                    .order_by(changes.c.id)
                )
            )
            .mappings()
            .all()
        )
        for row in rows:
            record = ChangeRecord.from_row(row)
            del self._holes[record.id]
            await self._deliver(record, connection)

    async def _deliver(self, record: ChangeRecord, connection: AsyncConnection) -> None:
        view = self.views.get(record.table)
        if view is not None:
            self._refresh_pins()
            index = self._indexes[record.table]
            message = Message(record)
            old, new = view.decode(record.old), view.decode(record.new)
            for subscriber in index.candidates((old, new)):
                if subscriber.closed:
                    continue
                text = await self._message_for(subscriber, record, message, connection, old, new)
                if text is not None:
                    subscriber.offer((record.id, text))
        if record.handlers_pending:
            with contextlib.suppress(asyncio.QueueFull):  # the sweep picks it up later
                self._handler_queue.put_nowait(record)

    async def _message_for(
        self,
        subscriber: Subscriber,
        record: ChangeRecord,
        message: Message,
        connection: AsyncConnection,
        old: dict[str, Any] | None = None,
        new: dict[str, Any] | None = None,
    ) -> str | None:
        """The message ``subscriber`` gets for ``record``, relative to what it can see."""
        view = subscriber.view
        if old is None and new is None:
            old, new = view.decode(record.old), view.decode(record.new)
        was = await self._visible(subscriber, old, connection)
        now_visible = await self._visible(subscriber, new, connection)
        if was and now_visible:
            event = "UPDATE"
        elif now_visible:
            event = "INSERT"
        elif was:
            event = "DELETE"
        else:
            return None
        return message.text(event, view)

    async def _visible(
        self, subscriber: Subscriber, image: dict[str, Any] | None, connection: AsyncConnection
    ) -> bool:
        if image is None or not subscriber.passes_filters(image):
            return False
        model = subscriber.view.model
        verdict = self.policy.check_row(model, "read", subscriber.ctx, image)
        if verdict is None:
            predicate = with_row_values(
                self.policy.sql_filter(model, "read", subscriber.ctx), subscriber.view.table, image
            )
            verdict = bool((await connection.execute(select(predicate))).scalar())
        return verdict

    # -- handlers ----------------------------------------------------------------------------

    async def _handle_forever(self) -> None:
        while True:
            record = await self._handler_queue.get()
            try:
                await self._handle(record)
            except Exception:
                logger.exception(
                    "capebase: could not record handler progress for change %s", record.id
                )

    async def _handle(self, record: ChangeRecord) -> None:
        model = next((m for m in self.handlers.models() if m.__table__.name == record.table), None)
        if model is None or not await self._claim(record.id):
            return
        view = self.views.get(record.table) or _view_for(model)
        image = view.decode(record.new if record.new is not None else record.old) or {}
        change: ModelChange[Any] = ModelChange(
            id=record.id,
            table=record.table,
            event=record.op,  # type: ignore[arg-type]
            payload=view.instance(image),
            old=record.old,
            timestamp=record.created_at,
            actor_id=record.actor_id,
            actor_role=record.actor_role,
            new=record.new,
        )
        for handler in self.handlers.for_model(model):
            name = getattr(handler, "__qualname__", repr(handler))
            try:
                await asyncio.wait_for(_call(handler, change), self.config.handler_timeout)
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

    async def _sweep_forever(self) -> None:
        """Queue changes whose handlers never ran (crash, full queue, late commit)."""
        while True:
            try:
                await self.sweep()
                await self.prune()
            except Exception:
                logger.exception("capebase: change-log sweep failed; retrying")
            await asyncio.sleep(SWEEP_INTERVAL)

    async def sweep(self) -> None:
        """Queue every pending change no live claim covers."""
        if not self.handlers.models():
            return
        expired = now() - timedelta(seconds=self.config.handler_lease)
        async with self.engine.connect() as connection:
            rows = (
                (
                    await connection.execute(
                        select(changes)
                        .where(
                            changes.c.handlers_pending.is_(True),
                            or_(changes.c.claimed_by.is_(None), changes.c.claimed_at < expired),
                        )
                        .order_by(changes.c.id)
                        .limit(self.config.replay_batch)
                    )
                )
                .mappings()
                .all()
            )
        for row in rows:
            await self._handler_queue.put(ChangeRecord.from_row(row))

    async def prune(self) -> None:
        """Delete changes older than the retention window whose handlers are done."""
        cutoff = now() - self.config.retention
        async with self.engine.begin() as connection:
            old = (changes.c.created_at < cutoff) & changes.c.handlers_pending.is_(False)
            highest = (await connection.execute(select(func.max(changes.c.id)).where(old))).scalar()
            if highest is None:
                return
            await connection.execute(delete(changes).where(old, changes.c.id <= highest))
            await connection.execute(delete(meta).where(meta.c.key == "pruned_through"))
            await connection.execute(meta.insert().values(key="pruned_through", value=str(highest)))


async def _call(handler: ChangeHandler, change: ModelChange[Any]) -> None:
    """Await an async handler; run a plain one in a thread so it cannot block the loop."""
    if inspect.iscoroutinefunction(handler):
        await handler(change)
        return
    result = await asyncio.to_thread(handler, change)
    if inspect.isawaitable(result):
        await result


async def _pruned_through(connection: AsyncConnection) -> int:
    value = (
        await connection.execute(select(meta.c.value).where(meta.c.key == "pruned_through"))
    ).scalar()
    return int(value) if value is not None else 0


def _view_for(model: type[Any]) -> ModelView:
    from ..crud.schemas import read_schema_for

    return ModelView(model=model, table=model.__table__, read_schema=read_schema_for(model))
