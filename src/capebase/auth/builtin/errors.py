"""The built-in auth's errors and the one place they become HTTP responses.

    CapeBaseError
    └── AuthError
        ├── InvalidCredentialsError   wrong login or password, or a disabled account (401)
        ├── InvalidTokenError         a malformed, expired, forged or revoked token (401)
        ├── AuthenticationRequiredError  no token where a signed-in user is needed (401)
        ├── AccountExistsError        sign-up with a taken email or username (409)
        └── LockedOutError            too many failed sign-ins; ``retry_after`` seconds (429)

Messages are deliberately uniform: none says whether an account exists or why a token failed.
"""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ...errors import CapeBaseError

BAD_CREDENTIALS = "Incorrect username or password"
BAD_TOKEN = "Invalid or expired token"
_BEARER = {"WWW-Authenticate": "Bearer"}


class AuthError(CapeBaseError):
    """Base class of the built-in auth's errors."""


class InvalidCredentialsError(AuthError):
    """The login or password is wrong, or the account is disabled (the three look the same)."""

    def __init__(self) -> None:
        super().__init__(BAD_CREDENTIALS)


class InvalidTokenError(AuthError):
    """An access or refresh token that cannot be accepted, whatever the reason."""

    def __init__(self) -> None:
        super().__init__(BAD_TOKEN)


class AuthenticationRequiredError(AuthError):
    """The route needs a signed-in user and the request carried no token."""

    def __init__(self) -> None:
        super().__init__("Authentication required")


class AccountExistsError(AuthError):
    """Sign-up named an email or username that is already taken."""

    def __init__(self) -> None:
        super().__init__("An account with this email or username already exists")


class LockedOutError(AuthError):
    """Too many failed sign-ins for this account or from this address.

    Attributes:
        retry_after: seconds until sign-in attempts are accepted again.
    """

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__("Too many failed sign-in attempts; try again later")


async def _auth_error(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, LockedOutError):
        return JSONResponse(
            {"detail": str(exc)},
            status_code=429,
            headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
        )
    if isinstance(exc, AccountExistsError):
        return JSONResponse({"detail": str(exc)}, status_code=409)
    return JSONResponse({"detail": str(exc)}, status_code=401, headers=_BEARER)


def install_auth_error_handlers(app: FastAPI) -> None:
    """Map the built-in auth's errors to 401, 409 and 429 responses."""
    app.add_exception_handler(AuthError, _auth_error)
