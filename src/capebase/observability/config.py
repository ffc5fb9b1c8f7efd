"""Settings of the Prometheus metrics and of the audit trail."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricsConfig:
    """Where and how the Prometheus metrics are exposed. ``CapeBase(metrics=True)`` uses the
    defaults.

    Args:
        path: the scrape endpoint.
        guard: a FastAPI dependency run before each scrape; it denies by raising (for example
            ``HTTPException(401)``). ``None``: anyone who can reach the app may scrape.
        registry: the CollectorRegistry the series are registered in. ``None`` gives each
            CapeBase a registry of its own; pass ``prometheus_client.REGISTRY`` to share the
            process-wide one (CapeBase instances sharing a registry share the series).
            With ``PROMETHEUS_MULTIPROC_DIR`` set, series are recorded in that directory and
            the endpoint serves every worker's, merged; ``registry`` is then not used. Have
            your process manager call ``prometheus_client.multiprocess.mark_process_dead(pid)``
            when a worker exits (gunicorn's ``child_exit``), so its gauges stop counting.
        include_in_schema: list the scrape endpoint in the OpenAPI schema.
    """

    path: str = "/metrics"
    guard: Callable[..., Any] | None = None
    registry: CollectorRegistry | None = None
    include_in_schema: bool = False

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ConfigurationError(f"MetricsConfig.path must start with '/', got {self.path!r}")
        if self.guard is not None and not callable(self.guard):
            raise ConfigurationError("MetricsConfig.guard must be a FastAPI dependency (callable)")
        if self.registry is not None and not _is_registry(self.registry):
            raise ConfigurationError(
                "MetricsConfig.registry must be a prometheus_client CollectorRegistry"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditConfig:
    """The audit trail's HTTP endpoint and how long the change log keeps its rows.

    Args:
        role: the role (or roles) that may read ``GET {path}``; anonymous callers get 401,
            other roles 403.
        path: the endpoint; ``None`` adds no route (``cape.audit`` still works in Python).
        retention: how long changes are kept for the audit trail. The change log keeps a row
            until both this and ``RealtimeConfig.retention`` have passed (rows kept for the
            audit stay resumable by streams).
        default_page_size: rows returned when ``limit`` is not given.
        max_page_size: the largest ``limit`` accepted (422 above it).
    """

    role: str | Sequence[str] = "admin"
    path: str | None = "/_capebase/audit"
    retention: timedelta = timedelta(days=90)
    default_page_size: int = 100
    max_page_size: int = 1000

    def __post_init__(self) -> None:
        roles = [self.role] if isinstance(self.role, str) else list(self.role)
        if not roles or not all(isinstance(r, str) and r for r in roles):
            raise ConfigurationError("AuditConfig.role must be a role name or a list of them")
        if self.path is not None and not self.path.startswith("/"):
            raise ConfigurationError(f"AuditConfig.path must start with '/', got {self.path!r}")
        if self.retention <= timedelta(0):
            raise ConfigurationError("AuditConfig.retention must be a positive timedelta")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ConfigurationError(
                "AuditConfig needs 1 <= default_page_size <= max_page_size, got "
                f"{self.default_page_size} and {self.max_page_size}"
            )

    @property
    def roles(self) -> frozenset[str]:
        """The roles allowed to read the audit endpoint."""
        return frozenset([self.role] if isinstance(self.role, str) else self.role)


def _is_registry(value: object) -> bool:
    # Only a caller who passed a registry has prometheus_client; nobody else imports it here.
    from prometheus_client import CollectorRegistry

    return isinstance(value, CollectorRegistry)
