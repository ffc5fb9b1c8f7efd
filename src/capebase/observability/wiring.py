"""Wiring metrics, request ids and the audit endpoint into a CapeBase's app and engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..extras import require_extra
from ..identity.request_id import RequestIdMiddleware
from .audit import audit_router
from .config import AuditConfig, MetricsConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ..db.direct import DirectExecutor
    from ..observer import ObserverSlot
    from .audit import Audit
    from .metrics import Metrics


def metrics_config(value: MetricsConfig | bool | None) -> MetricsConfig | None:
    """The metrics settings ``CapeBase(metrics=...)`` asks for (``None``: metrics off)."""
    if value is True:
        return MetricsConfig()
    if value is False or value is None:
        return None
    if not isinstance(value, MetricsConfig):
        raise ConfigurationError("CapeBase(metrics=...) takes True, False or a MetricsConfig")
    return value


def audit_config(value: AuditConfig | bool | None) -> AuditConfig | None:
    """The audit settings ``CapeBase(audit=...)`` asks for (``None``: no endpoint, and the
    change log follows ``RealtimeConfig.retention`` alone)."""
    if value is True:
        return AuditConfig()
    if value is False or value is None:
        return None
    if not isinstance(value, AuditConfig):
        raise ConfigurationError("CapeBase(audit=...) takes True, False or an AuditConfig")
    return value


def install(
    app: FastAPI,
    engine: AsyncEngine,
    direct: DirectExecutor | None,
    observers: ObserverSlot,
    *,
    metrics: MetricsConfig | None,
    audit: tuple[Audit, AuditConfig] | None,
    auth_dependency: Callable[..., Any],
) -> Metrics | None:
    """Add the request-id middleware to ``app``, and the metrics and audit endpoints when
    configured; metrics also time ``engine``'s statements and ``direct``'s, and fill
    ``observers`` with the observer that records the rest.

    Returns the series recorded, or ``None`` when metrics are off.
    """
    app.add_middleware(RequestIdMiddleware)
    if audit is not None and audit[1].path is not None:
        app.include_router(audit_router(*audit, auth_dependency))
    if metrics is None:
        return None
    require_extra("metrics")
    from .database import instrument_direct, instrument_engine
    from .http import HttpMetricsMiddleware, metrics_router
    from .metrics import MetricsObserver, metrics_for

    series = metrics_for(metrics.registry)
    observer = MetricsObserver(series)
    observers.observer = observer
    instrument_engine(engine, series)
    if direct is not None:
        instrument_direct(direct, series)
    # Added last, so outermost: it also times the request-id middleware and error handling.
    app.add_middleware(
        HttpMetricsMiddleware, metrics=series, observer=observer, routes=app.router.routes
    )
    app.include_router(
        metrics_router(
            metrics.path, series.registry, metrics.guard, metrics.include_in_schema
        )
    )
    return series
