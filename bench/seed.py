"""The benchmark's databases: a fresh SQLite file or PostgreSQL database, the Todo table and its
seed rows (ROWS rows spread over USERS users), and removing what a create run added."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import create_engine, delete, insert, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

from .apps.model import Note, Todo

ROWS = 10_000
USERS = 100
NOTES_PER_ROW = 3
"""Notes on each seed row (the related rows of the list-expand scenario)."""
PG_DATABASE = "capebase_bench"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED_START = datetime(2025, 1, 1, tzinfo=timezone.utc)  # noqa: UP017


def user_name(index: int) -> str:
    """The X-User-Id of user ``index`` (0-based)."""
    return f"u{index}"


def owner_of(row_id: int) -> int:
    """The user index owning seed row ``row_id`` (1-based ids)."""
    return (row_id - 1) % USERS


@dataclass
class Database:
    """One benchmark database: the URL the apps get (async driver) and a sync admin engine."""

    kind: str
    app_url: str
    admin: Engine

    def seed(self) -> None:
        """Create the Todo and Note tables and fill them with the seed rows (ids 1..ROWS),
        NOTES_PER_ROW notes on each."""
        tables = [Todo.__table__, Note.__table__]
        SQLModel.metadata.create_all(self.admin, tables=tables)  # type: ignore[arg-type]
        rows = [
            {
                "id": i,
                "user_id": user_name(owner_of(i)),
                "task": f"seed task {i}",
                "is_complete": i % 3 == 0,
                "inserted_at": SEED_START + timedelta(seconds=i),
            }
            for i in range(1, ROWS + 1)
        ]
        with self.admin.begin() as connection:
            connection.execute(insert(Todo.__table__), rows)  # type: ignore[arg-type]
            notes = [
                {"todo_id": i, "text": f"note {n} on task {i}"}
                for i in range(1, ROWS + 1) for n in range(NOTES_PER_ROW)
            ]
            connection.execute(insert(Note.__table__), notes)  # type: ignore[arg-type]
            if self.kind == "postgresql":
                connection.execute(text(f"SELECT setval('todo_id_seq', {ROWS})"))
        self.vacuum()

    def remove_created(self) -> int:
        """Delete the rows a create run added, so every run sees the same data (retried once:
        a server restarted by someone else drops the pooled connection)."""
        statement = delete(Todo.__table__).where(Todo.__table__.c.id > ROWS)  # type: ignore[attr-defined]
        for attempt in (1, 2):
            try:
                with self.admin.begin() as connection:
                    return int(connection.execute(statement).rowcount)
            except OperationalError:
                if attempt == 2:
                    raise
                self.admin.dispose()
                time.sleep(2)
        return 0

    def vacuum(self) -> None:
        if self.kind == "postgresql":
            with self.admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE todo"))
                conn.execute(text("VACUUM ANALYZE note"))
        else:
            with self.admin.begin() as connection:
                connection.execute(text("ANALYZE"))

    def close(self) -> None:
        self.admin.dispose()


def sqlite_database(path: Path) -> Database:
    """A fresh SQLite file at ``path`` in WAL mode."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    admin = create_engine(f"sqlite:///{path}")
    with admin.begin() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    return Database("sqlite", f"sqlite+aiosqlite:///{path}", admin)


def postgres_database() -> Database:
    """A fresh PG_DATABASE on the server named by BENCH_PG_URL (dropped first if it exists)."""
    admin_url = _with_driver(make_url(PG_ADMIN_URL), "psycopg")
    server = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {PG_DATABASE}"))
    finally:
        server.dispose()
    bench_url = admin_url.set(database=PG_DATABASE)
    app_url = _with_driver(bench_url, "asyncpg").render_as_string(hide_password=False)
    return Database("postgresql", app_url, create_engine(bench_url, pool_pre_ping=True))


def drop_postgres_database() -> None:
    """Drop PG_DATABASE, whoever is still connected."""
    server = create_engine(_with_driver(make_url(PG_ADMIN_URL), "psycopg"),
                           isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"))
    finally:
        server.dispose()


def _with_driver(url: URL, driver: str) -> URL:
    return url.set(drivername=f"postgresql+{driver}")
