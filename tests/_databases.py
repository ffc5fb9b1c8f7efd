"""The servers the test suite talks to: probed once, and throwaway databases created on them.

One `TestServers` object lives for the whole pytest session. It owns one admin connection per
server on a private event loop in a background thread, so the sync fixtures in conftest.py can use
the async drivers without touching pytest-asyncio's per-test loops.

Two tricks hide most of the per-test cost (a PostgreSQL CREATE DATABASE takes 0.05-0.5 s here):

- a spare database per server is created ahead of time, while the previous test runs;
- a test's database is dropped in the background, after the test; `close()` waits for the drops.

Every database is named `cb_<run id>_<n>`, so concurrent runs never touch each other's databases
and `close()` can drop whatever this run left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Literal, TypeVar

import asyncmy  # type: ignore[import-untyped]
import asyncmy.errors  # type: ignore[import-untyped]
import asyncpg  # type: ignore[import-untyped]
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

T = TypeVar("T")

DbKind = Literal["sqlite", "postgresql", "mariadb"]
ServerKind = Literal["postgresql", "mariadb", "redis"]

DB_KINDS: tuple[DbKind, ...] = ("sqlite", "postgresql", "mariadb")

HOST = "127.0.0.1"
PORTS: dict[ServerKind, int] = {"postgresql": 5432, "mariadb": 3306, "redis": 6379}
TITLES: dict[ServerKind, str] = {"postgresql": "PostgreSQL", "mariadb": "MariaDB", "redis": "Redis"}
START_COMMANDS: dict[ServerKind, str] = {
    "postgresql": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "mariadb": "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd",
    "redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}

# Redis has databases 0-15. Each run claims one of 1-15 with a key in database 0, so that two
# concurrent runs never flush each other's data. A crashed run's claim expires on its own.
REDIS_CLAIM_KEY = "capebase-test:claim:{}"
REDIS_CLAIM_SECONDS = 4 * 3600
ADMIN_TIMEOUT = 60.0
ADMIN_LOCK_WAIT = 8
"""Seconds a MariaDB admin statement waits for a lock (lock_wait_timeout)."""
DROP_ATTEMPTS = 3
LOCK_WAIT_TIMEOUT = 1205
"""MariaDB's error code for a lock (a metadata lock too) not granted in lock_wait_timeout."""
STATEMENT_TIMEOUT = 20.0
"""Seconds one admin statement may take; past that its connection is dropped (its state is
unknown) and the caller gets an error naming the server, instead of every later test waiting."""


