"""The Prometheus series capebase records, and the observer that records them.

Label values are always from a bounded set: route templates, HTTP methods and statuses, table
and model names, operations. Never ids, raw paths or user input.

Series (all prefixed ``capebase_``):

    http_requests_total{method,route,status}             counter
    http_request_duration_seconds{method,route,status}   histogram (streams: their lifetime)
    http_requests_in_flight{method,route}                gauge
    db_query_duration_seconds{operation,table}           histogram
    db_errors_total{operation,table}                     counter
    db_pool_size / db_pool_checked_out / db_pool_overflow   gauges (read from the pool)
    permission_denials_total{model,action}               counter
    realtime_subscriptions{transport,table}              gauge (open streams)
    realtime_changes_published_total{table,op}           counter (dispatched from the log)
    realtime_deliveries_total{table}                     counter
    realtime_drops_total{table}                          counter (subscribers dropped on overflow)
    realtime_delivery_latency_seconds{table}             histogram (change written → queued)
    realtime_handler_duration_seconds{table,handler}     histogram
    realtime_handler_failures_total{table,handler}       counter (errors and timeouts)
    realtime_dispatch_lag_seconds                        gauge (age of the change being dispatched)
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..observer import Observer, transport

if TYPE_CHECKING:
    from ..changes.changelog import ChangeRecord
    from ..realtime.subscribers import Subscriber

PREFIX = "capebase"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REALTIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HANDLER_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)


def is_multiprocess() -> bool:
    """Whether prometheus_client records to ``PROMETHEUS_MULTIPROC_DIR`` (several workers)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """Every capebase series, registered in one registry (``None``: in none, for multiprocess
    mode, where values go to files and the endpoint reads those)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry
        r = registry
        self.http_requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests handled.",
            ["method", "route", "status"], registry=r,
        )
        self.http_duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time from request to the end of the response body (a stream's whole lifetime).",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=r,
        )
        self.http_in_flight = Gauge(
            f"{PREFIX}_http_requests_in_flight", "HTTP requests being handled (open streams too).",
            ["method", "route"], registry=r, multiprocess_mode="livesum",
        )
        self.db_duration = Histogram(
            f"{PREFIX}_db_query_duration_seconds", "Database statement execution time.",
            ["operation", "table"], buckets=DB_BUCKETS, registry=r,
        )
        self.db_errors = Counter(
            f"{PREFIX}_db_errors", "Database statements that raised an error.",
            ["operation", "table"], registry=r,
        )
        self.denials = Counter(
            f"{PREFIX}_permission_denials", "Actions the permission policy denied.",
            ["model", "action"], registry=r,
        )
        self.subscriptions = Gauge(
            f"{PREFIX}_realtime_subscriptions", "Open change streams.",
            ["transport", "table"], registry=r, multiprocess_mode="livesum",
        )
        self.changes = Counter(
            f"{PREFIX}_realtime_changes_published",
            "Changes the dispatcher read from the change log and delivered (per process).",
            ["table", "op"], registry=r,
        )
        self.deliveries = Counter(
            f"{PREFIX}_realtime_deliveries", "Change messages queued for a subscriber.",
            ["table"], registry=r,
        )
        self.drops = Counter(
            f"{PREFIX}_realtime_drops",
            "Subscribers dropped because their queue was full (they can resume).",
            ["table"], registry=r,
        )
        self.delivery_latency = Histogram(
            f"{PREFIX}_realtime_delivery_latency_seconds",
            "Time from a change being written to its message being queued for a subscriber.",
            ["table"], buckets=REALTIME_BUCKETS, registry=r,
        )
        self.handler_duration = Histogram(
            f"{PREFIX}_realtime_handler_duration_seconds", "Time one change handler call took.",
            ["table", "handler"], buckets=HANDLER_BUCKETS, registry=r,
        )
        self.handler_failures = Counter(
            f"{PREFIX}_realtime_handler_failures",
            "Change handler calls that raised or timed out.",
            ["table", "handler"], registry=r,
        )
        self.broker_connected = Gauge(
            f"{PREFIX}_broker_connected",
            "1 while this process is connected to the realtime broker, else 0.",
            registry=r, multiprocess_mode="liveall",
        )
        self.broker_outages = Counter(
            f"{PREFIX}_broker_outages",
            "Times the broker became unreachable (delivery then polls the change log).",
            registry=r,
        )
        self.dispatch_lag = Gauge(
            f"{PREFIX}_realtime_dispatch_lag_seconds",
            "Age of the change the dispatcher last delivered (now minus when it was written).",
            registry=r, multiprocess_mode="livemax",
        )


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()
_multiprocess: Metrics | None = None


def metrics_for(registry: CollectorRegistry | None) -> Metrics:
    """The series in ``registry``, created on first use; CapeBase instances sharing a registry
    share them. In multiprocess mode ``registry`` is ignored: one set per process."""
    global _multiprocess
    if is_multiprocess():
        if _multiprocess is None:
            _multiprocess = Metrics(None)
        return _multiprocess
    if registry is None:
        return Metrics(CollectorRegistry(auto_describe=True))
    found = _by_registry.get(registry)
    if found is None:
        found = _by_registry[registry] = Metrics(registry)
    return found


class MetricsObserver(Observer):
    """Records what capebase reports in ``metrics``."""

    __slots__ = ("_open", "metrics")

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._open: dict[int, Any] = {}

    def permission_denied(self, model: str, action: str) -> None:
        self.metrics.denials.labels(model, action).inc()

    def broker_state(self, connected: bool, *, outage: bool = False) -> None:
        self.metrics.broker_connected.set(1 if connected else 0)
        if outage:
            self.metrics.broker_outages.inc()

    def subscription_opened(self, subscriber: Subscriber) -> None:
        gauge = self.metrics.subscriptions.labels(transport.get(), subscriber.view.table.name)
        gauge.inc()
        self._open[id(subscriber)] = gauge

    def subscription_closed(self, subscriber: Subscriber) -> None:
        gauge = self._open.pop(id(subscriber), None)
        if gauge is not None:
            gauge.dec()

    def change_dispatched(self, record: ChangeRecord) -> None:
        self.metrics.changes.labels(record.table, record.op).inc()
        self.metrics.dispatch_lag.set(_age(record))

    def change_offered(self, subscriber: Subscriber, record: ChangeRecord) -> None:
        if subscriber.overflowed:
            # offer() closes an overflowing subscriber, so the dispatcher skips it from now on
            # and this counts once per drop.
            self.metrics.drops.labels(record.table).inc()
            return
        self.metrics.deliveries.labels(record.table).inc()
        self.metrics.delivery_latency.labels(record.table).observe(_age(record))

    def timed_handler(
        self, table: str, handler: str, call: Coroutine[Any, Any, None]
    ) -> Coroutine[Any, Any, None]:
        return self._timed(table, handler, call)

    async def _timed(self, table: str, handler: str, call: Coroutine[Any, Any, None]) -> None:
        started = time.perf_counter()
        try:
            await call
        except BaseException:
            # Cancellation here is the handler timeout (or shutdown): a failed run either way.
            self.metrics.handler_failures.labels(table, handler).inc()
            raise
        finally:
            self.metrics.handler_duration.labels(table, handler).observe(
                time.perf_counter() - started
            )


def _age(record: ChangeRecord) -> float:
    # Clocks of other processes (or database servers) may run ahead a little: never negative.
    return max(0.0, time.time() - record.created_at.timestamp())
