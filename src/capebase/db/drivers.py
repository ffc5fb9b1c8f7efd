"""The database drivers a ``DirectExecutor`` runs statements with (asyncpg, aiosqlite,
asyncmy): a batch of steps in one call, and SQLite reads on the event loop's own thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from .._compat.aiosqlite import on_connection_thread

Row = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a batch sent to the driver in one go."""

    sql: str
    params: Sequence[Any] = ()
    fetch: bool = False
    describe: bool = False
    """Also report the driver's type codes of the result columns (a fetching step only)."""


Fetched = tuple[list[Row], Sequence[Any] | None]
"""The rows of a batch's last fetching step, and its column type codes when it asked for them."""


class Driver(Protocol):
    begin: str
    """The statement that opens a write transaction."""
    has_column_types: bool
    """Whether the driver reports column type codes (SQLite's are all None, so never asked)."""

    async def run(self, connection: Any, steps: Sequence[Step]) -> Fetched:
        """Run ``steps`` in order; the rows of the last one that fetches."""

    def in_transaction(self, connection: Any) -> bool: ...


class _Asyncpg:
    begin = "BEGIN"
    has_column_types = True

    async def run(self, connection: Any, steps: Sequence[Step]) -> Fetched:
        rows: list[Row] = []
        types: Sequence[Any] | None = None
        for step in steps:
            if step.describe:
                # What SQLAlchemy's adapter does for every statement: a prepared statement's
                # attributes carry the type OIDs. Done once per statement shape; the other
                # runs use asyncpg's statement cache.
                prepared = await connection.prepare(step.sql)
                rows = list(await prepared.fetch(*step.params))
                types = [attribute.type.oid for attribute in prepared.get_attributes()]
            elif step.fetch:
                rows = list(await connection.fetch(step.sql, *step.params))
            else:
                await connection.execute(step.sql, *step.params)
        return rows, types

    def in_transaction(self, connection: Any) -> bool:
        return bool(connection.is_in_transaction())


class _Aiosqlite:
    # IMMEDIATE takes the write lock now: a deferred transaction that read first and then
    # writes fails (or busy-waits) when another writer committed in between.
    begin = "BEGIN IMMEDIATE"
    has_column_types = False  # sqlite3's cursor.description has None for every type

    async def run(self, connection: Any, steps: Sequence[Step]) -> Fetched:
        # One hand-off to the connection's thread for the whole batch: each costs more CPU
        # than the statements. aiosqlite has no public call for "run this on your thread".
        batch = on_connection_thread(connection, _run_sqlite_steps, steps)
        if batch is None:  # pragma: no cover - an aiosqlite without it
            rows: list[Row] = []
            for step in steps:
                rows = list(await connection.execute_fetchall(step.sql, step.params))
            return rows, None
        result: list[Row] = await batch
        return result, None

    def in_transaction(self, connection: Any) -> bool:
        return bool(connection.in_transaction)


def _run_sqlite_steps(connection: sqlite3.Connection, steps: Sequence[Step]) -> list[Row]:
    rows: list[Row] = []
    for step in steps:
        cursor = connection.execute(step.sql, step.params)
        if step.fetch:
            rows = cursor.fetchall()
        cursor.close()
    return rows


class _Asyncmy:
    begin = "BEGIN"
    has_column_types = True

    async def run(self, connection: Any, steps: Sequence[Step]) -> Fetched:
        rows: list[Row] = []
        types: Sequence[Any] | None = None
        async with connection.cursor() as cursor:
            for step in steps:
                await cursor.execute(step.sql, tuple(step.params))
                if step.fetch:
                    rows = list(await cursor.fetchall())
                if step.describe:
                    types = [column[1] for column in cursor.description or ()]
        return rows, types

    def in_transaction(self, connection: Any) -> bool:
        return True  # autocommit is off: even a SELECT leaves a transaction to end


DRIVERS: dict[str, Driver] = {"asyncpg": _Asyncpg(), "aiosqlite": _Aiosqlite(),
                                "asyncmy": _Asyncmy()}


class LoopReader:
    """SQLite reads on the event loop's own thread, for statements that finish at once.

    aiosqlite runs each call on the connection's thread: the hand-off costs over 100 µs of
    CPU, ten times a primary-key lookup. Reads that finish within ``budget`` seconds run here
    on a read-only autocommit connection; a slower one is interrupted by SQLite's progress
    handler, and one that would wait for a lock fails at once, and both are run again on
    aiosqlite's thread, so the event loop is never held for longer than the budget.
    """

    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any], budget: float) -> None:
        self._args = args
        self._kwargs = {**kwargs, "check_same_thread": False, "isolation_level": None}
        self._budget = budget
        self._deadline = 0.0
        self._connections: dict[int, sqlite3.Connection] = {}

    @classmethod
    def for_engine(cls, engine: AsyncEngine, budget: float) -> LoopReader | None:
        url = engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None  # a private in-memory database is not shared between connections
        args, kwargs = engine.dialect.create_connect_args(url)
        if "mode=memory" in str(args[0]):
            return None
        return cls(args, kwargs, budget)

    def fetch(self, sql: str, params: Sequence[Any]) -> list[Row] | None:
        """The rows, or ``None`` when the statement must run on aiosqlite's thread."""
        connection = self._connection()
        self._deadline = time.perf_counter() + self._budget
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.Error:
            return None  # interrupted or busy; aiosqlite runs it again, and reports real errors

    def close(self) -> None:
        """Close the connections (at shutdown)."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _connection(self) -> sqlite3.Connection:
        thread = threading.get_ident()  # one per thread: each event loop has its own
        connection = self._connections.get(thread)
        if connection is None:
            connection = sqlite3.connect(*self._args, **self._kwargs)
            connection.execute("PRAGMA busy_timeout=0")
            connection.execute("PRAGMA query_only=ON")
            connection.execute("PRAGMA case_sensitive_like=ON")  # as the engine's connections
            connection.set_progress_handler(self._over_budget, 1000)
            self._connections[thread] = connection
        return connection

    def _over_budget(self) -> int:
        return 1 if time.perf_counter() > self._deadline else 0


