"""Engine creation: URL normalisation, async drivers, pool settings and SQLite pragmas."""

from __future__ import annotations

import gc
import math
import sqlite3
import time
import uuid
import weakref
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from ..errors import ConfigurationError, DatabaseUnavailableError
from ..limits import LimitsConfig
from .disconnects import confirm_disconnects

# The async driver a plain URL maps to, and which drivers we accept per backend.
_DEFAULT_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "asyncmy"}
_ASYNC_DRIVERS = {
    "sqlite": {"aiosqlite"},
    "postgresql": {"asyncpg", "psycopg", "psycopg_async"},
    "mysql": {"asyncmy", "aiomysql"},
}
_EXTRAS = {"asyncpg": "postgres", "psycopg": "psycopg", "asyncmy": "mysql", "aiomysql": "aiomysql"}
_ALIASES = {"postgres": "postgresql", "mariadb": "mysql"}

SQLITE_BUSY_TIMEOUT_MS = 5000


def normalize_url(db_url: str | URL) -> URL:
    """Turn a user's database URL into one with an async driver.

    ``sqlite:///x.db`` → ``sqlite+aiosqlite:///x.db``, ``postgresql://`` → ``+asyncpg``,
    ``mysql://`` and ``mariadb://`` → ``mysql+asyncmy``.

    Raises:
        ConfigurationError: the URL is malformed or names a synchronous driver.
    """
    try:
        url = make_url(db_url)
    except ArgumentError as exc:
        raise ConfigurationError(f"db_url is not a database URL: {db_url!r}") from exc
    backend, _, driver = url.drivername.partition("+")
    backend = _ALIASES.get(backend, backend)
    if backend not in _DEFAULT_DRIVERS:
        raise ConfigurationError(
            f"Unsupported database {backend!r} in db_url; use sqlite, postgresql or mysql URLs"
        )
    driver = driver or _DEFAULT_DRIVERS[backend]
    if driver not in _ASYNC_DRIVERS[backend]:
        choices = ", ".join(sorted(_ASYNC_DRIVERS[backend]))
        raise ConfigurationError(
            f"{backend}+{driver} is not an async driver; use one of: {choices} "
            f"(for example {backend}+{_DEFAULT_DRIVERS[backend]}://...)"
        )
    if driver == "psycopg_async":
        driver = "psycopg"
    return url.set(drivername=f"{backend}+{driver}")


POOL_SIZE = 20
"""Connections each process keeps open."""
POOL_OVERFLOW = 20
"""Connections opened beyond ``POOL_SIZE`` under load (closed when returned)."""


def create_engine(
    db_url: str | URL, *, limits: LimitsConfig | None = None, **engine_options: Any
) -> AsyncEngine:
    """Create the AsyncEngine for ``db_url`` with capebase's defaults.

    The pool keeps ``POOL_SIZE`` (20) connections and opens up to ``POOL_OVERFLOW`` (20) more
    under load. Server pools ping connections before use (a local SQLite file has nothing to
    lose, so its pool skips the extra round trip); SQLite runs in WAL mode with a busy timeout,
    enforces foreign keys and makes ``LIKE`` case-sensitive, as it is on PostgreSQL; its
    ``:memory:`` URL is one database every connection shares (``shared_memory_database``).
    ``limits`` sets the connect, pool and statement timeouts (``LimitsConfig()`` when omitted);
    ``engine_options`` override any of it (``connect_args`` are merged).

    Raises:
        ConfigurationError: bad URL, or the driver package is not installed.
    """
    url = normalize_url(db_url)
    limits = limits or LimitsConfig()
    backend = url.get_backend_name()
    anchor = None
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        url, anchor = shared_memory_database(url)
    # SQLAlchemy's pre-ping costs a round trip on every checkout; connections in use all the
    # time are pinged only after sitting idle (ping_idle_connections), and a local SQLite
    # file has no connection to lose.
    options: dict[str, Any] = {"pool_pre_ping": False}
    connect_args = _connect_args(url.get_driver_name(), limits)
    if backend == "sqlite":
        connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_MS / 1000
        if not _is_sqlite_memory(url):  # StaticPool: there is no pool to wait for
            options["pool_timeout"] = limits.pool_timeout
    else:
        options["pool_recycle"] = 3600
        options["pool_timeout"] = limits.pool_timeout
    if backend != "sqlite" or not _is_sqlite_memory(url):
        # SQLAlchemy keeps 5 and closes the rest on check-in: a burst of more than 5
        # concurrent requests then opens and closes a connection per request.
        options.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
    poolclass = engine_options.get("poolclass")
    if poolclass is not None and not issubclass(poolclass, QueuePool):
        # NullPool, StaticPool...: nothing to wait for, nothing to size
        for option in ("pool_timeout", "pool_size", "max_overflow"):
            options.pop(option, None)
    options.update(engine_options)
    options["connect_args"] = {**connect_args, **dict(engine_options.get("connect_args", {}))}
    try:
        engine = create_async_engine(url, **options)
    except ModuleNotFoundError as exc:
        driver = url.get_driver_name()
        extra = _EXTRAS.get(driver, driver)
        raise ConfigurationError(
            f"The {driver} driver is not installed: pip install 'capebase[{extra}]'"
        ) from exc
    # Before any listener of the user's: connection failures become one exception type.
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
    confirm_disconnects(engine)
    if backend != "sqlite" and "pool_pre_ping" not in engine_options:
        ping_idle_connections(engine)
    if backend == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    if anchor is not None:
        _MEMORY_ANCHORS[engine.sync_engine] = anchor
    elif backend == "mysql" and limits.statement_timeout is not None:
        event.listen(engine.sync_engine, "connect", _mysql_statement_timeout(limits))
    return engine


