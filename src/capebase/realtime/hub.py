"""The hub: reads committed changes from the change log and delivers them.

One dispatcher task per process reads the log in id order when a local commit, a broker
message from another process, or the poll timer wakes it; it checks each change once per
candidate subscriber against the subscriber's read rule and filters, and queues the resulting
message. Handlers run in ``HandlerRunner``.

Change ids are handed out before commit, so a later id can commit first. Ids the dispatcher
skipped are watched as "holes" for ``late_commit_window`` seconds and delivered if they appear;
resume tokens name the holes a client has not seen, so resuming elsewhere skips nothing. Only
the dispatcher adds holes: a token's holes are read for its own stream, never watched for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..auth.context import AuthContext
from ..db.direct import DirectExecutor
from ..errors import NotStartedError, TooManySubscriptionsError
from ..observability.observer import observer_for
from ..policy.registry import Policy
from .alarms import Alarms
from .backends import BrokerBackend
from .changelog import ChangeRecord, changes
from .config import RealtimeConfig
from .handler_runner import HandlerRunner
from .handlers import HandlerRegistry
from .index import SubscriberIndex, pins_for
from .resume import ResumePoint
from .retention import prune, pruned_through
from .server_exit import on_server_exit
from .signing import ResumeTokens, load_key
from .subscribers import StreamFilter, Subscriber
from .views import Message, ModelView
from .visibility import ASK_DATABASE, Executes, Visibility
from .wakeups import BrokerLink

logger = logging.getLogger("capebase.realtime")

MAX_HOLES = 10_000
YIELD_EVERY = 32
MAINTENANCE_INTERVAL = 5.0
RETRY_DELAY = 1.0
"""Seconds between attempts to read the change log while the database is unreachable."""
STARTUP_HOLE_WINDOW = 1000
RECANCEL_INTERVAL = 1.0
"""Seconds ``Hub.stop`` waits for a cancelled task to end before cancelling it again."""


SignIn = tuple[str, str, str | None]
"""``(user id, sign-in id, role)`` of an open stream, for re-checking it."""
Revalidator = Callable[[set[SignIn]], Awaitable[set[SignIn]]]
"""Given the sign-ins of open streams, returns those that no longer stand as they are."""


class Reset:
    """A resume point the log no longer covers, or a token that resumes nothing: the client
    must reload, then follow live from ``token`` (the stream's position, ``id``)."""

    __slots__ = ("id", "reason", "token")

    def __init__(self, id: int, reason: str, token: str = "") -> None:
        self.id = id
        self.reason = reason
        self.token = token


class _OnDemandConnection:
    """An engine connection opened on first use: most dispatches never need one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None

    async def execute(self, statement: Any, /) -> Any:
        if self._connection is None:
            self._connection = await self._engine.connect()
        return await self._connection.execute(statement)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None


class Hub:
    """Delivery of committed changes to streams and handlers, for one process."""

    def __init__(
        self,
        engine: AsyncEngine,
        policy: Policy,
        handlers: HandlerRegistry,
        config: RealtimeConfig,
        broker: BrokerBackend,
        direct: DirectExecutor | None = None,
    ) -> None:
        self.engine = engine
        self.direct = direct
        self.policy = policy
        self.visibility = Visibility(policy)
        self.handlers = handlers
        self.config = config
        self.process_id = uuid.uuid4().hex
        self.views: dict[str, ModelView] = {}
        self.cursor = 0
        self._indexes: dict[str, SubscriberIndex] = {}
        self._index_version = -1
        self._holes: dict[int, float] = {}
        self._client_of: dict[Subscriber, str] = {}
        self._per_client: dict[str, int] = {}
        self._wake = asyncio.Event()
        self.alarms = Alarms()
        self.runner = HandlerRunner(engine, handlers, config, self.views, self.process_id)
        self.link = BrokerLink(
            broker,
            config.broker_channel,
            self._wake_up,
            lambda connected, outage: observer_for(engine).broker_state(connected, outage=outage),
            self._end_user_streams,
            self.process_id,
        )
        self.revalidate: Revalidator | None = None
        """Set by the built-in auth: re-checks open streams' sign-ins periodically."""
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._tokens: ResumeTokens | None = None
        self._log_after = (
            select(changes)
            .where(changes.c.id > bindparam("after", type_=changes.c.id.type))
            .order_by(changes.c.id)
            .limit(config.replay_batch)
        )
        if direct is not None:
            direct.prebuilt(self._log_after)

    # -- ChangeSink (called from sessions) ---------------------------------------------------

    @property
    def capture(self) -> bool:
        """Whether sessions write changes to the log."""
        return self.config.capture

    def has_handlers(self, table: str) -> bool:
        """Whether a handler is registered for ``table``."""
        return self.runner.has_handlers(table)

    def notify(self) -> None:
        """A transaction with changes committed: wake this dispatcher and the other processes."""
        self._wake.set()
        self.link.announce()

    def _wake_up(self) -> None:
        self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def add_view(self, view: ModelView) -> None:
        """Make ``view``'s model streamable."""
        self.views[view.table.name] = view
        self._indexes.setdefault(view.table.name, SubscriberIndex())

    def remove_view(self, table: str) -> None:
        """Stop streaming ``table``: its open streams end."""
        self.views.pop(table, None)
        index = self._indexes.pop(table, None)
        for subscriber in index or ():
            subscriber.close()

    @property
    def tokens(self) -> ResumeTokens:
        """Issues and verifies this app's resume tokens (once started)."""
        if self._tokens is None:
            raise NotStartedError("Realtime hub not started — is CapeBase's lifespan running?")
        return self._tokens

    async def start(self) -> None:
        """Start following the log from its end, and handle what earlier runs left pending."""
        # An app may be started again in another event loop (pytest-asyncio gives each test a
        # loop of its own): asyncio's events and queues belong to the loop that first waits.
        self._wake = asyncio.Event()
        self.link.restart()
        self.runner.restart()
        key = await load_key(self.engine, self.config.resume_token_secret)
        self._tokens = ResumeTokens(key, self.config.resume_token_ttl)
        async with self.engine.connect() as connection:
            self.cursor = (await connection.execute(select(func.max(changes.c.id)))).scalar() or 0
            # Transactions that took their ids before we started may still commit: watch the
            # ids missing just below the end of the log as holes.
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
        await self.link.connect()
        self._running = True
        self._tasks = [
            asyncio.create_task(self._dispatch_forever(), name="capebase-dispatch"),
            asyncio.create_task(self.runner.run_forever(), name="capebase-handlers"),
            asyncio.create_task(self._maintain_forever(), name="capebase-maintenance"),
            asyncio.create_task(self._revalidate_forever(), name="capebase-revalidate"),
            asyncio.create_task(self.link.publish_forever(), name="capebase-broker-publish"),
            asyncio.create_task(self.link.listen_forever(), name="capebase-broker-listen"),
            asyncio.create_task(on_server_exit(self.close_streams), name="capebase-server-exit"),
        ]

    async def stop(self) -> None:
        """Close every stream, let handlers finish what was committed, then stop every task.

        Changes committed just before shutdown are dispatched and handled here, within
        ``RealtimeConfig.shutdown_grace`` seconds; whatever is left is handled at the next start.
        """
        self._running = False
        if self._tasks:
            try:
                await asyncio.wait_for(self._finish_pending(), self.config.shutdown_grace)
            except Exception:
                logger.warning(
                    "capebase: shutdown left changes unhandled; the next start handles them",
                    exc_info=True,
                )
        self.close_streams()
        for name in self._indexes:
            # Streams still draining unsubscribe themselves; an app kept alive after shutdown
            # (FastAPI caches apps in tests) must not keep its subscribers either.
            self._indexes[name] = SubscriberIndex()
        await _cancel_and_wait(self._tasks)
        self._tasks = []
        await self.link.disconnect()

    def close_streams(self) -> None:
        """End every open stream; each ends after what it has queued."""
        for index in self._indexes.values():
            for subscriber in index:
                subscriber.close()

    async def _finish_pending(self) -> None:
        await self.dispatch_pending()
        await self.runner.drain()

    async def _maintain_forever(self) -> None:
        """Sweep for unhandled changes and prune the log, every few seconds."""
        while True:
            try:
                await self.sweep()
                await self.prune()
            except Exception:
                logger.exception("capebase: change-log maintenance failed; retrying")
            await asyncio.sleep(MAINTENANCE_INTERVAL)

    async def _revalidate_forever(self) -> None:
        """End the streams whose sign-in ended elsewhere, every ``revalidate_interval``."""
        while True:
            await asyncio.sleep(self.config.revalidate_interval)
            try:
                await self.revalidate_streams()
            except Exception as exc:
                # Fail open while the database is away: streams still end at token expiry.
                logger.warning("capebase: could not re-check stream sign-ins (%s)", exc)

    async def revalidate_streams(self) -> int:
        """End the open streams whose sign-in ended, or whose user was disabled or changed
        role, on any process; returns how many (one query per 500 sign-ins)."""
        if self.revalidate is None:
            return 0
        open_sign_ins = {
            sign_in for subscriber in self._open() if (sign_in := _sign_in(subscriber))
        }
        if not open_sign_ins:
            return 0
        stale = await self.revalidate(open_sign_ins)
        count = 0
        for subscriber in self._open():
            if _sign_in(subscriber) in stale:
                subscriber.revoked = True
                subscriber.close()
                count += 1
        return count

    def _open(self) -> list[Subscriber]:
        return [s for index in self._indexes.values() for s in index if not s.closed]

    async def sweep(self) -> None:
        """Queue pending handler work no live claim covers."""
        await self.runner.sweep()

    async def prune(self) -> None:
        """Drop changes older than the retention window (their handlers done)."""
        await prune(self.engine, self.config.retention)

    @property
    def subscriber_count(self) -> int:
        """Open streams in this process."""
        return sum(len(index) for index in self._indexes.values())

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(
        self,
        view: ModelView,
        ctx: AuthContext,
        filters: list[StreamFilter],
        *,
        client: str | None = None,
    ) -> Subscriber:
        """Open a subscription; live changes after ``self.cursor`` reach its queue.

        ``client`` names who opens it (a user id, or an address) for the per-client limit.

        Raises:
            TooManySubscriptionsError: the process is at ``max_subscriptions``, or ``client``
                at ``max_subscriptions_per_client``.
        """
        if self.subscriber_count >= self.config.max_subscriptions:
            raise TooManySubscriptionsError("Too many open subscriptions; retry later")
        per_client = self.config.max_subscriptions_per_client
        if client is not None and self._per_client.get(client, 0) >= per_client:
            raise TooManySubscriptionsError(
                f"Too many open subscriptions for this client (at most {per_client}, "
                "RealtimeConfig.max_subscriptions_per_client); close one or retry later"
            )
        subscriber = Subscriber(view, ctx, filters, self.config.queue_size)
        if client is not None:
            self._client_of[subscriber] = client
            self._per_client[client] = self._per_client.get(client, 0) + 1
        self._refresh_pins()
        self._indexes[view.table.name].add(subscriber, pins_for(self.policy, subscriber))
        observer_for(self.engine).subscription_opened(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget ``subscriber``; nothing of it stays behind."""
        subscriber.closed = True
        index = self._indexes.get(subscriber.view.table.name)
        if index is not None:
            index.remove(subscriber)
        client = self._client_of.pop(subscriber, None)
        if client is not None:
            left = self._per_client.pop(client) - 1
            if left:
                self._per_client[client] = left
        observer_for(self.engine).subscription_closed(subscriber)

    def disconnect_user(self, user_id: str) -> int:
        """End every stream of ``user_id`` (disabled user, logout) in every process of the
        app: this one at once, the others through the broker. Returns how many here."""
        self.link.disconnect_user(user_id)
        return self._end_user_streams(user_id)

    def _end_user_streams(self, user_id: str) -> int:
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

        Yields a single Reset when the log no longer reaches back to ``point``.
        """
        upto = self.cursor
        # Read the log now rather than at the next wake-up: this process may have missed a
        # broker message (the broker was away), and the stream continues live from ``upto``.
        self._wake.set()
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
            if point.holes:
                late = (
                    await connection.execute(
                        select(changes)
                        .where(changes.c.table_name == table, changes.c.id.in_(point.holes))
                        .order_by(changes.c.id)
                    )
                ).mappings()
                for row in late:
                    record = ChangeRecord.from_row(row)
                    item = await self._message_for(subscriber, record, connection)
                    if item is not None:
                        yield item
                # Holes still not committed are not watched for everyone: one this dispatcher
                # has not reached yet, or still watches, reaches the stream live when it
                # commits; any other was given up on (late_commit_window) or already sent.
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
                    item = await self._message_for(subscriber, record, connection)
                    if item is not None:
                        yield item

    # -- dispatch ----------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        failures = 0
        while True:
            # asyncio.timeout, not wait_for: no task per wait (Python 3.11).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
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
                self._wake.set()
            else:
                if failures:
                    logger.warning("capebase: change log readable again; delivery goes on")
                failures = 0

    async def dispatch_pending(self) -> None:
        """Deliver every change committed since the last call, in id order."""
        connection = _OnDemandConnection(self.engine)
        try:
            if self._holes:
                await self._fill_holes(connection)
            while True:
                rows = await self._changes_after(self.cursor)
                for position, row in enumerate(rows, 1):
                    record = ChangeRecord.from_row(row)
                    self._note_holes(record.id)
                    self.cursor = record.id
                    await self._deliver(record, connection)
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

    async def _fill_holes(self, connection: Executes) -> None:
        expired = time.monotonic() - self.config.late_commit_window
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

    async def _deliver(self, record: ChangeRecord, connection: Executes) -> None:
        observer = observer_for(self.engine)
        observer.change_dispatched(record)
        view = self.views.get(record.table)
        index = self._indexes.get(record.table)
        if view is not None and index:  # nobody streams the table: nothing to decode
            self._refresh_pins()
            message = Message(record)
            visibility = self.visibility
            old, new = view.decode(record.old), view.decode(record.new)
            for subscriber in index.candidates((old, new)):
                if subscriber.closed:
                    continue
                # In Python, without a coroutine per subscriber, unless a rule needs SQL.
                event = visibility.event_for(subscriber, old, new)
                if event is ASK_DATABASE:
                    event = await visibility.event_in_database(subscriber, old, new, connection)
                if event is not None:
                    # One (id, text) item per event variant, shared by every subscriber.
                    subscriber.offer(message.item(event, view))
                    observer.change_offered(subscriber, record)
        if record.handlers_pending:
            self.runner.offer(record)

    async def _message_for(
        self, subscriber: Subscriber, record: ChangeRecord, connection: Executes
    ) -> tuple[int, str] | None:
        """The ``(id, text)`` ``subscriber`` gets for ``record``, relative to what it can see."""
        view = subscriber.view
        old, new = view.decode(record.old), view.decode(record.new)
        event = self.visibility.event_for(subscriber, old, new)
        if event is ASK_DATABASE:
            event = await self.visibility.event_in_database(subscriber, old, new, connection)
        return None if event is None else Message(record).item(event, view)


def _sign_in(subscriber: Subscriber) -> SignIn | None:
    ctx = subscriber.ctx
    if ctx.id is None or ctx.session is None:
        return None
    return (ctx.id, ctx.session, ctx.role)


async def _cancel_and_wait(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended.

    A task can swallow its cancellation: on Python 3.11, ``asyncio.wait_for`` (redis-py wraps
    every socket write in it) returns the awaited result when the cancellation arrives just as
    that result is ready, and the task carries on as if never cancelled. Such a task is
    cancelled again rather than waited for forever.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        # asyncio.wait, not ``await task``: a cancellation of the caller is not mistaken for
        # the task's own, and is not suppressed.
        _done, pending = await asyncio.wait(pending, timeout=RECANCEL_INTERVAL)
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task  # done: raises what the task raised, without waiting
