"""Wake-ups between processes: publish "the log grew" after commits, listen for others'.

The broker only shortens the wait: each process still reads the change log itself, and polls
it when the broker is down, so a broker outage delays delivery but loses nothing.
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


class BrokerLink:
    """This process's connection to the broker, with reconnects and backoff."""

    def __init__(
        self,
        broker: BrokerBackend,
        channel: str,
        on_wake: Callable[[], None],
        on_state: Callable[[bool, bool], None] = lambda _connected, _outage: None,
    ) -> None:
        self.broker = broker
        self.channel = channel
        self.on_wake = on_wake
        self.on_state = on_state
        """Called with (connected, new_outage) on every change of state, for metrics."""
        self.connected = False
        self.outages = 0
        """How many times the link went down; exposed for metrics and tests."""
        self._outbound = asyncio.Event()

    def announce(self) -> None:
        """Tell the other processes to read the log (coalesced: one message per burst)."""
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
        """Publish one wake-up per burst of local commits."""
        backoff = INITIAL_BACKOFF
        while True:
            await self._outbound.wait()
            self._outbound.clear()
            try:
                await self.broker.publish(self.channel, b"1")
                backoff = INITIAL_BACKOFF
            except Exception as exc:
                self._went_down(exc)
                self._outbound.set()  # retry the wake-up once the broker is back
                await asyncio.sleep(_jitter(backoff))
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def listen_forever(self) -> None:
        """Wake the dispatcher on every message; reconnect with backoff when the link drops."""
        backoff = INITIAL_BACKOFF
        while True:
            try:
                async for _message in self.broker.listen(self.channel):
                    if not self.connected:
                        self._came_back()
                    backoff = INITIAL_BACKOFF
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
