"""Observability: Prometheus metrics, request ids, secret fields and the audit trail."""

from typing import TYPE_CHECKING, Any

from ..extras import require_extra
from ..identity.request_id import current_client_request_id, current_request_id, use_request_id
from ..identity.secret_fields import is_secret, secret_field
from .audit import Audit, AuditEntry
from .config import AuditConfig, MetricsConfig

if TYPE_CHECKING:
    from .metrics import Metrics


def __getattr__(name: str) -> Any:
    if name == "Metrics":  # needs prometheus_client: imported only when asked for
        require_extra("metrics")
        from .metrics import Metrics

        return Metrics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Audit",
    "AuditConfig",
    "AuditEntry",
    "Metrics",
    "MetricsConfig",
    "current_client_request_id",
    "current_request_id",
    "is_secret",
    "secret_field",
    "use_request_id",
]
