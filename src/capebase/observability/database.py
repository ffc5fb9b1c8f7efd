"""Database metrics: statement timing and errors from engine events, pool gauges from the pool."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from typing import Any, ClassVar

from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Join, TableClause, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.selectable import Alias

from ..db.direct import DirectExecutor
from .metrics import Metrics, is_multiprocess

_STARTED = "_capebase_started"
_OPERATIONS = ("select", "insert", "update", "delete")
NO_TABLE = "<none>"
POOL_SERIES = (
    ("capebase_db_pool_size", "Connections the pool keeps (its configured size)."),
    ("capebase_db_pool_checked_out", "Connections in use."),
    ("capebase_db_pool_overflow", "Connections open beyond the pool size."),
)

# Compiled statements are cached and reused by SQLAlchemy, so their labels are worked out once.
_labels_cache: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()


def instrument_engine(engine: AsyncEngine, metrics: Metrics) -> None:
    """Time every statement ``engine`` runs, count its errors and expose its pool's state."""
    sync = engine.sync_engine

    def before_cursor_execute(*args: Any) -> None:
        context = args[4]
        if context is not None:
            setattr(context, _STARTED, time.perf_counter())

    def after_cursor_execute(*args: Any) -> None:
        context = args[4]
        started = getattr(context, _STARTED, None)
        if started is None:
            return
        operation, table = statement_labels(context, args[2])
        metrics.db_duration.labels(operation, table).observe(time.perf_counter() - started)

    def handle_error(exception_context: Any) -> None:
        if getattr(exception_context, "is_pre_ping", False):
            return  # the pool retries on a fresh connection; not a statement error
        context = exception_context.execution_context
        operation, table = statement_labels(context, exception_context.statement or "")
        metrics.db_errors.labels(operation, table).inc()
        started = getattr(context, _STARTED, None)
        if started is not None:
            metrics.db_duration.labels(operation, table).observe(time.perf_counter() - started)

    event.listen(sync, "before_cursor_execute", before_cursor_execute)
    event.listen(sync, "after_cursor_execute", after_cursor_execute)
    event.listen(sync, "handle_error", handle_error)
    if is_multiprocess():
        _follow_pool_events(sync)
    elif metrics.registry is not None:
        PoolCollector.for_registry(metrics).add(sync)


def instrument_direct(direct: DirectExecutor, metrics: Metrics) -> None:
    """Time and count the statements the generated routes run on the driver connection,
    under the same series as the engine's."""

    def observe(construct: Any, seconds: float, failed: bool) -> None:
        labels = _labels_cache.get(construct)
        if labels is None:
            labels = _labels_cache[construct] = _compiled_labels(construct, "")
        metrics.db_duration.labels(*labels).observe(seconds)
        if failed:
            metrics.db_errors.labels(*labels).inc()

    direct.observer = observe


def statement_labels(context: Any, statement: str) -> tuple[str, str]:
    """``(operation, table)`` of a statement: select/insert/update/delete/other, and the table
    it reads or writes (its first FROM table), or ``"<none>"``."""
    compiled = getattr(context, "compiled", None)
    if compiled is None:
        return _operation(statement), NO_TABLE
    labels = _labels_cache.get(compiled)
    if labels is None:
        labels = _labels_cache[compiled] = _compiled_labels(compiled.statement, statement)
    return labels


def _compiled_labels(construct: Any, statement: str) -> tuple[str, str]:
    if getattr(construct, "is_dml", False):
        operation = (
            "insert" if construct.is_insert else "update" if construct.is_update else "delete"
        )
        return operation, _table_name(getattr(construct, "table", None))
    operation = "select" if getattr(construct, "is_select", False) else _operation(statement)
    froms = construct.get_final_froms() if hasattr(construct, "get_final_froms") else []
    return operation, _table_name(froms[0]) if froms else NO_TABLE


def _table_name(element: Any) -> str:
    """The name of a real table behind ``element``; anonymous aliases and subqueries have
    generated names, which would make label values unbounded, so they give ``"<none>"``."""
    while isinstance(element, Join | Alias):
        element = element.left if isinstance(element, Join) else element.element
    if isinstance(element, TableClause):
        return str(element.name)
    return NO_TABLE


def _operation(statement: str) -> str:
    word = statement.lstrip()[:6].lower()
    return word if word in _OPERATIONS else "other"


class PoolCollector:
    """Reads the pools of the engines of one registry at scrape time (summed)."""

    _by_metrics: ClassVar[weakref.WeakKeyDictionary[Metrics, PoolCollector]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    @classmethod
    def for_registry(cls, metrics: Metrics) -> PoolCollector:
        """The collector of ``metrics``' registry, registered on first use."""
        found = cls._by_metrics.get(metrics)
        if found is None:
            found = cls._by_metrics[metrics] = cls()
            if metrics.registry is not None:
                metrics.registry.register(found)
        return found

    def add(self, engine: Engine) -> None:
        """Report ``engine``'s pool too."""
        self._engines.add(engine)

    def collect(self) -> Iterator[Metric]:
        """The pool gauges, read now (``engine.pool`` is replaced when the engine is disposed)."""
        totals = {"size": 0.0, "checkedout": 0.0, "overflow": 0.0}
        for engine in list(self._engines):
            pool = engine.pool
            for name in totals:
                method = getattr(pool, name, None)
                if method is not None:
                    # QueuePool's overflow() counts down from -size while connections are
                    # still being opened; "beyond the pool size" is never negative.
                    totals[name] += max(0, method())
        for (name, help), value in zip(POOL_SERIES, totals.values(), strict=True):
            yield GaugeMetricFamily(name, help, value=value)


_POOL_GAUGES: list[Gauge] = []


def _pool_gauges() -> list[Gauge]:
    """The pool gauges of multiprocess mode (one set per process; workers' values are summed)."""
    if not _POOL_GAUGES:
        _POOL_GAUGES.extend(
            Gauge(name, help, registry=None, multiprocess_mode="livesum")
            for name, help in POOL_SERIES
        )
    return _POOL_GAUGES


def _follow_pool_events(engine: Engine) -> None:
    """Multiprocess mode: the scraping worker cannot read other workers' pools, so each
    worker keeps its share of the (summed) gauges up to date as connections come and go."""

    size, checked_out, overflow = _pool_gauges()

    def refresh() -> None:
        pool: Any = engine.pool
        if hasattr(pool, "size"):
            size.set(pool.size())
        if hasattr(pool, "overflow"):
            overflow.set(max(0, pool.overflow()))

    def checkout(*_args: Any) -> None:
        checked_out.inc()
        refresh()

    def checkin(*_args: Any) -> None:
        checked_out.dec()
        refresh()

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
