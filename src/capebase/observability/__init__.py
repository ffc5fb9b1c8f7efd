"""Observability: Prometheus metrics, request ids, secret fields and the audit trail."""

from .audit import Audit, AuditEntry
from .config import AuditConfig, MetricsConfig
from .metrics import Metrics
from .request_id import current_request_id, use_request_id
from .secret_fields import is_secret, secret_field

__all__ = [
    "Audit",
    "AuditConfig",
    "AuditEntry",
    "Metrics",
    "MetricsConfig",
    "current_request_id",
    "is_secret",
    "secret_field",
    "use_request_id",
]