IDLE_BEFORE_PING = 1.0
"""Seconds a pooled connection may sit unused before its next checkout pings the server."""
_RETURNED_AT = "capebase_returned_at"


def ping_idle_connections(engine: AsyncEngine) -> None:
    """Ping a pooled connection at checkout when it sat idle for ``IDLE_BEFORE_PING``.

    A dead one (the server restarted, a proxy dropped it) is replaced before the request uses
    it, as with SQLAlchemy's ``pool_pre_ping``, but a busy pool does not pay a round trip per
    request. A connection that dies while in constant use fails its statement instead (503),
    and SQLAlchemy then replaces every connection opened before the failure.
    """
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < IDLE_BEFORE_PING:
            return  # new, or in use moments ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out another (SQLAlchemy's own
            # pessimistic-disconnect recipe); if the server is down, that connect fails.
            raise sa_exc.DisconnectionError("connection went away while idle") from exc

    event.listen(pool, "checkin", checkin)
    event.listen(pool, "checkout", checkout)


def _connect_args(driver: str, limits: LimitsConfig) -> dict[str, Any]:
    """The driver's own connect timeout and, on PostgreSQL, the statement timeout."""
    timeout_ms = None if limits.statement_timeout is None else int(limits.statement_timeout * 1000)
    if driver == "asyncpg":
        args: dict[str, Any] = {"timeout": limits.connect_timeout}
        if timeout_ms is not None:
            args["server_settings"] = {"statement_timeout": str(timeout_ms)}
        return args
    if driver in ("psycopg", "psycopg_async"):
        # libpq takes whole seconds and treats less than 2 as 2.
        args = {"connect_timeout": max(2, math.ceil(limits.connect_timeout))}
        if timeout_ms is not None:
            args["options"] = f"-c statement_timeout={timeout_ms}"
        return args
    if driver in ("asyncmy", "aiomysql"):
        return {"connect_timeout": max(1, math.ceil(limits.connect_timeout))}
    return {}


_MEMORY_ANCHORS: weakref.WeakKeyDictionary[Any, sqlite3.Connection] = (
    weakref.WeakKeyDictionary()
)
"""The connection keeping each engine's ``:memory:`` database alive, dropped with the engine."""


def shared_memory_database(url: URL) -> tuple[URL, sqlite3.Connection]:
    """``sqlite:///:memory:`` as one in-memory database every connection of the engine shares.

    A plain ``:memory:`` database is private to one connection: the pool's next connection,
    the driver-level executor's and the change dispatcher's would each see an empty one.
    SQLite's ``memdb`` VFS names a database that the connections of this process share, with
    the same locking as a file (a writer waits for readers and the other way round, within the
    busy timeout), where a shared cache fails at once with "table is locked". The database
    lives while a connection to it is open: the returned one, which the engine keeps.
    """
    if sqlite3.sqlite_version_info < (3, 36):
        raise ConfigurationError(
            f"sqlite:///:memory: needs SQLite >= 3.36 (this Python has {sqlite3.sqlite_version}); "
            "use a file database, e.g. sqlite:///./app.db"
        )
    name = f"file:/capebase-{uuid.uuid4().hex}"
    shared = url.set(database=name, query={**url.query, "vfs": "memdb", "uri": "true"})
    anchor = sqlite3.connect(f"{name}?vfs=memdb", uri=True, check_same_thread=False)
    return shared, anchor


def release_abandoned_statements(engine: AsyncEngine) -> None:
    """After ``engine.dispose()``: free what queries cancelled mid-flight left behind.

    A query cancelled while aiosqlite runs it (shutdown cancels background work) leaves its
    sqlite3 cursor in a reference cycle with the exception, and the closed connection lives on
    until that cursor is collected, holding its read lock. On a file in WAL mode nobody
    notices; on a shared ``:memory:`` database that lock blocks every writer, e.g. a test's
    teardown dropping the tables. Collecting now releases it.
    """
    if engine.sync_engine in _MEMORY_ANCHORS:
        gc.collect()


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


def _connect_or_unavailable(
    dialect: Any, _record: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    """Open a DBAPI connection; failures the driver does not wrap as its own errors (asyncpg's
    refused connection is an ``OSError``, "the database system is starting up" its own class)
    become ``DatabaseUnavailableError``, which the HTTP layer answers with 503."""
    try:
        return dialect.connect(*cargs, **cparams)
    except Exception as exc:
        if isinstance(exc, dialect.loaded_dbapi.Error):
            raise  # SQLAlchemy wraps it (OperationalError...) and classifies it itself
        raise DatabaseUnavailableError(
            f"Cannot connect to the database: {type(exc).__name__}: {exc}"
        ) from exc


def _mysql_statement_timeout(limits: LimitsConfig) -> Any:
    """A connect listener setting the session's statement timeout; MariaDB and MySQL name
    it differently, and MySQL's applies to SELECTs only."""
    seconds = limits.statement_timeout or 0.0

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT VERSION()")
            version = str(cursor.fetchone()[0])
            if "mariadb" in version.lower():
                cursor.execute(f"SET SESSION max_statement_time = {seconds:.3f}")
            else:
                cursor.execute(f"SET SESSION max_execution_time = {int(seconds * 1000)}")
        finally:
            cursor.close()

    return on_connect


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    is_memory = False
    try:
        cursor.execute("PRAGMA database_list")
        is_memory = all(not row[2] for row in cursor.fetchall())
        if not is_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA case_sensitive_like=ON")
    finally:
        cursor.close()
