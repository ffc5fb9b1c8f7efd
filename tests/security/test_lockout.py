"""Sign-in lockout cannot be sidestepped by spelling the account another way.

OWASP API Security Top 10 (2023): API2 Broken Authentication (brute-force protection). Issue 16,
item 5: the lockout key was the typed login, but MariaDB compares ``User.email`` accent- and
case-insensitively, so ``alícé@example.com`` with the right password signed in while
``alice@example.com`` was locked; and on every database an account's email and username kept
separate counters. Now the account is locked (after the lookup), the lookup is exact on every
database, and the per-address counter stays as it was.

The limiter's own behaviour is pinned in ``tests/auth/test_lockout.py``; the two unit tests at
the end kill the mutants issue 17 lists for ``lockout.py``.
"""

from __future__ import annotations

import itertools

from capebase.auth.builtin.lockout import LoginLimiter
from tests.auth._support import BAD_CREDENTIALS, Clock, from_address, login, running, signup

LOCKED = {"detail": "Too many failed sign-in attempts; try again later"}

SPELLINGS = ["alice@example.com", "alice", "ALICE@Example.com", "  Alice  ", " alice@EXAMPLE.com"]
"""Ways of typing one account: its email and its username, in any case, with spaces."""

LOOK_ALIKES = [
    "alícé@example.com",
    "ALÍCE@EXAMPLE.COM",
    "alice@exämple.com",
    "àlice@example.com",
    "álice",
    "ALİCE",
    "alicé",
]
"""Other accounts' names that a case- or accent-insensitive collation takes for alice's."""


async def test_every_spelling_of_an_account_shares_one_count(db_url: str) -> None:
    """Failures spread over the email and the username lock the account under every
    spelling; before, each typed login had a count of its own."""
    limit = 4
    async with running(db_url, max_failed_logins=limit, max_failed_logins_per_address=1000) as (
        built,
        client,
    ):
        built.auth.limiter.clock = Clock()
        assert (await signup(client, "alice@example.com", username="alice")).status_code == 201
        for spelling in SPELLINGS:
            assert (await login(client, spelling)).status_code == 200, spelling
        for spelling in itertools.islice(itertools.cycle(SPELLINGS), limit):
            response = await login(client, spelling, "wrong password")
            assert (response.status_code, response.json()) == (401, BAD_CREDENTIALS)
        async with from_address(built.app, "192.0.2.7") as elsewhere:
            for spelling in SPELLINGS:
                response = await login(elsewhere, spelling)  # the right password
                assert (response.status_code, response.json()) == (429, LOCKED), spelling


async def test_look_alike_logins_are_other_accounts(db_url: str) -> None:
    """Exact lookups: a look-alike of alice's email or username with her password signs in
    nobody, locked or not, and its failures are not alice's."""
    async with running(db_url, max_failed_logins=2, max_failed_logins_per_address=1000) as (
        built,
        client,
    ):
        clock = built.auth.limiter.clock = Clock()
        assert (await signup(client, "alice@example.com", username="alice")).status_code == 201
        for look_alike in LOOK_ALIKES:
            response = await login(client, look_alike)
            assert (response.status_code, response.json()) == (401, BAD_CREDENTIALS), look_alike
        assert (await login(client, "alice")).status_code == 200  # not locked by look-alikes

        for _ in range(2):
            assert (await login(client, "alice@example.com", "wrong")).status_code == 401
        assert (await login(client, "alice@example.com")).status_code == 429
        for look_alike in LOOK_ALIKES:
            response = await login(client, look_alike)
            assert response.status_code == 401, look_alike  # not 200: nobody signs in
        clock.now += 15 * 60
        assert (await login(client, "alice@example.com")).status_code == 200


async def test_a_success_leaves_the_address_count(sqlite_url: str) -> None:
    """One valid account cannot reset an address that guesses others."""
    async with running(sqlite_url, max_failed_logins=10, max_failed_logins_per_address=4) as (
        built,
        client,
    ):
        built.auth.limiter.clock = Clock()
        assert (await signup(client, "alice@example.com")).status_code == 201
        for n in range(3):
            assert (await login(client, f"user{n}@example.com", "guess")).status_code == 401
        assert (await login(client, "alice@example.com")).status_code == 200
        assert (await login(client, "user3@example.com", "guess")).status_code == 401
        assert (await login(client, "alice@example.com")).status_code == 429


def test_failures_older_than_the_window_are_forgotten() -> None:
    """Failures are counted per window of ``lockout_seconds``: limit - 1 failures, a quiet
    window, limit - 1 more lock nothing; a full count within one window still locks."""
    clock = Clock()
    limiter = LoginLimiter(max_per_account=3, max_per_address=3, lockout_seconds=60, clock=clock)
    for _ in range(2):
        limiter.record_failure("user:1", "192.0.2.1")
    clock.now += 60
    for _ in range(2):
        limiter.record_failure("user:1", "192.0.2.1")
    assert limiter.retry_after("user:1", "192.0.2.1") == 0
    limiter.record_failure("user:1", "192.0.2.1")
    assert limiter.retry_after("user:1", "192.0.2.1") == 60
    assert limiter.retry_after(None, "192.0.2.1") == 60


def test_a_success_clears_the_account_and_not_the_address() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_per_account=3, max_per_address=3, lockout_seconds=60, clock=clock)
    for _ in range(2):
        limiter.record_failure("user:1", "192.0.2.1")
    limiter.record_success("user:1")
    limiter.record_failure("user:1", "192.0.2.1")
    # The account's count restarted (1 of 3); the address's did not (3 of 3).
    assert limiter.retry_after("user:1", "198.51.100.1") == 0
    assert limiter.retry_after(None, "192.0.2.1") == 60


async def test_an_unknown_login_is_counted_without_being_kept(sqlite_url: str) -> None:
    """A sign-in's login is what a client types, of any length: an unknown one is counted
    under its digest, never kept whole (final review of issue 16: 200-kilobyte logins filled
    the lockout table), and it still locks out when repeated."""
    async with running(sqlite_url) as (built, _client), from_address(
        built.app, "203.0.113.7"
    ) as client:
        for i in range(3):
            huge = f"{i}" + "x" * 200_000 + "@example.com"
            response = await client.post(
                "/auth/token", data={"username": huge, "password": "whatever-password"}
            )
            assert response.status_code == 401
        assert max(len(name) for _kind, name in built.auth.limiter._counters) < 100
        statuses = []
        for _ in range(built.auth.config.max_failed_logins + 1):
            response = await client.post(
                "/auth/token", data={"username": "ghost@example.com", "password": "nope"}
            )
            statuses.append(response.status_code)
        assert statuses[-1] == 429, statuses
