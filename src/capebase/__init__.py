"""capebase: a FastAPI app plus SQLModel models become a permission-checked real-time backend."""

from typing import TYPE_CHECKING, Any

from .app import CapeBase
from .auth import FROM_AUTH_ID, FROM_AUTH_ROLE, AuthContext, from_context
from .changes.changelog import metadata
from .crud import CrudConfig
from .errors import (
    CapeBaseError,
    ConfigurationError,
    DatabaseUnavailableError,
    NotFoundError,
    NotStartedError,
    PermissionDeniedError,
    PreconditionFailedError,
    QueryError,
    UnfilterableStatementError,
)
from .limits import LimitsConfig
from .observability import AuditConfig, MetricsConfig, secret_field
from .policy import Explanation
from .realtime import ModelChange
from .realtime.config import RealtimeConfig

if TYPE_CHECKING:
    from .auth.builtin import PasswordAuth


def __getattr__(name: str) -> Any:
    # The built-in auth needs the `auth` extra: imported only when asked for.
    if name == "PasswordAuth":
        from .auth.builtin import PasswordAuth

        return PasswordAuth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "PreconditionFailedError",
    "QueryError",
    "RealtimeConfig",
    "UnfilterableStatementError",
    "from_context",
    "metadata",
    "secret_field",
]
