"""Timed wake-ups for many streams (heartbeats, expiry) with one timer per time slot."""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

RESOLUTION = 0.05
"""Seconds: a wake-up comes at its time or up to this much later."""


class Wakeable(Protocol):
    """What an alarm wakes: a stream's queue."""

    def wake(self) -> None:
        """Wake the stream's reader."""


class Alarms:
    """Wake-ups grouped by time slot: each stream would otherwise hold a ``TimerHandle`` (and
    a copy of its context) of its own, re-armed as it goes; here it holds a list entry.

    A stream that woke early for another reason leaves its entry behind; the later wake-up
    finds nothing waiting and does nothing.
    """

    __slots__ = ("_loop", "_slots")

    def __init__(self) -> None:
        self._slots: dict[int, list[Wakeable]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake_at(self, when: float, target: Wakeable) -> float:
        """Wake ``target`` at loop time ``when`` (or a little later); returns that time."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (a restarted app in tests): the old loop's timers never fire.
            self._loop, self._slots = loop, {}
        slot = math.ceil(when / RESOLUTION)
        members = self._slots.get(slot)
        if members is None:
            members = self._slots[slot] = []
            loop.call_at(slot * RESOLUTION, self._ring, slot)
        members.append(target)
        return slot * RESOLUTION

    def _ring(self, slot: int) -> None:
        for target in self._slots.pop(slot, ()):
            target.wake()
