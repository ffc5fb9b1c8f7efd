"""Concurrent wrong guesses cannot outrun the sign-in lockout.

OWASP API Security Top 10 (2023): API2 Broken Authentication (brute-force protection). Security
review finding F3: the lockout was checked before the password hash ran in a thread and the
failure counted after it, so 40 concurrent guesses were all checked although the limit was 5
(and a right one among them signed in). Now each attempt is reserved, with the check, before
its hash runs: at most ``limit`` guesses per account and per address are ever checked.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Literal

import httpx
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from capebase.auth.builtin.lockout import BUSY_RETRY_SECONDS, LoginLimiter
from tests.auth._support import PASSWORD, login, running, signup
from tests.security.test_lockout import LOCKED, Clock, from_address

LIMIT = 5
GUESSES = 40
RIGHT = 20


class CountingHasher(Argon2Hasher):
    """A cheap Argon2 that counts the passwords it verifies, each taking a little while, so
    that the concurrent requests really overlap while their hashes run."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified = 0
        self._lock = threading.Lock()

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        with self._lock:
            self.verified += 1
        time.sleep(0.02)
        return super().verify(password, hash)


@pytest.mark.parametrize("key", ["account", "address"])
async def test_concurrent_guesses_check_at_most_the_limit(
    db_url: str, key: Literal["account", "address"]
) -> None:
    """``GUESSES`` concurrent wrong sign-ins, against one account (from many addresses) or
    from one address (against many accounts): exactly ``LIMIT`` passwords are verified, the
    others are 429, and then the right password is refused while locked."""
    hasher = CountingHasher()
    limits = (
        {"max_failed_logins": LIMIT, "max_failed_logins_per_address": 10_000}
        if key == "account"
        else {"max_failed_logins": 10_000, "max_failed_logins_per_address": LIMIT}
    )
    async with running(db_url, password_hash=PasswordHash((hasher,)), **limits) as (
        built,
        client,
    ):
        built.auth.limiter.clock = Clock()
        assert (await signup(client, "alice@example.com")).status_code == 201
        hasher.verified = 0

        async def guess(n: int) -> httpx.Response:
            if key == "account":
                async with from_address(built.app, f"192.0.2.{n + 1}") as elsewhere:
                    return await login(elsewhere, "alice@example.com", f"wrong {n}")
            return await login(client, "alice@example.com", f"wrong {n}")

        responses = await asyncio.gather(*(guess(n) for n in range(GUESSES)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [401] * LIMIT + [429] * (GUESSES - LIMIT)
        assert hasher.verified == LIMIT
        assert all(r.json() == LOCKED for r in responses if r.status_code == 429)
        right = await login(client, "alice@example.com", PASSWORD)
        assert (right.status_code, right.json()) == (429, LOCKED)
        assert hasher.verified == LIMIT


@pytest.mark.parametrize("key", ["account", "address"])
async def test_concurrent_right_sign_ins_all_succeed(
    db_url: str, key: Literal["account", "address"]
) -> None:
    """Regression (security review, low): 20 concurrent sign-ins with the right password got
    429s, since the attempts in flight took up the limit. A right password frees its
    reservation and counts no failure; the others wait for it instead of being refused."""
    hasher = CountingHasher()
    limits = (
        {"max_failed_logins": LIMIT, "max_failed_logins_per_address": 10_000}
        if key == "account"
        else {"max_failed_logins": 10_000, "max_failed_logins_per_address": LIMIT}
    )
    async with running(db_url, password_hash=PasswordHash((hasher,)), **limits) as (
        built,
        client,
    ):
        built.auth.limiter.clock = Clock()
        emails = [f"user{n}@example.com" for n in range(RIGHT)] if key == "address" else []
        for email in emails or ["alice@example.com"]:
            assert (await signup(client, email)).status_code == 201
        hasher.verified = 0

        async def sign_in(n: int) -> httpx.Response:
            if key == "account":
                async with from_address(built.app, f"192.0.2.{n + 1}") as elsewhere:
                    return await login(elsewhere, "alice@example.com", PASSWORD)
            return await login(client, emails[n], PASSWORD)

        responses = await asyncio.gather(*(sign_in(n) for n in range(RIGHT)))
        assert [r.status_code for r in responses] == [200] * RIGHT
        assert hasher.verified == RIGHT


def test_attempts_in_flight_count_against_the_limit() -> None:
    """Reserved attempts take the limit up until settled; a success settled among them resets
    the account's failures but not the other attempts' reservations."""
    clock = Clock()
    limiter = LoginLimiter(max_per_account=3, max_per_address=100, lockout_seconds=60, clock=clock)
    assert [limiter.begin_attempt("user:1", "a") for _ in range(4)] == [0, 0, 0, BUSY_RETRY_SECONDS]
    limiter.end_attempt("user:1", "a", succeeded=False)
    limiter.end_attempt("user:1", "a", succeeded=True)
    assert limiter.begin_attempt("user:1", "a") == 0  # one in flight, one new: 2 of 3
    assert limiter.begin_attempt("user:1", "a") == 0
    assert limiter.begin_attempt("user:1", "a") == BUSY_RETRY_SECONDS
    for _ in range(3):
        limiter.end_attempt("user:1", "a", succeeded=False)
    assert limiter.begin_attempt("user:1", "a") == 60
    clock.now += 60
    assert limiter.begin_attempt("user:1", "a") == 0
