"""Brute-force protection on POST /auth/token: per account and per address, with expiry.

The limiter's clock is replaced by a settable one, so lockouts expire without sleeping (one test
uses the real clock with a 1 s lockout).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from capebase.auth.builtin import lockout
from capebase.auth.builtin.lockout import LoginLimiter
from tests.auth._support import (
    BAD_CREDENTIALS,
    PASSWORD,
    Clock,
    from_address,
    login,
    running,
    signup,
)

LOCKED = {"detail": "Too many failed sign-in attempts; try again later"}


async def test_an_account_locks_after_n_failures_and_unlocks_later(db_url: str) -> None:
    async with running(db_url, max_failed_logins=3, lockout_time=timedelta(minutes=5)) as (
        built,
        client,
    ):
        clock = built.auth.limiter.clock = Clock()
        await signup(client, "alice@example.com")
        for _ in range(3):
            response = await login(client, "alice@example.com", "wrong password")
            assert (response.status_code, response.json()) == (401, BAD_CREDENTIALS)
        locked = await login(client, "alice@example.com")  # even the right password
        assert (locked.status_code, locked.json()) == (429, LOCKED)
        assert locked.headers["retry-after"] == "300"
        clock.now += 120
        assert (await login(client, "ALICE@example.com")).headers["retry-after"] == "180"
        # The account is locked from every address.
        async with from_address(built.app, "192.0.2.7") as elsewhere:
            assert (await login(elsewhere, "alice@example.com")).status_code == 429
        clock.now += 180
        assert (await login(client, "alice@example.com")).status_code == 200


async def test_unknown_accounts_lock_the_same_way(db_url: str) -> None:
    async with running(db_url, max_failed_logins=2) as (built, client):
        built.auth.limiter.clock = Clock()
        await signup(client, "alice@example.com")
        known = [await login(client, "alice@example.com", "wrong") for _ in range(3)]
        unknown = [await login(client, "nobody@example.com", "wrong") for _ in range(3)]
        for a, b in zip(known, unknown, strict=True):
            assert (a.status_code, a.json()) == (b.status_code, b.json())
        assert [r.status_code for r in known] == [401, 401, 429]


async def test_a_success_clears_the_accounts_count(db_url: str) -> None:
    async with running(db_url, max_failed_logins=3) as (built, client):
        built.auth.limiter.clock = Clock()
        await signup(client, "alice@example.com")
        for _ in range(2):
            assert (await login(client, "alice@example.com", "wrong")).status_code == 401
        assert (await login(client, "alice@example.com")).status_code == 200
        for _ in range(2):
            assert (await login(client, "alice@example.com", "wrong")).status_code == 401
        assert (await login(client, "alice@example.com")).status_code == 200


async def test_an_address_guessing_many_accounts_locks(db_url: str) -> None:
    async with running(db_url, max_failed_logins=10, max_failed_logins_per_address=4) as (
        built,
        client,
    ):
        clock = built.auth.limiter.clock = Clock()
        await signup(client, "alice@example.com")
        for n in range(4):
            assert (await login(client, f"user{n}@example.com", "guess")).status_code == 401
        response = await login(client, "alice@example.com")
        assert response.status_code == 429
        # Another address is not affected, and the lock lifts.
        async with from_address(built.app, "192.0.2.7") as elsewhere:
            assert (await login(elsewhere, "alice@example.com")).status_code == 200
        clock.now += 15 * 60
        assert (await login(client, "alice@example.com")).status_code == 200


async def test_sign_up_conflicts_count_against_the_address(sqlite_url: str) -> None:
    async with running(sqlite_url, max_failed_logins_per_address=2) as (built, client):
        built.auth.limiter.clock = Clock()
        await signup(client, "alice@example.com")
        assert (await signup(client, "alice@example.com")).status_code == 409
        assert (await signup(client, "alice@example.com")).status_code == 409
        response = await signup(client, "bob@example.com")
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0


async def test_lockout_expires_on_the_real_clock(sqlite_url: str) -> None:
    async with running(sqlite_url, max_failed_logins=1, lockout_time=timedelta(seconds=1)) as (
        _built,
        client,
    ):
        await signup(client, "alice@example.com")
        assert (await login(client, "alice@example.com", "wrong")).status_code == 401
        locked = await login(client, "alice@example.com", PASSWORD)
        assert (locked.status_code, locked.headers["retry-after"]) == (429, "1")
        await asyncio.sleep(1.1)
        assert (await login(client, "alice@example.com")).status_code == 200


def test_the_limiter_remembers_a_bounded_number_of_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """An attacker spraying names and addresses cannot grow the counters without bound, and
    eviction drops unlocked keys before locked ones."""
    monkeypatch.setattr(lockout, "MAX_TRACKED", 10)
    clock = Clock()
    limiter = LoginLimiter(max_per_account=1, max_per_address=100, lockout_seconds=60, clock=clock)
    limiter.record_failure("victim", "192.0.2.1")  # locks the account "victim"
    for n in range(50):
        limiter._fail(("address", f"198.51.100.{n}"), 100)
    assert len(limiter._counters) <= 10
    assert limiter.retry_after("victim", "203.0.113.9") == 60
