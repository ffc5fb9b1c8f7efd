"""capebase: a FastAPI app plus SQLModel models become a permission-checked real-time backend."""

from .app import CapeBase
from .auth import FROM_AUTH_ID, FROM_AUTH_ROLE, AuthContext, PasswordAuth, from_context
from .crud import CrudConfig
from .errors import (
    CapeBaseError,
    ConfigurationError,
    DatabaseUnavailableError,
    NotFoundError,
    NotStartedError,
    PermissionDeniedError,
    QueryError,
    UnfilterableStatementError,
)
from .limits import LimitsConfig
from .observability import AuditConfig, MetricsConfig, secret_field
from .policy import Explanation
from .realtime import ModelChange
from .realtime.changelog import metadata
from .realtime.config import RealtimeConfig

__all__ = [
    "FROM_AUTH_ID",
    "FROM_AUTH_ROLE",
    "AuditConfig",
    "AuthContext",
    "CapeBase",
    "CapeBaseError",
    "ConfigurationError",
    "CrudConfig",
    "DatabaseUnavailableError",
    "Explanation",
    "LimitsConfig",
    "MetricsConfig",
    "ModelChange",
    "NotFoundError",
    "NotStartedError",
    "PasswordAuth",
    "PermissionDeniedError",
    "QueryError",
    "RealtimeConfig",
    "UnfilterableStatementError",
    "from_context",
    "metadata",
    "secret_field",
]
