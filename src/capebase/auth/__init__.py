"""Authentication: the AuthContext every rule sees, model fields filled from it, and the
optional built-in password auth."""

from typing import TYPE_CHECKING, Any

from ..identity.context import AuthContext
from ..identity.fields import FROM_AUTH_ID, FROM_AUTH_ROLE, AuthValue, auth_fields, from_context
from .provider import AuthProvider, anonymous, is_stream_route

if TYPE_CHECKING:
    from .builtin import PasswordAuth, PasswordAuthConfig


def __getattr__(name: str) -> Any:
    # The built-in auth needs the `auth` extra: imported only when asked for.
    if name in {"PasswordAuth", "PasswordAuthConfig"}:
        from . import builtin

        return getattr(builtin, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "is_stream_route",
]
