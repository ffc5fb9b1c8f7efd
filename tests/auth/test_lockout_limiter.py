"""LoginLimiter on its own, with a hand-moved clock: window edges, failures during a lockout, and
which counters it forgets when it tracks too many (found by `make mutate MUTATE=lockout`)."""

from __future__ import annotations

import pytest

from capebase.auth.builtin import lockout
from capebase.auth.builtin.lockout import LoginLimiter

WINDOW = 60.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, per_address: int) -> LoginLimiter:
    return LoginLimiter(
        max_per_account=100, max_per_address=per_address, lockout_seconds=WINDOW, clock=clock
    )


def test_the_window_ends_exactly_lockout_seconds_after_it_starts() -> None:
    clock = Clock()
    limits = limiter(clock, per_address=2)
    limits.record_address_failure("a")
    clock.now += WINDOW  # the first failure's window is over: this one starts a new count
    limits.record_address_failure("a")
    assert limits.retry_after(None, "a") == 0
    clock.now += WINDOW - 1
    limits.record_address_failure("a")  # the second of this window
    assert limits.retry_after(None, "a") == WINDOW


def test_a_lockout_restarts_the_count_without_being_extended_by_one_failure() -> None:
    clock = Clock()
    limits = limiter(clock, per_address=2)
    limits.record_address_failure("a")
    limits.record_address_failure("a")  # locked until 1060
    clock.now += 30
    limits.record_address_failure("a")  # the first of a new count
    assert limits.retry_after(None, "a") == 30
    clock.now += 10
    limits.record_address_failure("a")  # the limit again: locked anew, from now
    assert limits.retry_after(None, "a") == WINDOW


def test_an_account_argument_of_none_asks_about_the_address_only() -> None:
    clock = Clock()
    limits = LoginLimiter(max_per_account=1, max_per_address=5, lockout_seconds=WINDOW, clock=clock)
    limits.record_failure("alice", "a")
    assert limits.retry_after("alice", "a") == WINDOW
    assert limits.retry_after(None, "a") == 0


@pytest.fixture
def five_tracked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Odd, so that "half" (MAX_TRACKED // 2 = 2) and 2.5 differ.
    monkeypatch.setattr(lockout, "MAX_TRACKED", 5)


@pytest.mark.usefixtures("five_tracked")
def test_when_full_the_stalest_unlocked_counts_go_until_under_half() -> None:
    clock = Clock()
    limits = limiter(clock, per_address=2)
    for n in range(1, 6):  # k1 (stalest) .. k5, one failure each: full
        limits.record_address_failure(f"k{n}")
    limits.record_address_failure("k6")  # k1..k4 go (down to one entry), then k6 comes
    again = ["k5", "k6", "k4", "k1"]
    for key in again:
        limits.record_address_failure(key)  # the second failure, where it was remembered
    assert {key for key in again if limits.retry_after(None, key)} == {"k5", "k6"}


@pytest.mark.usefixtures("five_tracked")
def test_a_count_whose_lockout_just_ended_goes_before_live_counts() -> None:
    clock = Clock()
    limits = limiter(clock, per_address=2)
    limits.record_address_failure("old")
    limits.record_address_failure("old")  # locked until 1060
    clock.now += WINDOW  # that lockout ends now: "old" is stale
    for n in range(1, 5):  # "old", k1..k4: full
        limits.record_address_failure(f"k{n}")
    limits.record_address_failure("k5")  # "old", k1, k2, k3 go; k4 stays
    limits.record_address_failure("k4")
    limits.record_address_failure("k3")
    assert (limits.retry_after(None, "k4"), limits.retry_after(None, "k3")) == (WINDOW, 0)


@pytest.mark.usefixtures("five_tracked")
def test_when_every_count_is_locked_the_oldest_goes() -> None:
    clock = Clock()
    limits = limiter(clock, per_address=1)
    for n in range(1, 7):  # each failure locks; the sixth pushes out the first
        limits.record_address_failure(f"k{n}")
        clock.now += 1
    waits = {f"k{n}": limits.retry_after(None, f"k{n}") for n in range(1, 7)}
    assert waits == {"k1": 0, "k2": 55, "k3": 56, "k4": 57, "k5": 58, "k6": 59}
