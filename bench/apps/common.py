"""What every Python contender shares: the database URL, SQLite tuning and the caller header."""

from __future__ import annotations

import os
import resource
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_URL = "sqlite+aiosqlite:///bench.db"


def utc_now() -> datetime:
    """Creation time, timezone-aware as the README's examples are."""
    return datetime.now(timezone.utc)  # noqa: UP017  (the README's spelling)


def database_url() -> str:
    """The SQLAlchemy URL (async driver) the harness chose, from BENCH_DB_URL."""
    return os.environ.get("BENCH_DB_URL", DEFAULT_URL)


def variant() -> str:
    """BENCH_VARIANT: which configuration of an app to serve ("default" unless set)."""
    return os.environ.get("BENCH_VARIANT", "default")


def tune_sqlite(engine: AsyncEngine) -> None:
    """The pragmas capebase sets on SQLite, so that every contender commits the same way
    (WAL, synchronous=NORMAL): the bench compares frameworks, not durability settings."""
    if engine.url.get_backend_name() != "sqlite":
        return

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    event.listen(engine.sync_engine, "connect", on_connect)


def raise_fd_limit() -> None:
    """Allow as many open sockets as the hard limit permits (10,000 streams need more than
    the usual 1,024)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
