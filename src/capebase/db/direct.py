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
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from .._compat.sqlalchemy import (
    bind_processors,
    checkin_without_reset,
    compile_cached,
    construct_params,
    expand_postcompile,
    raise_as_dbapi_error,
    result_types,
)
from .drivers import DRIVERS, Driver, Fetched, LoopReader, Row, Step
from .plans import Plan, Prepared, Results

StatementObserver = Callable[[ClauseElement, float, bool], None]
"""Called after each statement with the statement, its duration in seconds and whether it
failed (the metrics hook)."""

S = TypeVar("S", bound=ClauseElement)

_CACHE_SIZE = 500
LOOP_READ_BUDGET = 0.002
"""Seconds a SQLite read may hold the event loop before it moves to aiosqlite's thread."""


class DirectExecutor:
    """Runs Core statements on the driver connection of ``engine``'s pool."""

    def __init__(self, engine: AsyncEngine, driver: Driver) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._driver = driver
        self._compiled_cache: dict[Any, Any] = {}
        self._prebuilt: dict[int, tuple[ClauseElement, Plan | None]] = {}
        self._results: dict[int, tuple[SQLCompiler, Results]] = {}
        self.observer: StatementObserver | None = None
        self._loop_reader = LoopReader.for_engine(engine, LOOP_READ_BUDGET)
        # SQLite has one writer at a time: queueing this process's write transactions on a
        # lock is much cheaper than each waiting in SQLite's busy handler, which sleeps.
        self._serialize_writes = engine.dialect.name == "sqlite"
        self._write_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def for_engine(cls, engine: AsyncEngine) -> DirectExecutor | None:
        """The executor for ``engine``'s driver, or ``None`` when the driver has none."""
        driver = DRIVERS.get(engine.dialect.driver)
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

    def _processed(self, prepared: Prepared, fetched: Fetched) -> list[Row]:
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
    ) -> Prepared:
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
        return Prepared(sql, values, self._results_for(compiled))

    def _plan(self, statement: ClauseElement) -> Plan | None:
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
        return Plan(
            compiled.string,
            tuple((name, processors.get(name)) for name in compiled.positiontup),
            dict(base),
            self._results_for(compiled),
        )

    def _results_for(self, compiled: SQLCompiler) -> Results | None:
        """The result processing of ``compiled``; None when it returns no rows."""
        types = result_types(compiled)
        if not types:
            return None
        known = self._results.get(id(compiled))
        # The entry holds ``compiled``, so its id is not reused while the entry exists.
        if known is not None and known[0] is compiled:
            return known[1]
        results = Results(types)
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
