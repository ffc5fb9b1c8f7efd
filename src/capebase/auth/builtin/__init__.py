"""The optional built-in auth: users with passwords, JWT access tokens, rotating refresh tokens.

Use it as ``CapeBase(app, db_url, auth=PasswordAuth(secret=...))``. Create the first admin with
``PasswordAuth(initial_admin=(email, password))`` or from the command line::

    python -m capebase.auth.builtin create-admin --db sqlite:///app.db --email admin@example.com
"""

from ...extras import require_extra

require_extra("auth")

from .auth import PasswordAuth
from .config import PasswordAuthConfig
from .errors import (
    AccountExistsError,
    AuthenticationRequiredError,
    AuthError,
    InvalidCredentialsError,
    InvalidTokenError,
    LockedOutError,
)
from .models import RefreshToken, User, metadata

__all__ = [
    "AccountExistsError",
    "AuthError",
    "AuthenticationRequiredError",
    "InvalidCredentialsError",
    "InvalidTokenError",
    "LockedOutError",
    "PasswordAuth",
    "PasswordAuthConfig",
    "RefreshToken",
    "User",
    "metadata",
]
