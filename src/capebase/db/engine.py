"""Engine creation: URL normalisation, async drivers, pool settings and SQLite pragmas."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..errors import ConfigurationError

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


def normalize_url(db_path: str | URL) -> URL:
    """Turn a user's database URL into one with an async driver.

    ``sqlite:///x.db`` → ``sqlite+aiosqlite:///x.db``, ``postgresql://`` → ``+asyncpg``,
    ``mysql://`` and ``mariadb://`` → ``mysql+asyncmy``.

    Raises:
        ConfigurationError: the URL is malformed or names a synchronous driver.
    """
    try:
        url = make_url(db_path)
    except ArgumentError as exc:
        raise ConfigurationError(f"db_path is not a database URL: {db_path!r}") from exc
    backend, _, driver = url.drivername.partition("+")
    backend = _ALIASES.get(backend, backend)
    if backend not in _DEFAULT_DRIVERS:
        raise ConfigurationError(
            f"Unsupported database {backend!r} in db_path; use sqlite, postgresql or mysql URLs"
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


def create_engine(db_path: str | URL, **engine_options: Any) -> AsyncEngine:
    """Create the AsyncEngine for ``db_path`` with capebase's defaults.

    Pools ping connections before use; SQLite runs in WAL mode with a busy timeout, enforces
    foreign keys and makes ``LIKE`` case-sensitive, as it is on PostgreSQL.

    Raises:
        ConfigurationError: bad URL, or the driver package is not installed.
    """
    url = normalize_url(db_path)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        options["pool_recycle"] = 3600
    options.update(engine_options)
    try:
        engine = create_async_engine(url, **options)
    except ModuleNotFoundError as exc:
        driver = url.get_driver_name()
        extra = _EXTRAS.get(driver, driver)
        raise ConfigurationError(
            f"The {driver} driver is not installed: pip install 'capebase[{extra}]'"
        ) from exc
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    return engine


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
