"""Brute-force protection for sign-in: failure counters per account and per client address.

The counters live in this process's memory. That is exact for one process; with several, each
keeps its own, so an attacker gets up to ``limit x processes`` tries per lockout period.

A sign-in reserves its attempt (``begin_attempt``) before the password hash runs, atomically
with the lockout check, and settles it afterwards (``end_attempt``): attempts in flight count
against the limit, so concurrent guesses cannot all pass the check before any failure is counted.
When the limit is taken up only by attempts in flight (nothing is locked), a sign-in waits for
them to settle (``acquire``) rather than being refused: a right password settles as a success,
which frees its reservation and counts nothing, so concurrent right sign-ins all go through,
while wrong ones still lock the key after the limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED = 100_000
"""The most accounts plus addresses remembered; beyond it the stalest unlocked ones go first."""

BUSY_RETRY_SECONDS = 1.0
"""``Retry-After`` while the limit is taken up by attempts still being checked (not yet locked)."""

PATIENCE_SECONDS = 5.0
"""How long ``acquire`` waits for attempts in flight to settle before giving up (429)."""
_POLL_SECONDS = 0.01


@dataclass(slots=True)
class _Counter:
    failures: int
    window_start: float
    locked_until: float = 0.0
    in_flight: int = 0


class LoginLimiter:
    """Locks an account or an address out for ``lockout_seconds`` after too many failures.

    Failures are counted over a window of ``lockout_seconds``; reaching the limit locks the key
    for ``lockout_seconds``. A successful sign-in clears the account's count (not the address's,
    so that one valid account cannot be used to reset an address that guesses others).

    Args:
        max_per_account: failures that lock an account (known or not, so a lockout reveals
            nothing about which accounts exist).
        max_per_address: failures that lock a client address.
        lockout_seconds: the lockout period and the counting window.
        clock: a monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        max_per_account: int,
        max_per_address: int,
        lockout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_per_account = max_per_account
        self.max_per_address = max_per_address
        self.lockout_seconds = lockout_seconds
        self.clock = clock
        self._counters: OrderedDict[tuple[str, str], _Counter] = OrderedDict()
        # The limiter is synchronous, so on one event loop each method is atomic already; the
        # lock keeps it so for apps that sign in from several threads or loops.
        self._lock = threading.Lock()

    def retry_after(self, account: str | None, address: str) -> float:
        """Seconds until ``account`` (``None``: any) from ``address`` may try again; 0: now."""
        now = self.clock()
        keys = (
            [("address", address)]
            if account is None
            else [("account", account), ("address", address)]
        )
        waits = [c.locked_until - now for c in map(self._counters.get, keys) if c is not None]
        return max([0.0, *waits])

    def begin_attempt(self, account: str, address: str) -> float:
        """Reserve a sign-in attempt of ``account`` from ``address`` before checking it.

        Returns 0 if the attempt is reserved (it then counts against both limits until
        ``end_attempt``), else the seconds to wait: the key is locked, or its remaining
        attempts are all in flight.
        """
        return self._begin(account, address)[0]

    async def acquire(
        self, account: str, address: str, *, patience: float = PATIENCE_SECONDS
    ) -> float:
        """``begin_attempt``, waiting up to ``patience`` seconds while the limit is taken up
        by attempts in flight only; the seconds to wait (0: reserved) as it returns them."""
        deadline = time.monotonic() + patience  # real time: ``clock`` may be a test's
        while True:
            wait, locked = self._begin(account, address)
            if wait == 0 or locked or time.monotonic() >= deadline:
                return wait
            await asyncio.sleep(_POLL_SECONDS)

    def _begin(self, account: str, address: str) -> tuple[float, bool]:
        """Reserve as ``begin_attempt`` does: (seconds to wait, whether a key is locked)."""
        keys = (("account", account, self.max_per_account),
                ("address", address, self.max_per_address))
        with self._lock:
            now = self.clock()
            counters = [(self._current(kind, name, now), limit) for kind, name, limit in keys]
            locked = max(c.locked_until - now for c, _limit in counters)
            if locked > 0:
                return locked, True
            if any(c.failures + c.in_flight >= limit for c, limit in counters):
                return BUSY_RETRY_SECONDS, False
            for counter, _limit in counters:
                counter.in_flight += 1
            return 0.0, False

    def end_attempt(self, account: str, address: str, *, succeeded: bool) -> None:
        """Settle an attempt ``begin_attempt`` reserved: count it as a failure or a success."""
        with self._lock:
            for key in (("account", account), ("address", address)):
                counter = self._counters.get(key)
                if counter is not None and counter.in_flight > 0:
                    counter.in_flight -= 1
            if succeeded:
                self._succeed(account)
            else:
                self._fail(("account", account), self.max_per_account)
                self._fail(("address", address), self.max_per_address)

    def record_failure(self, account: str, address: str) -> None:
        """Count a failed sign-in of ``account`` from ``address``."""
        with self._lock:
            self._fail(("account", account), self.max_per_account)
            self._fail(("address", address), self.max_per_address)

    def record_address_failure(self, address: str) -> None:
        """Count a failure against ``address`` only (a sign-up with a taken email)."""
        with self._lock:
            self._fail(("address", address), self.max_per_address)

    def record_success(self, account: str) -> None:
        """Forget ``account``'s failures after a successful sign-in."""
        with self._lock:
            self._succeed(account)

    def _succeed(self, account: str) -> None:
        counter = self._counters.get(("account", account))
        if counter is not None and counter.in_flight > 0:
            counter.failures = 0  # the attempts still in flight keep their reservations
        else:
            self._counters.pop(("account", account), None)

    def _current(self, kind: str, name: str, now: float) -> _Counter:
        """The counter of ``(kind, name)`` for the window ``now`` is in, remembered."""
        key = (kind, name)
        counter = self._counters.get(key)
        if counter is None:
            counter = _Counter(failures=0, window_start=now)
            self._remember(key, counter)
        elif now - counter.window_start >= self.lockout_seconds:
            counter.failures, counter.window_start = 0, now
        self._counters.move_to_end(key)
        return counter

    def _fail(self, key: tuple[str, str], limit: int) -> None:
        now = self.clock()
        counter = self._counters.get(key)
        if counter is None or now - counter.window_start >= self.lockout_seconds:
            in_flight = counter.in_flight if counter is not None else 0
            counter = _Counter(failures=0, window_start=now, in_flight=in_flight)
            self._remember(key, counter)
        self._counters.move_to_end(key)
        counter.failures += 1
        if counter.failures >= limit:
            counter.locked_until = now + self.lockout_seconds
            counter.failures = 0
            counter.window_start = now

    def _remember(self, key: tuple[str, str], counter: _Counter) -> None:
        if len(self._counters) >= MAX_TRACKED:
            now = self.clock()
            stale_keys = [
                k for k, c in self._counters.items() if c.locked_until <= now and not c.in_flight
            ]
            for stale in stale_keys:
                del self._counters[stale]
                if len(self._counters) < MAX_TRACKED // 2:
                    break
            while len(self._counters) >= MAX_TRACKED:
                self._counters.popitem(last=False)
        self._counters[key] = counter
