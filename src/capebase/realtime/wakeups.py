"""Messages between processes: "the log grew" after commits, and "end this user's streams".

The broker only shortens the wait: each process still reads the change log itself, and polls
it when the broker is down, so a broker outage delays delivery but loses nothing. Likewise a
lost "end streams" message is made up for by each process re-checking its streams' sign-ins
(``Hub``, every ``RealtimeConfig.revalidate_interval``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from .backends import BrokerBackend

logger = logging.getLogger("capebase.realtime")

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0
WAKE = b"1"
DISCONNECT = b"disconnect:"
"""Prefix of "end the streams of user <id>": ``disconnect:<process id>:<user id>``."""
MAX_PENDING_DISCONNECTS = 1000
"""Users whose "end streams" message waits for the broker; beyond it the re-check covers."""


class BrokerLink:
    """This process's connection to the broker, with reconnects and backoff."""

    def __init__(
        self,
        broker: BrokerBackend,
        channel: str,
        on_wake: Callable[[], None],
        on_state: Callable[[bool, bool], None] = lambda _connected, _outage: None,
        on_disconnect: Callable[[str], object] = lambda _user_id: None,
        process_id: str = "",
    ) -> None:
        self.broker = broker
        self.channel = channel
        self.on_wake = on_wake
        self.on_disconnect = on_disconnect
        """Called with a user id when another process ended that user's streams."""
        self.process_id = process_id
        self.on_state = on_state
        """Called with (connected, new_outage) on every change of state, for metrics."""
        self.connected = False
        self.outages = 0
        """How many times the link went down; exposed for metrics and tests."""
        self._outbound = asyncio.Event()
        self._wake_pending = False
        self._disconnects: dict[str, None] = {}

    def restart(self) -> None:
        """Make the link usable in the running event loop (before ``connect``)."""
        self._outbound = asyncio.Event()
        if self._wake_pending or self._disconnects:
            self._outbound.set()

    def announce(self) -> None:
        """Tell the other processes to read the log (coalesced: one message per burst)."""
        self._wake_pending = True
        self._outbound.set()

    def disconnect_user(self, user_id: str) -> None:
        """Tell the other processes to end ``user_id``'s streams."""
        if len(self._disconnects) < MAX_PENDING_DISCONNECTS:
            self._disconnects[user_id] = None
        self._outbound.set()

    async def connect(self) -> None:
        """Connect at startup; an unreachable broker is logged, not fatal."""
        try:
            await self.broker.connect()
            self.connected = True
            self.on_state(True, False)
        except Exception as exc:
            self._went_down(exc)

    async def disconnect(self) -> None:
        """Close the broker connection."""
        try:
            await self.broker.disconnect()
        except Exception:
            logger.debug("capebase: error while disconnecting the broker", exc_info=True)
        self.connected = False

    async def publish_forever(self) -> None:
        """Publish one wake-up per burst of local commits, and each user's "end streams"."""
        backoff = INITIAL_BACKOFF
        while True:
            await self._outbound.wait()
            self._outbound.clear()
            try:
                while self._disconnects:
                    user_id = next(iter(self._disconnects))
                    message = f"{self.process_id}:{user_id}".encode()
                    await self.broker.publish(self.channel, DISCONNECT + message)
                    self._disconnects.pop(user_id, None)
                if self._wake_pending:
                    self._wake_pending = False
                    await self.broker.publish(self.channel, WAKE)
                backoff = INITIAL_BACKOFF
            except Exception as exc:
                self._went_down(exc)
                self._wake_pending = True
                self._outbound.set()  # retry once the broker is back
                await asyncio.sleep(_jitter(backoff))
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def listen_forever(self) -> None:
        """Wake the dispatcher on every message; reconnect with backoff when the link drops."""
        backoff = INITIAL_BACKOFF
        while True:
            try:
                async for message in self.broker.listen(self.channel):
                    if not self.connected:
                        self._came_back()
                    backoff = INITIAL_BACKOFF
                    if message.startswith(DISCONNECT):
                        self._received_disconnect(message[len(DISCONNECT) :])
                    else:
                        self.on_wake()
                return  # the backend ended the stream: it was disconnected on purpose
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._went_down(exc)
            await asyncio.sleep(_jitter(backoff))
            backoff = min(backoff * 2, MAX_BACKOFF)
            try:
                await self.broker.connect()
                self._came_back()
            except Exception as exc:
                self._went_down(exc)

    def _received_disconnect(self, body: bytes) -> None:
        sender, _, user_id = body.decode(errors="replace").partition(":")
        if sender != self.process_id and user_id:  # this process ended its own streams
            self.on_disconnect(user_id)

    def _went_down(self, exc: BaseException) -> None:
        new_outage = self.connected or self.outages == 0
        if new_outage:
            self.outages += 1
            logger.warning(
                "capebase: broker unreachable (%s); changes are still committed and logged, "
                "and delivery falls back to polling the change log",
                exc,
            )
        self.connected = False
        self.on_state(False, new_outage)

    def _came_back(self) -> None:
        if not self.connected:
            logger.warning("capebase: broker connection restored; catching up from the log")
        self.connected = True
        self.on_state(True, False)
        self.on_wake()  # read what was committed while the broker was away


def _jitter(seconds: float) -> float:
    return seconds * (0.5 + random.random() / 2)