def is_ci() -> bool:
    """Whether we run under CI, where a missing server fails the test instead of skipping it."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def selected_db_kinds() -> list[DbKind]:
    """The database kinds named by CAPEBASE_TEST_DBS (default: all of them).

    Raises:
        ValueError: it names an unknown kind; or, under CI, it leaves a kind out (a narrowing
            meant for a developer's shell must not silently skip part of the suite in CI).
    """
    raw = os.environ.get("CAPEBASE_TEST_DBS", "").strip()
    if not raw:
        return list(DB_KINDS)
    names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    unknown = sorted(set(names) - set(DB_KINDS))
    if unknown or not names:
        raise ValueError(
            f"CAPEBASE_TEST_DBS={raw!r} names unknown databases {unknown}; "
            f"use a comma-separated subset of {','.join(DB_KINDS)}"
        )
    left_out = [kind for kind in DB_KINDS if kind not in names]
    if left_out and is_ci():
        raise ValueError(
            f"CI=true but CAPEBASE_TEST_DBS={raw!r} leaves out {', '.join(left_out)}: CI runs "
            "the suite on every database. Unset CAPEBASE_TEST_DBS (or set it to "
            f"{','.join(DB_KINDS)}) for CI; narrow it only outside CI."
        )
    return [kind for kind in DB_KINDS if kind in names]


def unavailable_message(server: ServerKind, error: BaseException) -> str:
    """Say which server is down and exactly how to start it."""
    message = (
        f"{TITLES[server]} is not reachable at {HOST}:{PORTS[server]} "
        f"({type(error).__name__}: {error}). Start it with:\n    {START_COMMANDS[server]}"
    )
    if server != "redis":
        message += "\nor run only SQLite: CAPEBASE_TEST_DBS=sqlite"
    return message


def require(servers: TestServers, server: ServerKind) -> None:
    """Skip the test if `server` is down, saying how to start it; under CI, fail it instead.

    Also skips it if CAPEBASE_TEST_DBS leaves the server out.
    """
    if server != "redis" and server not in selected_db_kinds():
        pytest.skip(f"CAPEBASE_TEST_DBS={os.environ['CAPEBASE_TEST_DBS']} leaves out {server}")
    problem = servers.problem(server)
    if problem is None:
        return
    if is_ci():
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


RECONNECT_ATTEMPTS = 60
"""Half-second tries to reach a server that is restarting (another test restarts them)."""


class TestServers:
    """Probes PostgreSQL, MariaDB and Redis once; creates and drops per-test databases."""

    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        self.run_id = secrets.token_hex(4)
        self.prefix = f"cb_{self.run_id}_"
        self._names = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._problems: dict[ServerKind, str | None] = {}
        self._pg: Any = None
        self._maria: Any = None
        self._locks: dict[ServerKind, asyncio.Lock] = {}
        self._spares: dict[DbKind, Future[str]] = {}
        self._drops: list[Future[None]] = []
        self._redis: redis.Redis | None = None
        self._redis_db: int | None = None

    # -- availability ------------------------------------------------------------------------

    def problem(self, server: ServerKind) -> str | None:
        """Why `server` can't be used (with how to start it), or None if it is up. Cached."""
        if server not in self._problems:
            try:
                if server == "redis":
                    self._connect_redis()
                else:
                    self._run(self._connect(server))
            except Exception as error:
                self._problems[server] = unavailable_message(server, error)
            else:
                self._problems[server] = None
        return self._problems[server]

    # -- SQL databases -----------------------------------------------------------------------

    def url(self, kind: DbKind, name: str) -> str:
        if kind == "postgresql":
            return f"postgresql+asyncpg://postgres@{HOST}:{PORTS['postgresql']}/{name}"
        if kind == "mariadb":
            return f"mysql+asyncmy://root@{HOST}:{PORTS['mariadb']}/{name}"
        raise ValueError(f"{kind} has no server")

    def create_database(self, kind: DbKind) -> str:
        """Return the name of a new empty database, and start creating the next one."""
        spare = self._spares.pop(kind, None)
        name = spare.result(ADMIN_TIMEOUT) if spare is not None else self._run(self._create(kind))
        self._spares[kind] = self._submit(self._create(kind))
        return name

    def drop_database(self, kind: DbKind, name: str, *, wait: bool = False) -> None:
        """Drop `name`, in the background unless `wait`; `close()` waits for the rest."""
        if wait:
            self._run(self._drop(kind, name))
            return
        self._drops = [drop for drop in self._drops if not drop.done()]
        self._drops.append(self._submit(self._drop(kind, name)))

    def database_names(self, kind: DbKind) -> list[str]:
        """The databases of this run that exist on `kind`'s server now (spares included)."""
        return self._run(self._database_names(kind))

    async def _database_names(self, kind: DbKind) -> list[str]:
        pattern = self.prefix.replace("_", r"\_") + "%"
        if kind == "postgresql":
            sql = "SELECT datname FROM pg_database WHERE datname LIKE $1"
            return [name for (name,) in await self._pg_fetch(sql, pattern)]
        return [name for (name,) in await self._maria_execute("SHOW DATABASES LIKE %s", (pattern,))]

    async def _create(self, kind: DbKind) -> str:
        name = f"{self.prefix}{next(self._names)}"
        if kind == "postgresql":
            await self._pg_execute(f'CREATE DATABASE "{name}"')
        else:
            await self._maria_execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return name

    async def _drop(self, kind: DbKind, name: str) -> None:
        if kind == "postgresql":
            await self._pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        # MariaDB has no WITH (FORCE): a connection the test leaked inside a transaction would
        # hold a metadata lock and make DROP DATABASE wait, so end those connections first.
        # Each attempt waits at most lock_wait_timeout (set at connect) and then lets the next
        # admin call in: a drop that cannot get its lock must not hold up the next test's
        # CREATE (it did, for 30 s, failing an unrelated test). A database still locked after
        # the attempts is left for the next run's _drop_leftovers.
        for _attempt in range(DROP_ATTEMPTS):
            rows = await self._maria_execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = %s AND id <> CONNECTION_ID()",
                (name,),
            )
            for (thread_id,) in rows:
                with contextlib.suppress(asyncmy.errors.OperationalError):  # it ended meanwhile
                    await self._maria_execute(f"KILL CONNECTION {int(thread_id)}")
            try:
                await self._maria_execute(f"DROP DATABASE IF EXISTS `{name}`")
                return
            except asyncmy.errors.OperationalError as error:
                if error.args[0] != LOCK_WAIT_TIMEOUT:
                    raise

    async def _drop_leftovers(self) -> None:
        """Drop every database of this run that is still there (after a crash, or the spares)."""
        kinds: list[DbKind] = []
        if self._pg is not None:
            kinds.append("postgresql")
        if self._maria is not None:
            kinds.append("mariadb")
        for kind in kinds:
            for name in await self._database_names(kind):
                await self._drop(kind, name)

    # -- Redis -------------------------------------------------------------------------------

    def redis_url(self) -> str:
        """The URL of this run's Redis database, emptied."""
        client = self._connect_redis()
        if self._redis_db is None:
            self._redis_db = self._claim_redis_db(client)
        client.execute_command("SELECT", self._redis_db)
        client.flushdb()
        return f"redis://{HOST}:{PORTS['redis']}/{self._redis_db}"

    def flush_redis(self) -> None:
        if self._redis is not None and self._redis_db is not None:
            try:
                self._redis.execute_command("SELECT", self._redis_db)
            except redis.ConnectionError:
                # Redis restarted under us (the outage tests do that): reconnect once.
                self._redis.close()
                self._redis = None
                self._connect_redis().execute_command("SELECT", self._redis_db)
            assert self._redis is not None
            self._redis.flushdb()

    def _claim_redis_db(self, client: redis.Redis) -> int:
        client.execute_command("SELECT", 0)
        for db in range(1, 16):
            if client.set(REDIS_CLAIM_KEY.format(db), self.run_id, nx=True, ex=REDIS_CLAIM_SECONDS):
                return db
        raise RuntimeError(
            "Redis databases 1-15 are all claimed by other test runs; "
            f"see the {REDIS_CLAIM_KEY.format('*')} keys in database 0"
        )

    def _connect_redis(self) -> redis.Redis:
        if self._redis is None:
            # single_connection_client: SELECT then FLUSHDB must go over the same connection.
            client = redis.Redis(
                host=HOST,
                port=PORTS["redis"],
                socket_connect_timeout=3,
                socket_timeout=10,
                single_connection_client=True,
                retry=Retry(NoBackoff(), retries=0),  # a probe of a server that is down: fail now
            )
            try:
                client.ping()
            except Exception:
                client.close()
                raise
            self._redis = client
        return self._redis

    # -- shutdown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Wait for pending drops, drop this run's leftovers, release Redis, stop the loop."""
        try:
            if self._loop is not None:
                for future in [*self._drops, *self._spares.values()]:
                    # A failed drop is retried by _drop_leftovers below.
                    with contextlib.suppress(Exception):
                        future.result(ADMIN_TIMEOUT)
                self._run(self._drop_leftovers())
        finally:
            if self._redis is not None:
                self.flush_redis()
                if self._redis_db is not None:
                    key = REDIS_CLAIM_KEY.format(self._redis_db)
                    self._redis.execute_command("SELECT", 0)
                    if self._redis.get(key) == self.run_id.encode():
                        self._redis.delete(key)
                self._redis.close()
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._run(self._disconnect())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(ADMIN_TIMEOUT)
            loop.close()
            self._loop = self._thread = None

    # -- the admin loop ----------------------------------------------------------------------

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="capebase-test-admin", daemon=True
            )
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = self._submit(coro)
        try:
            return future.result(ADMIN_TIMEOUT)
        except TimeoutError:
            if future.done():
                raise  # the statement's own timeout, which names the server
            # Cancelling the coroutine releases the server's admin lock for the next caller.
            future.cancel()
            raise TimeoutError(
                f"a test-database admin call did not finish within {ADMIN_TIMEOUT:.0f} s "
                f"({coro.__qualname__}); check the PostgreSQL and MariaDB servers at {HOST}"
            ) from None

    async def _connect(self, server: ServerKind) -> None:
        self._locks.setdefault(server, asyncio.Lock())
        if server == "postgresql" and self._pg is None:
            self._pg = await asyncpg.connect(
                host=HOST, port=PORTS["postgresql"], user="postgres", database="postgres", timeout=5
            )
        elif server == "mariadb" and self._maria is None:
            # asyncmy's connect_timeout does not cover the handshake: bound it all.
            async with asyncio.timeout(10):
                self._maria = await asyncmy.connect(
                    host=HOST, port=PORTS["mariadb"], user="root", autocommit=True,
                    connect_timeout=5,
                )
            # Directly, not through _maria_execute: a reconnect runs under the admin lock,
            # which is not reentrant (going through it again once hung the whole run).
            async with self._maria.cursor() as cursor:
                await cursor.execute(f"SET SESSION lock_wait_timeout = {ADMIN_LOCK_WAIT}")
                # Two xdist workers, each app's pools and the multi-process tests pass
                # MariaDB's default of 151 connections; raise it on the test server (never
                # lower it; without the privilege, leave it).
                with contextlib.suppress(asyncmy.errors.Error):
                    await cursor.execute(
                        "SET GLOBAL max_connections = GREATEST(@@GLOBAL.max_connections, 500)"
                    )

    async def _disconnect(self) -> None:
        if self._pg is not None:
            await self._pg.close()
            self._pg = None
        if self._maria is not None:
            await self._maria.ensure_closed()
            self._maria = None

    async def _pg_execute(self, sql: str) -> None:
        await self._locked("postgresql", lambda: self._pg.execute(sql))

    async def _pg_fetch(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._locked("postgresql", lambda: self._pg.fetch(sql, *args)))

    async def _maria_execute(self, sql: str, args: tuple[Any, ...] | None = None) -> list[Any]:
        async def execute() -> list[Any]:
            async with self._maria.cursor() as cursor:
                await cursor.execute(sql, args)
                return list(await cursor.fetchall())

        return await self._locked("mariadb", execute)

    async def _locked(self, server: ServerKind, operation: Callable[[], Awaitable[T]]) -> T:
        # One admin connection per server runs one statement at a time; the spare's CREATE and
        # the previous test's DROP queue up here.
        try:
            async with asyncio.timeout(ADMIN_TIMEOUT / 2):
                await self._locks[server].acquire()
        except TimeoutError:
            raise TimeoutError(
                f"{TITLES[server]} at {HOST}:{PORTS[server]}: the test admin connection has "
                f"been busy for {ADMIN_TIMEOUT / 2:.0f} s (a statement before this one hangs)"
            ) from None
        try:
            return await self._with_reconnects(server, operation)
        finally:
            self._locks[server].release()

    async def _with_reconnects(
        self, server: ServerKind, operation: Callable[[], Awaitable[T]]
    ) -> T:
        for attempt in range(RECONNECT_ATTEMPTS):
            try:
                if (self._pg if server == "postgresql" else self._maria) is None:
                    await self._connect(server)
                async with asyncio.timeout(STATEMENT_TIMEOUT):
                    return await operation()
            except TimeoutError:  # before OSError, its base class: a hang is not a restart
                await self._abandon(server)
                raise TimeoutError(
                    f"{TITLES[server]} at {HOST}:{PORTS[server]} did not answer a test admin "
                    f"statement within {STATEMENT_TIMEOUT:g} s; its connection was dropped"
                ) from None
            except (
                OSError,
                asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.CannotConnectNowError,
                asyncpg.exceptions.AdminShutdownError,
                asyncpg.exceptions.InterfaceError,
                asyncmy.errors.OperationalError,
            ):
                # The server restarted under us (the outage tests do that): drop the dead
                # connection and retry while it comes back.
                if server == "postgresql":
                    self._pg = None
                else:
                    self._maria = None
                if attempt == RECONNECT_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def _abandon(self, server: ServerKind) -> None:
        """Drop the admin connection of ``server`` without waiting on it (it may hang)."""
        if server == "postgresql" and self._pg is not None:
            self._pg.terminate()
            self._pg = None
        elif server == "mariadb" and self._maria is not None:
            thread_id = self._maria.server_thread_id[0]
            self._maria.close()
            self._maria = None
            # MariaDB keeps running a statement whose client went away: end it, so that what
            # it holds is released now.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    killer = await asyncmy.connect(
                        host=HOST, port=PORTS["mariadb"], user="root", connect_timeout=5
                    )
                    try:
                        async with killer.cursor() as cursor:
                            await cursor.execute(f"KILL CONNECTION {int(thread_id)}")
                    finally:
                        killer.close()
