"""The item sequence of one stream, shared by both transports: replay, live, heartbeats, end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ...db.failures import classify
from ...realtime.dispatcher import Reset
from ...realtime.resume import ResumePoint, format_token
from ...realtime.signing import InvalidResumeToken, StreamBinding
from ...realtime.subscribers import CLOSE, Subscriber
from .common import EXPIRED, HEARTBEAT, Delivery, Overflowed, Unavailable

if TYPE_CHECKING:
    from ...realtime.hub import Hub

logger = logging.getLogger("capebase.realtime")

RULE_FAILED = "this stream's read rule failed; reconnect to resume"
"""The ``unavailable`` reason of a stream whose read rule failed (logged, with the error)."""

REPLAY_BUFFER = 64
"""Replayed messages read ahead of the client."""

MAX_BATCH = 256
"""Live messages handed to the transport at once (written to the socket together)."""

RECHECK_EVERY = 64
"""Replayed changes held back at most before the read rule is checked unchanged."""

_RULE_CHANGED = Reset(
    0,
    "this stream's read rule changed during the replay (it takes a value from the clock); "
    "reload and follow live",
)

EARLY = 0.001
"""Seconds a timed wake-up may come early (timers run up to the clock's resolution early)."""


class Stream:
    """One subscriber's item sequence, shared by both transports.

    A transport first writes ``replay()``'s batches (when the client resumes), then loops::

        while not stream.ended:
            batch = stream.poll()
            if batch is None:
                await stream.wait()
            else:
                write(batch)

    ``resume`` is the client's token: one this app issued for this stream (``binding``) within
    ``resume_token_ttl`` resumes; any other gets a ``Reset`` and the stream follows live.

    Items are ``Delivery``, ``Reset``, ``HEARTBEAT``, or a final ``Overflowed``, ``EXPIRED``
    (the context's ``expires_at`` passed, or the hub disconnected the user) or
    ``Unavailable`` (the database failed during the replay, or the stream's read rule
    failed). A live batch is everything queued when the transport asked, so a backlog is
    written in one go. The stream ends quietly once ``subscriber.gone`` (the client left).

    The live part is synchronous on purpose: an idle stream then holds a single future while
    it waits, not a generator, an ``asend`` awaitable and a coroutine, which all outlive
    young garbage collections and make the full ones (over every stream) come sooner.
    """

    __slots__ = (
        "_alarm_at",
        "_cursor",
        "_expiry",
        "_heartbeat",
        "_opened_at",
        "_quiet_since",
        "_rejected",
        "ended",
        "hub",
        "point",
        "subscriber",
    )

    def __init__(
        self,
        hub: Hub,
        subscriber: Subscriber,
        resume: str | None,
        binding: StreamBinding,
        heartbeat: float,
    ) -> None:
        self.hub = hub
        self.subscriber = subscriber
        self.point: ResumePoint | None = None
        self._rejected: str | None = None
        self._opened_at: str | None = None
        if resume is not None:
            # Where live delivery starts, taken right after subscribing: a reset resumes here.
            self._opened_at = format_token(hub.cursor, hub.unsettled())
            try:
                self.point = hub.tokens.verify(binding, resume)
            except InvalidResumeToken as exc:
                self._rejected = exc.reason
        self.ended = False
        self._cursor = _Cursor(hub, binding, self.point)
        self._heartbeat = heartbeat
        self._alarm_at = 0.0  # when the pending wake-up rings; re-armed only once it has rung
        loop_time = asyncio.get_running_loop().time()
        self._quiet_since = loop_time
        self._expiry: float | None = None
        if subscriber.ctx.expires_at is not None:
            remaining = (subscriber.ctx.expires_at - datetime.now(UTC)).total_seconds()
            self._expiry = loop_time + remaining

    async def replay(self) -> AsyncGenerator[list[Any], None]:
        """What the client missed since its resume point, one item per batch (if any).

        Replayed changes are judged by the read rule as built now, which the token vouches
        was the rule when the stream it came from opened. A rule that takes a value from the
        clock (``date.today()``) may step while the replay runs: changes are held back, up
        to ``RECHECK_EVERY`` at a time, until the rule is found unchanged after they were
        judged (a clock only moves forward, so unchanged at both ends is unchanged between);
        a changed rule ends the replay with a reset.
        """
        point, subscriber, cursor = self.point, self.subscriber, self._cursor
        if self._rejected is not None:
            yield [self._reset(f"{self._rejected}; reload and follow live")]
            return
        if point is None:
            return
        resume_from = cursor.sign(format_token(point.last_id, point.holes))
        held: list[tuple[int, str]] = []
        ending: Reset | None = None
        try:
            replay = _in_own_task(self.hub.replay(subscriber, point))
            async with contextlib.aclosing(replay):
                async for item in replay:
                    if subscriber.gone:
                        self.ended = True
                        return
                    if isinstance(item, Reset):
                        ending = item
                        break
                    held.append(item)
                    if len(held) < RECHECK_EVERY:
                        continue
                    if not self._rule_unchanged():
                        held, ending = [], _RULE_CHANGED
                        break
                    for change in held:
                        delivery = cursor.replayed(*change)
                        resume_from = delivery.token
                        yield [delivery]
                    held = []
            if held and not self._rule_unchanged():
                held, ending = [], _RULE_CHANGED
            for change in held:
                delivery = cursor.replayed(*change)
                resume_from = delivery.token
                yield [delivery]
            if ending is not None:
                yield [self._reset(ending.reason)]
        except Exception as exc:
            # End the stream with where to resume from, rather than cutting the connection:
            # the database went away mid-replay, or the stream's read rule failed on a change.
            self.ended = True
            if classify(exc) is not None:
                yield [Unavailable(resume_from)]
            else:
                logger.warning(
                    "capebase: the replay of a %s stream (caller %r) failed; the stream ends: "
                    "%r", subscriber.view.table.name, subscriber.ctx.id, exc, exc_info=exc,
                )
                yield [Unavailable(resume_from, RULE_FAILED)]
        self._quiet_since = asyncio.get_running_loop().time()

    def _rule_unchanged(self) -> bool:
        """Whether the stream's read rule, built now, is the one its token was bound to."""
        subscriber = self.subscriber
        rule = self.hub.visibility.fingerprint(subscriber.view.model, subscriber.ctx)
        return rule is not None and rule == self._cursor.binding.rule

    def opening_token(self) -> str:
        """The token of where live delivery starts (call it right after subscribing)."""
        self._opened_at = format_token(self.hub.cursor, self.hub.unsettled())
        return self._cursor.sign(self._opened_at)

    def _resume_token(self) -> str:
        """Where the client resumes: after its last change, else where the stream opened."""
        token = self._cursor.token()
        if not token and self._opened_at is not None:
            token = self._cursor.sign(self._opened_at)
        return token

    def _reset(self, reason: str) -> Reset:
        """A reset to send: the client reloads and follows live from where the stream opened."""
        self._cursor.reset()
        opened_at = self._opened_at or "0"
        return Reset(int(opened_at.partition("~")[0]), reason, self._cursor.sign(opened_at))

    def poll(self) -> list[Any] | None:
        """The next batch (maybe empty), or ``None`` when nothing is due yet: then
        ``await wait()``. After a batch ``ended`` may be set: the stream is over."""
        subscriber = self.subscriber
        if subscriber.gone:
            self.ended = True
            return []
        now = asyncio.get_running_loop().time()
        expiry = self._expiry
        if expiry is not None and now >= expiry - EARLY:
            self.ended = True
            return [EXPIRED]
        queue = subscriber.queue
        if queue.empty():
            due = self._quiet_since + self._heartbeat
            if expiry is not None and expiry < due:
                due = expiry
            elif now >= due - EARLY:
                self._quiet_since = now
                return [HEARTBEAT]
            if self._alarm_at <= now:
                self._alarm_at = self.hub.alarms.wake_at(due, queue)
            return None
        batch: list[Any] = []
        cursor = self._cursor
        for queued in queue.take(MAX_BATCH):
            if queued is CLOSE:
                self.ended = True
                if subscriber.overflowed:
                    batch.append(Overflowed(cursor.token() if cursor.highest else None))
                elif subscriber.revoked:
                    batch.append(EXPIRED)
                elif subscriber.failed:
                    batch.append(Unavailable(self._resume_token(), RULE_FAILED))
                return batch
            delivery = cursor.live(*queued)
            if delivery is not None:
                batch.append(delivery)
        if batch:
            self._quiet_since = now
        return batch

    def wait(self) -> asyncio.Future[None]:
        """A future done once ``poll`` may have something (an item, a due time, a hang-up)."""
        return self.subscriber.queue.waiter()


class _Cursor:
    """What the client has: the highest id it got, the replayed ids, and resume tokens."""

    __slots__ = ("binding", "had_not", "had_upto", "highest", "hub", "replayed_ids")

    def __init__(self, hub: Hub, binding: StreamBinding, point: ResumePoint | None) -> None:
        self.hub = hub
        self.binding = binding
        self.highest = point.last_id if point else None
        # Empty tuples until needed: most streams never resume, and an empty set is 216 bytes.
        self.replayed_ids: set[int] | tuple[()] = ()
        # What the client already has: up to its token but its holes. A process that is
        # behind the one that issued the token delivers those changes live later; they are
        # skipped.
        self.had_upto = point.last_id if point else 0
        self.had_not: frozenset[int] | tuple[()] = frozenset(point.holes) if point else ()

    def reset(self) -> None:
        """The log no longer covers the client's point: it reloads and follows live."""
        self.highest, self.had_upto = None, 0

    def replayed(self, change_id: int, text: str) -> Delivery:
        """A replayed change."""
        if not isinstance(self.replayed_ids, set):
            self.replayed_ids = set()
        self.replayed_ids.add(change_id)
        self._advance(change_id)
        return Delivery(change_id, text, self.token())

    def live(self, change_id: int, text: str) -> Delivery | None:
        """A live change, or ``None`` when the client already has it."""
        if change_id in self.replayed_ids or (
            change_id <= self.had_upto and change_id not in self.had_not
        ):
            return None  # a late commit the replay already sent, or one the client had
        self._advance(change_id)
        if not self.hub.has_holes and not self.replayed_ids:
            return Delivery(change_id, text, self.sign(str(self.highest)))
        return Delivery(change_id, text, self.token())

    def _advance(self, change_id: int) -> None:
        if self.highest is None or change_id > self.highest:
            self.highest = change_id

    def token(self) -> str:
        """Where the client resumes: ``""`` before its first change."""
        if self.highest is None:
            return ""
        # This process's unsettled ids, less those the client already had or was replayed.
        unsettled = (
            h
            for h in self.hub.unsettled()
            if (h > self.had_upto or h in self.had_not) and h not in self.replayed_ids
        )
        return self.sign(format_token(self.highest, unsettled))

    def sign(self, position: str) -> str:
        """The signed token of ``position`` for this stream."""
        return self.hub.tokens.issue(self.binding, position)


async def _in_own_task(items: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
    """``items``, produced by a task of their own through a small bounded queue.

    The replay reads the database. Should the stream be cancelled mid-query (a server
    shutdown that ran out of time), SQLAlchemy would terminate the connection instead of
    returning it, which with aiosqlite leaves a task pending forever. The reading task gets a
    single plain cancel instead and closes its generator itself.
    """
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=REPLAY_BUFFER)

    async def pump() -> None:
        try:
            async for item in items:
                await queue.put((True, item))
        except Exception as exc:
            await queue.put((False, exc))
            return
        finally:
            close = getattr(items, "aclose", None)
            if close is not None:
                await close()
        await queue.put((False, None))

    task = asyncio.create_task(pump(), name="capebase-replay")
    try:
        while True:
            is_item, value = await queue.get()
            if not is_item:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        task.cancel()
        # When we are being cancelled this wait is cut short at once; the task still ends by
        # itself, right after its current query.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})
