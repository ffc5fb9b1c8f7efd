"""Authentication: the AuthContext every rule sees, model fields filled from it, and the
optional built-in password auth."""

from .builtin import PasswordAuth, PasswordAuthConfig
from .context import AuthContext
from .fields import FROM_AUTH_ID, FROM_AUTH_ROLE, AuthValue, auth_fields, from_context
from .provider import AuthProvider, anonymous

__all__ = [
    "FROM_AUTH_ID",
    "FROM_AUTH_ROLE",
    "AuthContext",
    "AuthProvider",
    "AuthValue",
    "PasswordAuth",
    "PasswordAuthConfig",
    "anonymous",
    "auth_fields",
    "from_context",
]
