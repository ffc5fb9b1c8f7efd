"""The dispatcher: reads committed changes from the change log in id order and offers each
to the subscribers that may see it (and to the handler runner); it also replays what a
resuming stream missed.

Change ids are handed out before commit, so a later id can commit first. Ids the dispatcher
skipped are watched as "holes" for ``late_commit_window`` seconds and delivered if they appear;
resume tokens name the holes a client has not seen, so resuming elsewhere skips nothing. Only
the dispatcher adds holes: a token's holes are read for its own stream, never watched for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from itertools import islice
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..changes.changelog import ChangeRecord, changes
from ..changes.retention import pruned_through
from ..db.direct import DirectExecutor
from ..observer import ObserverSlot
from .config import RealtimeConfig
from .handler_runner import HandlerRunner
from .index import SubscriberIndex
from .on_demand import OnDemandConnection
from .resume import ResumePoint
from .subscribers import Subscriber
from .views import Message, ModelView
from .visibility import ASK_DATABASE, Executes, Memo, Visibility

logger = logging.getLogger("capebase.realtime")

MAX_HOLES = 10_000
YIELD_EVERY = 32
RETRY_DELAY = 1.0
"""Seconds between attempts to read the change log while the database is unreachable."""
STARTUP_HOLE_WINDOW = 1000
NOBODY: frozenset[Subscriber] = frozenset()


class Reset:
    """A resume point the log no longer covers, or a token that resumes nothing: the client
    must reload, then follow live from ``token`` (the stream's position, ``id``)."""

    __slots__ = ("id", "reason", "token")

    def __init__(self, id: int, reason: str, token: str = "") -> None:
        self.id = id
        self.reason = reason
        self.token = token


class Dispatcher:
    """The change log's reader for one process: its position (``cursor``), the ids it skipped
    (holes), and delivery to the subscribers ``indexes`` hold for each streamed table."""

    def __init__(
        self,
        engine: AsyncEngine,
        direct: DirectExecutor | None,
        config: RealtimeConfig,
        visibility: Visibility,
        views: dict[str, ModelView],
        indexes: dict[str, SubscriberIndex],
        runner: HandlerRunner,
        refresh_pins: Callable[[], None],
        observers: ObserverSlot,
    ) -> None:
        self.engine = engine
        self.observers = observers
        self.direct = direct
        self.config = config
        self.visibility = visibility
        self.views = views
        self.indexes = indexes
        self.runner = runner
        self._refresh_pins = refresh_pins
        self.cursor = 0
        self._holes: dict[int, float] = {}
        self._interrupted: dict[int, frozenset[Subscriber]] = {}
        self.wake = asyncio.Event()
        self._log_after = (
            select(changes)
            .where(changes.c.id > bindparam("after", type_=changes.c.id.type))
            .order_by(changes.c.id)
            .limit(config.replay_batch)
        )
        if direct is not None:
            direct.prebuilt(self._log_after)

    async def start(self) -> None:
        """Follow the log from its end; ids missing just below it are watched as holes
        (transactions that took their ids before this start may still commit)."""
        # An app may be started again in another event loop (pytest-asyncio gives each test a
        # loop of its own): asyncio's events belong to the loop that first waits.
        self.wake = asyncio.Event()
        self._interrupted = {}
        async with self.engine.connect() as connection:
            self.cursor = (await connection.execute(select(func.max(changes.c.id)))).scalar() or 0
            recent = set(
                (
                    await connection.execute(
                        select(changes.c.id).where(changes.c.id > self.cursor - STARTUP_HOLE_WINDOW)
                    )
                ).scalars()
            )
        seen_at = time.monotonic()
        for missing in range(max(1, self.cursor - STARTUP_HOLE_WINDOW + 1), self.cursor):
            if missing not in recent:
                self._holes[missing] = seen_at

    @property
    def has_holes(self) -> bool:
        """Whether any skipped change id is still watched for a late commit."""
        return bool(self._holes)

    def unsettled(self) -> list[int]:
        """Skipped change ids still watched for a late commit."""
        return list(self._holes)

    async def replay(
        self, subscriber: Subscriber, point: ResumePoint
    ) -> AsyncIterator[tuple[int, str] | Reset]:
        """What ``subscriber`` missed since ``point``, up to where its live delivery began.

        Yields a single Reset when the log no longer reaches back to ``point``. Each batch
        is read and judged on a connection given back before its messages are yielded: a
        client that stops reading holds no connection of the pool.
        """
        upto = self.cursor
        # Read the log now rather than at the next wake-up: this process may have missed a
        # broker message (the broker was away), and the stream continues live from ``upto``.
        self.wake.set()
        last_id = point.last_id
        table = subscriber.view.table.name
        async with self.engine.connect() as connection:
            pruned = await pruned_through(connection)
            known = upto
            if last_id > upto:
                # A token from another process that is ahead of this one is known to the log;
                # the changes up to it are skipped when this dispatcher reaches them.
                newest = (await connection.execute(select(func.max(changes.c.id)))).scalar()
                known = max(upto, newest or 0)
        if last_id < pruned or last_id > known:
            reason = "expired" if last_id < pruned else "unknown"
            yield Reset(upto, f"last event id {last_id} is {reason}; reload and follow live")
            return
        if not self.visibility.is_steady(subscriber):
            yield Reset(upto, "this stream's read rule changes with time, so what it missed "
                        "cannot be replayed; reload and follow live")
            return
        if point.holes:
            # Holes still not committed are not watched for everyone: one this dispatcher
            # has not reached yet, or still watches, reaches the stream live when it
            # commits; any other was given up on (late_commit_window) or already sent.
            late = (
                select(changes)
                .where(changes.c.table_name == table, changes.c.id.in_(point.holes))
                .order_by(changes.c.id)
            )
            for item in await self._judged_batch(subscriber, late, upto):
                if isinstance(item, int):
                    continue
                yield item
                if isinstance(item, Reset):
                    return
        position = last_id
        while position < upto:
            batch = (
                select(changes)
                .where(
                    changes.c.table_name == table,
                    changes.c.id > position,
                    changes.c.id <= upto,
                )
                .order_by(changes.c.id)
                .limit(self.config.replay_batch)
            )
            items = await self._judged_batch(subscriber, batch, upto)
            if not items:
                break
            for item in items:
                if isinstance(item, int):
                    position = item
                    continue
                yield item
                if isinstance(item, Reset):
                    return

    async def _judged_batch(
        self, subscriber: Subscriber, statement: Any, upto: int
    ) -> list[tuple[int, str] | Reset | int]:
        """The messages ``subscriber`` gets of the changes ``statement`` reads, each after
        its change id (an int, where the replay has got to); a Reset ends the list."""
        items: list[tuple[int, str] | Reset | int] = []
        async with self.engine.connect() as connection:
            for row in (await connection.execute(statement)).mappings().all():
                record = ChangeRecord.from_row(row)
                item = await self._message_for(subscriber, record, connection)
                if isinstance(item, Reset):
                    items.append(Reset(upto, item.reason))
                    break
                if item is not None:
                    items.append(item)
                items.append(record.id)
        return items

    # -- dispatch ----------------------------------------------------------------------------

    async def run_forever(self) -> None:
        failures = 0
        while True:
            # asyncio.timeout, not wait_for: no task per wait (Python 3.11).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_interval):
                    await self.wake.wait()
            self.wake.clear()
            try:
                await self.dispatch_pending()
            except Exception as exc:
                failures += 1
                if failures == 1:
                    logger.exception("capebase: reading the change log failed; retrying")
                else:
                    logger.warning("capebase: change log still unreadable (%s)", exc)
                # Retry soon, not after a whole poll interval: streams go on as soon as the
                # database is back, even when no commit or broker message wakes us.
                await asyncio.sleep(min(self.config.poll_interval, RETRY_DELAY))
                self.wake.set()
            else:
                if failures:
                    logger.warning("capebase: change log readable again; delivery goes on")
                failures = 0

    async def dispatch_pending(self) -> None:
        """Deliver every change committed since the last call, in id order."""
        connection = OnDemandConnection(self.engine)
        try:
            if self._holes:
                await self._fill_holes(connection)
            while True:
                rows = await self._changes_after(self.cursor)
                for position, row in enumerate(rows, 1):
                    record = ChangeRecord.from_row(row)
                    self._note_holes(record.id)
                    await self._deliver(record, connection)
                    # Only now: a dispatch the database interrupts delivers the change again,
                    # to the subscribers it had not judged yet.
                    self.cursor = record.id
                    if position % YIELD_EVERY == 0:
                        # Let the transports drain their queues, so one large transaction
                        # does not overflow subscribers that are keeping up.
                        await asyncio.sleep(0)
                if len(rows) < self.config.replay_batch:
                    return
        finally:
            await connection.close()

    async def _changes_after(self, cursor: int) -> list[dict[str, Any]]:
        """The next batch of the change log after ``cursor``, on the driver connection when
        the engine has a direct executor (the dispatcher reads once per commit)."""
        if self.direct is not None:
            keys = changes.c.keys()
            rows = await self.direct.fetch(self._log_after, {"after": cursor})
            return [dict(zip(keys, row, strict=True)) for row in rows]
        statement = self._log_after.params(after=cursor)
        async with self.engine.connect() as connection:
            return [dict(row) for row in (await connection.execute(statement)).mappings()]

    def _note_holes(self, change_id: int) -> None:
        """Ids skipped between the cursor and ``change_id`` may belong to transactions that
        have not committed yet (ids are handed out before commit); watch them for a while."""
        if change_id > self.cursor + 1 and len(self._holes) < MAX_HOLES:
            seen_at = time.monotonic()
            for missing in range(self.cursor + 1, min(change_id, self.cursor + 1 + MAX_HOLES)):
                self._holes[missing] = seen_at

    async def _fill_holes(self, connection: OnDemandConnection) -> None:
        expired = time.monotonic() - self.config.late_commit_window
        for hole in [h for h, seen in self._holes.items() if seen < expired]:
            del self._holes[hole]
        if not self._holes:
            return
        watched = select(changes).where(changes.c.id.in_(list(self._holes))).order_by(changes.c.id)
        rows = (await connection.execute(watched)).mappings().all()
        records = [ChangeRecord.from_row(row) for row in rows]
        for record in records:  # committed: watched until delivered, however long that takes
            self._holes[record.id] = math.inf
        for record in records:
            await self._deliver(record, connection)
            del self._holes[record.id]

    async def _deliver(self, record: ChangeRecord, connection: OnDemandConnection) -> None:
        observer = self.observers.observer
        # Skipped: those judged before a lost connection interrupted this delivery.
        judged = self._interrupted.pop(record.id, NOBODY)
        if judged is NOBODY:
            observer.change_dispatched(record)
        view = self.views.get(record.table)
        index = self.indexes.get(record.table)
        if view is not None and index:  # nobody streams the table: nothing to decode
            self._refresh_pins()
            message = Message(record)
            visibility = self.visibility
            old, new = view.decode(record.old), view.decode(record.new)
            memo: Memo = {}
            candidates = index.candidates((old, new))
            position = 0  # in ``candidates``, of the subscriber being judged
            try:
                for subscriber in candidates:
                    if not subscriber.closed and subscriber not in judged:
                        # In Python, without a coroutine per subscriber, unless a rule needs SQL.
                        try:
                            event = visibility.event_for(subscriber, old, new)
                            if event is ASK_DATABASE:
                                item = await self._judged_by_database(
                                    subscriber, message, old, new, connection, memo
                                )
                            elif event is not None:  # one (id, text) per variant, for all
                                item = message.item(event, view, subscriber.selection)
                            else:
                                item = None
                        except Exception as error:
                            if not await connection.survives():
                                raise  # not the rule: the connection is gone; retried
                            _end_failed(subscriber, record, error)
                            item = None
                        if item is not None:
                            subscriber.offer(item)
                            observer.change_offered(subscriber, record)
                    position += 1
            except BaseException:
                # An unchanged set iterates in the same order: those before ``position``.
                self._interrupted[record.id] = judged | frozenset(islice(candidates, position))
                raise
        if record.handlers_pending:
            self.runner.offer(record)

    async def _message_for(
        self, subscriber: Subscriber, record: ChangeRecord, connection: Executes
    ) -> tuple[int, str] | Reset | None:
        """The ``(id, text)`` ``subscriber`` gets for ``record``, relative to what it can see;
        a Reset (its ``id`` unset) where only a reload can tell: a rule that reads more than
        the row cannot say whether the subscriber could see a past image (a row that left
        its view before it joined the team would be named in a DELETE)."""
        view = subscriber.view
        old, new = view.decode(record.old), view.decode(record.new)
        message = Message(record)
        event = self.visibility.event_for(subscriber, old, new)
        if event is ASK_DATABASE:
            if not self.visibility.judges_images(subscriber):
                return Reset(0, "this stream's read rule reads more than the row, so what it "
                             "missed cannot be replayed; reload and follow live")
            return await self._judged_by_database(subscriber, message, old, new, connection)
        return None if event is None else message.item(event, view, subscriber.selection)

    async def _judged_by_database(
        self,
        subscriber: Subscriber,
        message: Message,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        connection: Executes,
        memo: Memo | None = None,
    ) -> tuple[int, str] | None:
        """What ``subscriber`` gets of ``message``'s change when a rule needs the database:
        the change's images where the rule reads the row alone, else the row as it may read
        it now (``Visibility.as_read_now``); or nothing."""
        visibility = self.visibility
        if visibility.judges_images(subscriber, memo):
            event = await visibility.event_in_database(subscriber, old, new, connection, memo)
            if event is None:
                return None
            return message.item(event, subscriber.view, subscriber.selection)
        seen = await visibility.as_read_now(subscriber, old, new, connection, memo)
        if seen is None:
            return None
        event, row = seen
        return message.read_now(event, subscriber.view, row, subscriber.selection)


def _end_failed(subscriber: Subscriber, record: ChangeRecord, error: Exception) -> None:
    """End the stream whose read rule failed on ``record`` (in the database: a subquery of
    several rows, a bad cast, a timeout; in Python: a ``where=`` that raised): its caller
    cannot be shown what it may see, and the other streams go on."""
    logger.warning(
        "capebase: the read rule of a %s stream (caller %r) failed on change %d; the stream "
        "ends: %r", record.table, subscriber.ctx.id, record.id, error, exc_info=error,
    )
    subscriber.failed = True
    subscriber.close()
