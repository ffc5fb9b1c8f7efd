"""Generated routes' statements, run on the driver connection instead of through Core.

A Core ``execute`` costs a few hundred microseconds of CPU around the driver call (execution
context, result objects, events, a transaction on every dialect), and the generated routes run
the same few statement shapes all day. ``DirectExecutor`` compiles each shape once, with
SQLAlchemy's own compiled cache and cache key (so literal values stay bound parameters), then
runs it with the driver's call, applying the bind and result processors SQLAlchemy would.
Result processors get the column types the driver reports, as Core's do (asyncpg's
numeric processors depend on them); those are read once per statement shape, at its first run.
Driver errors become SQLAlchemy's exceptions, so the HTTP layer answers 409/422/503/504 exactly
as it does for Core. Pool checkout and check-in stay SQLAlchemy's (pre-ping, timeouts,
invalidation).

Drivers: asyncpg, aiosqlite and asyncmy. ``DirectExecutor.for_engine`` returns ``None`` for any
other, and the routes run through Core.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import Float, TypeDecorator, TypeEngine
from sqlalchemy.util import greenlet_spawn

from .._compat.aiosqlite import on_connection_thread
from .._compat.sqlalchemy import (
    bind_processors,
    checkin_without_reset,
    compile_cached,
    construct_params,
    expand_postcompile,
    raise_as_dbapi_error,
    result_processor,
    result_types,
)

StatementObserver = Callable[[ClauseElement, float, bool], None]
"""Called after each statement with the statement, its duration in seconds and whether it
failed (the metrics hook)."""

Row = Sequence[Any]
S = TypeVar("S", bound=ClauseElement)

_CACHE_SIZE = 500
LOOP_READ_BUDGET = 0.002
"""Seconds a SQLite read may hold the event loop before it moves to aiosqlite's thread."""


def _real_on_sqlite(
    type_: TypeEngine[Any], processor: Callable[[Any], Any] | None
) -> Callable[[Any], Any] | None:
    """SQLite keeps a whole REAL as an integer in the record, and ``RETURNING`` hands it back
    as one (``5`` for ``5.0``, ``0`` for ``-0.0``) where a ``SELECT`` gives a float: a float
    column's values are made floats again."""
    stored = type_.impl_instance if isinstance(type_, TypeDecorator) else type_
    if not isinstance(stored, Float) or processor is not None:
        return processor

    def as_float(value: Any) -> Any:
        return float(value) if type(value) is int else value

    return as_float


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


class _Driver(Protocol):
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


_DRIVERS: dict[str, _Driver] = {"asyncpg": _Asyncpg(), "aiosqlite": _Aiosqlite(),
                                "asyncmy": _Asyncmy()}


class _LoopReader:
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
    def for_engine(cls, engine: AsyncEngine, budget: float) -> _LoopReader | None:
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


class _Results:
    """How one compiled statement's raw result values become SQLAlchemy's: the result
    processors of its columns' types, worked out from the driver's type codes."""

    __slots__ = ("processors", "types")

    def __init__(self, types: Sequence[TypeEngine[Any]]) -> None:
        self.types = types
        self.processors: list[Callable[[Any], Any] | None] | None = None
        """None until the driver's column type codes are known."""

    def resolve(self, dialect: Any, type_codes: Sequence[Any] | None) -> None:
        codes = [None] * len(self.types) if type_codes is None else type_codes
        self.processors = [
            _real_on_sqlite(type_, result_processor(type_, dialect, code))
            if dialect.name == "sqlite"
            else result_processor(type_, dialect, code)
            for type_, code in zip(self.types, codes, strict=True)
        ]

    def apply(self, rows: list[Row]) -> list[Row]:
        processors = self.processors
        if not processors or not any(processors):
            return rows
        return [
            tuple(v if p is None else p(v) for p, v in zip(processors, row, strict=True))
            for row in rows
        ]


@dataclass(frozen=True, slots=True)
class _Plan:
    """A prebuilt statement's SQL, parameters in order with their processors, the values
    fixed in it, and how to process its results."""

    sql: str
    positions: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    fixed: dict[str, Any]
    results: _Results | None

    def bind(self, params: Mapping[str, Any] | None) -> _Prepared:
        values = self.fixed if not params else {**self.fixed, **params}
        bound = [
            values[name] if processor is None else processor(values[name])
            for name, processor in self.positions
        ]
        return _Prepared(self.sql, bound, self.results)


@dataclass(frozen=True, slots=True)
class _Prepared:
    sql: str
    params: list[Any]
    results: _Results | None

    def step(self) -> Step:
        """The fetching step, asking for column types while the processors are unknown."""
        describe = self.results is not None and self.results.processors is None
        return Step(self.sql, self.params, fetch=True, describe=describe)


