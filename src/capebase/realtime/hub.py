"""The hub: a process's real-time side. It keeps the open streams (indexed by table, with
per-client limits), starts and stops the tasks: the ``Dispatcher`` (which reads committed
changes from the log and offers each to the subscribers that may see it), the
``HandlerRunner``, maintenance (sweeps, pruning), re-checks of sign-ins, and the broker link
that wakes the other processes' dispatchers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from ..changes.retention import prune
from ..db.direct import DirectExecutor
from ..errors import NotStartedError, TooManySubscriptionsError
from ..filters.streams import StreamCondition
from ..identity.context import AuthContext
from ..observer import ObserverSlot
from ..policy.registry import Policy
from .alarms import Alarms
from .backends import BrokerBackend
from .config import RealtimeConfig
from .dispatcher import Dispatcher, Reset
from .handler_runner import HandlerRunner
from .handlers import HandlerRegistry
from .index import SubscriberIndex, pins_for
from .resume import ResumePoint
from .server_exit import on_server_exit
from .signing import ResumeTokens, StreamBinding, load_key, stream_binding
from .subscribers import Subscriber
from .views import ModelView
from .visibility import Visibility
from .wakeups import BrokerLink

logger = logging.getLogger("capebase.realtime")

MAINTENANCE_INTERVAL = 5.0
RECANCEL_INTERVAL = 1.0
"""Seconds ``Hub.stop`` waits for a cancelled task to end before cancelling it again."""


SignIn = tuple[str, str, str | None]
"""``(user id, sign-in id, role)`` of an open stream, for re-checking it."""
Revalidator = Callable[[set[SignIn]], Awaitable[set[SignIn]]]
"""Given the sign-ins of open streams, returns those that no longer stand as they are."""


class Hub:
    """Delivery of committed changes to streams and handlers, for one process."""

    def __init__(
        self,
        engine: AsyncEngine,
        policy: Policy,
        handlers: HandlerRegistry,
        config: RealtimeConfig,
        broker: BrokerBackend,
        observers: ObserverSlot,
        direct: DirectExecutor | None = None,
    ) -> None:
        self.engine = engine
        self.observers = observers
        self.direct = direct
        self.policy = policy
        self.visibility = Visibility(policy)
        self.handlers = handlers
        self.config = config
        self.process_id = uuid.uuid4().hex
        self.views: dict[str, ModelView] = {}
        self._indexes: dict[str, SubscriberIndex] = {}
        self._index_version = -1
        self._client_of: dict[Subscriber, str] = {}
        self._per_client: dict[str, int] = {}
        self.alarms = Alarms()
        self.runner = HandlerRunner(
            engine, handlers, config, self.views, self.process_id, observers
        )
        self.dispatcher = Dispatcher(
            engine, direct, config, self.visibility, self.views, self._indexes, self.runner,
            self._refresh_pins, observers,
        )
        self.link = BrokerLink(
            broker,
            config.broker_channel,
            self._wake_up,
            lambda connected, outage: observers.observer.broker_state(connected, outage=outage),
            self._end_user_streams,
            self.process_id,
        )
        self.revalidate: Revalidator | None = None
        """Set by the built-in auth: re-checks open streams' sign-ins periodically."""
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._tokens: ResumeTokens | None = None

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
        self.dispatcher.wake.set()
        self.link.announce()

    def _wake_up(self) -> None:
        self.dispatcher.wake.set()

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

    def binding(
        self, table: str, ctx: AuthContext, filters: Iterable[tuple[str, str]]
    ) -> StreamBinding:
        """What the resume tokens of ``ctx``'s stream of ``table`` with ``filters``, opened
        now, are bound to (``signing.stream_binding``)."""
        rule = self.visibility.fingerprint(self.views[table].model, ctx)
        return stream_binding(table, ctx, filters, rule=rule)

    @property
    def tokens(self) -> ResumeTokens:
        """Issues and verifies this app's resume tokens (once started)."""
        if self._tokens is None:
            raise NotStartedError("Realtime hub not started — is CapeBase's lifespan running?")
        return self._tokens

    async def start(self) -> None:
        """Start following the log from its end, and handle what earlier runs left pending."""
        self.link.restart()
        self.runner.restart()
        key = await load_key(self.engine, self.config.resume_token_secret)
        self._tokens = ResumeTokens(key, self.config.resume_token_ttl)
        await self.dispatcher.start()
        await self.link.connect()
        self._running = True
        self._tasks = [
            asyncio.create_task(self.dispatcher.run_forever(), name="capebase-dispatch"),
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
            # Streams still draining remove themselves; an app kept alive after shutdown
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

    def add_subscriber(
        self,
        view: ModelView,
        ctx: AuthContext,
        filters: list[StreamCondition],
        *,
        client: str | None = None,
        selection: frozenset[str] | None = None,
    ) -> Subscriber:
        """Open a subscription; live changes after ``self.cursor`` reach its queue.

        ``client`` names who opens it (a user id, or an address) for the per-client limit;
        ``selection`` the fields its rows carry (``None``: all).

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
        subscriber = Subscriber(view, ctx, filters, self.config.queue_size, selection)
        if client is not None:
            self._client_of[subscriber] = client
            self._per_client[client] = self._per_client.get(client, 0) + 1
        self._refresh_pins()
        self._indexes[view.table.name].add(subscriber, pins_for(self.policy, subscriber))
        self.observers.observer.subscription_opened(subscriber)
        return subscriber

    def remove_subscriber(self, subscriber: Subscriber) -> None:
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
        self.observers.observer.subscription_closed(subscriber)

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
        return self.dispatcher.has_holes

    def unsettled(self) -> list[int]:
        """Skipped change ids still watched for a late commit."""
        return self.dispatcher.unsettled()

    @property
    def cursor(self) -> int:
        """The id of the last change this process has dispatched."""
        return self.dispatcher.cursor

    async def dispatch_pending(self) -> None:
        """Deliver every change committed since the last call, in id order."""
        await self.dispatcher.dispatch_pending()

    async def replay(
        self, subscriber: Subscriber, point: ResumePoint
    ) -> AsyncIterator[tuple[int, str] | Reset]:
        """What ``subscriber`` missed since ``point`` (``Dispatcher.replay``)."""
        async for item in self.dispatcher.replay(subscriber, point):
            yield item

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
