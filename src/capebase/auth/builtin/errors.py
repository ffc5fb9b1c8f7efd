"""The built-in auth's errors, importable from here as before.

They are defined with the rest of the exception tree in ``capebase.errors``; how they are
answered (401, 409, 429 with ``Retry-After``) is in ``capebase.http.errors``. Messages are
deliberately uniform: none says whether an account exists or why a token failed.
"""

from __future__ import annotations

from ...errors import (
    BAD_CREDENTIALS,
    BAD_TOKEN,
    AccountExistsError,
    AuthenticationRequiredError,
    AuthError,
    InvalidCredentialsError,
    InvalidTokenError,
    LockedOutError,
)

__all__ = [
    "BAD_CREDENTIALS",
    "BAD_TOKEN",
    "AccountExistsError",
    "AuthError",
    "AuthenticationRequiredError",
    "InvalidCredentialsError",
    "InvalidTokenError",
    "LockedOutError",
]
