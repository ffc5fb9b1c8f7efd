"""Authentication: the AuthContext every rule sees, and model fields filled from it."""

from .context import AuthContext
from .fields import FROM_AUTH_ID, FROM_AUTH_ROLE, AuthValue, auth_fields, from_context
from .provider import AuthProvider, anonymous

__all__ = [
    "FROM_AUTH_ID",
    "FROM_AUTH_ROLE",
    "AuthContext",
    "AuthProvider",
    "AuthValue",
    "anonymous",
    "auth_fields",
    "from_context",
]
