"""Brute-force protection for sign-in: failure counters per account and per client address.

The counters live in this process's memory. That is exact for one process; with several, each
keeps its own, so an attacker gets up to ``limit x processes`` tries per lockout period.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED = 100_000
"""The most accounts plus addresses remembered; beyond it the stalest unlocked ones go first."""


@dataclass(slots=True)
class _Counter:
    failures: int
    window_start: float
    locked_until: float = 0.0


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

    def record_failure(self, account: str, address: str) -> None:
        """Count a failed sign-in of ``account`` from ``address``."""
        self._fail(("account", account), self.max_per_account)
        self._fail(("address", address), self.max_per_address)

    def record_address_failure(self, address: str) -> None:
        """Count a failure against ``address`` only (a sign-up with a taken email)."""
        self._fail(("address", address), self.max_per_address)

    def record_success(self, account: str) -> None:
        """Forget ``account``'s failures after a successful sign-in."""
        self._counters.pop(("account", account), None)

    def _fail(self, key: tuple[str, str], limit: int) -> None:
        now = self.clock()
        counter = self._counters.get(key)
        if counter is None or now - counter.window_start >= self.lockout_seconds:
            counter = _Counter(failures=0, window_start=now)
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
            for stale in [k for k, c in self._counters.items() if c.locked_until <= now]:
                del self._counters[stale]
                if len(self._counters) < MAX_TRACKED // 2:
                    break
            while len(self._counters) >= MAX_TRACKED:
                self._counters.popitem(last=False)
        self._counters[key] = counter
