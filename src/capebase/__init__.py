"""capebase: a FastAPI app plus SQLModel models become a permission-checked real-time backend."""

from .app import CapeBase
from .auth import FROM_AUTH_ID, FROM_AUTH_ROLE, AuthContext, from_context
from .crud import CrudConfig
from .errors import (
    CapeBaseError,
    ConfigurationError,
    NotFoundError,
    NotStartedError,
    PermissionDeniedError,
    QueryError,
    UnfilterableStatementError,
)
from .policy import Explanation
from .realtime import ModelChange

__all__ = [
    "FROM_AUTH_ID",
    "FROM_AUTH_ROLE",
    "AuthContext",
    "CapeBase",
    "CapeBaseError",
    "ConfigurationError",
    "CrudConfig",
    "Explanation",
    "ModelChange",
    "NotFoundError",
    "NotStartedError",
    "PermissionDeniedError",
    "QueryError",
    "UnfilterableStatementError",
    "from_context",
]