class DirectExecutor:
    """Runs Core statements on the driver connection of ``engine``'s pool."""

    def __init__(self, engine: AsyncEngine, driver: _Driver) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._driver = driver
        self._compiled_cache: dict[Any, Any] = {}
        self._prebuilt: dict[int, tuple[ClauseElement, _Plan | None]] = {}
        self._results: dict[int, tuple[SQLCompiler, _Results]] = {}
        self.observer: StatementObserver | None = None
        self._loop_reader = _LoopReader.for_engine(engine, LOOP_READ_BUDGET)
        # SQLite has one writer at a time: queueing this process's write transactions on a
        # lock is much cheaper than each waiting in SQLite's busy handler, which sleeps.
        self._serialize_writes = engine.dialect.name == "sqlite"
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> DirectExecutor | None:
        """The executor for ``engine``'s driver, or ``None`` when the driver has none."""
        driver = _DRIVERS.get(engine.dialect.driver)
        return None if driver is None else cls(engine, driver)

    async def fetch(
        self, statement: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> list[Row]:
        """All rows of ``statement`` (``params``: values for its named bind parameters), the
        values as SQLAlchemy would return them. Runs outside a transaction (autocommit)."""
        if self._loop_reader is not None:
            prepared = self._prepare(statement, params)
            started = time.perf_counter()
            rows = self._loop_reader.fetch(prepared.sql, prepared.params)
            if rows is not None:
                if self.observer is not None:
                    self.observer(statement, time.perf_counter() - started, False)
                return self._processed(prepared, (rows, None))
        raw = await self._checkout()
        try:
            return await self._fetch(raw, statement, params)
        finally:
            await greenlet_spawn(self._release, raw)

    def close(self) -> None:
        """Close what the executor holds outside the engine's pool (at shutdown)."""
        if self._loop_reader is not None:
            self._loop_reader.close()

    async def scalar(
        self, statement: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> Any:
        """The first column of the first row of ``statement`` (``None`` without rows)."""
        rows = await self.fetch(statement, params)
        return rows[0][0] if rows else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DirectTransaction]:
        """A transaction on one pooled connection, committed when the block ends without an
        error and rolled back otherwise. On SQLite it holds the write lock from its start.

        Statements run for their effect only are sent with the next one that fetches, or
        with the COMMIT: one round trip (on SQLite, one thread hand-off) for several.
        """
        async with self._write_lock():
            raw = await self._checkout()
            tx = DirectTransaction(self, raw, Step(self._driver.begin))
            try:
                try:
                    yield tx
                    await tx.flush(Step("COMMIT"))
                except BaseException:
                    if raw.dbapi_connection is not None and self._driver.in_transaction(
                        raw.driver_connection
                    ):
                        with contextlib.suppress(Exception):
                            await self._driver.run(raw.driver_connection, [Step("ROLLBACK")])
                    raise
            finally:
                await greenlet_spawn(self._release, raw)

    async def _checkout(self) -> Any:
        try:
            return await self.engine.raw_connection()
        except self.dialect.loaded_dbapi.Error as error:
            # A Connection would wrap a failed connect; the raw pool does not.
            raise sa_exc.DBAPIError.instance(
                None, None, error, self.dialect.loaded_dbapi.Error, dialect=self.dialect
            ) from error

    def _write_lock(self) -> contextlib.AbstractAsyncContextManager[Any]:
        if not self._serialize_writes:
            return contextlib.nullcontext()
        loop = asyncio.get_running_loop()  # an asyncio.Lock serves one loop only
        lock = self._write_locks.get(loop)
        if lock is None:
            lock = self._write_locks[loop] = asyncio.Lock()
        return lock

    async def _fetch(
        self, raw: Any, statement: ClauseElement, params: Mapping[str, Any] | None
    ) -> list[Row]:
        prepared = self._prepare(statement, params)
        fetched = await self._run(raw, [prepared.step()], [statement])
        return self._processed(prepared, fetched)

    async def _run(
        self, raw: Any, steps: Sequence[Step], statements: Sequence[ClauseElement | None]
    ) -> Fetched:
        """Run ``steps`` on ``raw``'s driver connection, timing them and translating errors;
        a batch's time is shared among its statements in the metrics."""
        started = time.perf_counter()
        failed = True
        try:
            fetched = await self._driver.run(raw.driver_connection, steps)
            failed = False
            return fetched
        except Exception as error:
            last = steps[-1]
            raise await self._translate(raw, error, last.sql, last.params) from error
        finally:
            observed = [s for s in statements if s is not None]
            if self.observer is not None and observed:
                share = (time.perf_counter() - started) / len(observed)
                for statement in observed:
                    self.observer(statement, share, failed)

    def _processed(self, prepared: _Prepared, fetched: Fetched) -> list[Row]:
        rows, type_codes = fetched
        results = prepared.results
        if results is None:
            return rows
        if results.processors is None:
            results.resolve(self.dialect, type_codes)
        return results.apply(rows)

    def prebuilt(self, statement: S) -> S:
        """Mark ``statement`` as built once and run many times (with its named bind
        parameters as the only varying values): its SQL, parameter order and processors are
        then worked out at its first run, not looked up in the compiled cache at each."""
        self._prebuilt[id(statement)] = (statement, None)
        return statement

    def _prepare(
        self, statement: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> _Prepared:
        known = self._prebuilt.get(id(statement))
        if known is not None and known[0] is statement:
            plan = known[1]
            if plan is None:
                plan = self._plan(statement)
                self._prebuilt[id(statement)] = (statement, plan)
            if plan is not None:
                return plan.bind(params)
        if len(self._compiled_cache) > _CACHE_SIZE:
            self._compiled_cache.clear()  # shapes come from requests: keep the cache bounded
        compiled, extracted, param_dict = compile_cached(
            statement, self.dialect, self._compiled_cache
        )
        parameters = construct_params(compiled, params, extracted, param_dict)
        sql = compiled.string
        positions: Sequence[str] | None = compiled.positiontup
        processors: Mapping[str, Any] = bind_processors(compiled)
        if compiled.literal_execute_params or compiled.post_compile_params:
            sql, positions, processors, parameters = expand_postcompile(compiled, parameters)
        assert positions is not None, "the direct drivers all use positional parameters"
        values = []
        for name in positions:
            value = parameters[name]
            processor = processors.get(name)
            values.append(value if processor is None else processor(value))
        return _Prepared(sql, values, self._results_for(compiled))

    def _plan(self, statement: ClauseElement) -> _Plan | None:
        """The fixed part of running ``statement``; ``None`` if it has parameters expanded
        at execution time (IN lists)."""
        compiled, extracted, param_dict = compile_cached(
            statement, self.dialect, self._compiled_cache
        )
        if compiled.literal_execute_params or compiled.post_compile_params:
            return None
        assert compiled.positiontup is not None
        base = construct_params(compiled, None, extracted, param_dict, check=False)
        processors: Mapping[str, Any] = bind_processors(compiled)
        return _Plan(
            compiled.string,
            tuple((name, processors.get(name)) for name in compiled.positiontup),
            dict(base),
            self._results_for(compiled),
        )

    def _results_for(self, compiled: SQLCompiler) -> _Results | None:
        """The result processing of ``compiled``; None when it returns no rows."""
        types = result_types(compiled)
        if not types:
            return None
        known = self._results.get(id(compiled))
        # The entry holds ``compiled``, so its id is not reused while the entry exists.
        if known is not None and known[0] is compiled:
            return known[1]
        results = _Results(types)
        if not self._driver.has_column_types:
            results.resolve(self.dialect, None)
        if len(self._results) > _CACHE_SIZE:
            self._results.clear()
        self._results[id(compiled)] = (compiled, results)
        return results

    def _release(self, raw: Any) -> None:
        if raw.dbapi_connection is None:
            return  # invalidated
        if self._driver.in_transaction(raw.driver_connection):
            raw.close()  # the pool rolls back
        else:
            # Nothing to roll back: skip the pool's reset, a round trip (or on SQLite a
            # thread hop) per statement.
            checkin_without_reset(raw)

    async def _translate(
        self, raw: Any, error: Exception, sql: str, params: Sequence[Any]
    ) -> Exception:
        """``error`` as the exception SQLAlchemy would have raised; a connection it broke is
        invalidated, so the pool replaces it."""
        dbapi_error: BaseException = error
        try:
            raise_as_dbapi_error(raw, error)
        except Exception as translated:  # the adapter raises the DBAPI form of the error
            dbapi_error = translated
        base = self.dialect.loaded_dbapi.Error
        if not isinstance(dbapi_error, base):
            return error
        disconnected = self.dialect.is_disconnect(dbapi_error, raw.dbapi_connection, None)
        if disconnected:
            await greenlet_spawn(raw.invalidate, dbapi_error)
        return sa_exc.DBAPIError.instance(
            sql,
            list(params),
            dbapi_error,
            base,
            connection_invalidated=disconnected,
            dialect=self.dialect,
        )


class DirectTransaction:
    """Statements inside ``DirectExecutor.transaction()``."""

    def __init__(self, executor: DirectExecutor, raw: Any, begin: Step) -> None:
        self._executor = executor
        self._raw = raw
        self._pending: list[Step] = [begin]
        self._pending_statements: list[ClauseElement | None] = [None]

    async def fetch(
        self, statement: ClauseElement, params: Mapping[str, Any] | None = None
    ) -> list[Row]:
        """All rows of ``statement``, as ``DirectExecutor.fetch`` (sent with the statements
        queued before it)."""
        executor = self._executor
        prepared = executor._prepare(statement, params)
        fetched = await self._flush(prepared.step(), statement)
        return executor._processed(prepared, fetched)

    def execute(self, statement: ClauseElement, params: Mapping[str, Any] | None = None) -> None:
        """Queue ``statement``: it runs with the next ``fetch`` or the COMMIT, and its error,
        if any, surfaces there."""
        prepared = self._executor._prepare(statement, params)
        self._pending.append(Step(prepared.sql, prepared.params))
        self._pending_statements.append(statement)

    async def flush(self, step: Step, statement: ClauseElement | None = None) -> list[Row]:
        """Send the queued statements and ``step``; the rows ``step`` fetched."""
        rows, _types = await self._flush(step, statement)
        return rows

    async def _flush(self, step: Step, statement: ClauseElement | None) -> Fetched:
        steps, statements = [*self._pending, step], [*self._pending_statements, statement]
        self._pending, self._pending_statements = [], []
        return await self._executor._run(self._raw, steps, statements)
