"""The capebase exception tree.

    CapeBaseError
    ├── ConfigurationError          misuse of the library, found at set-up time
    │   └── NotATableError          a model argument is not a table model (also a TypeError)
    ├── NotStartedError             used before CapeBase's lifespan started
    ├── PermissionDeniedError       the policy denies an action (HTTP 403, or 401 when anonymous);
    │                               also a FastAPI HTTPException, as in capebase 0.1
    ├── UnfilterableStatementError  a statement a user session cannot enforce the policy on
    │                               (also a NotImplementedError, as in capebase 0.1)
    ├── NotFoundError               a row does not exist or is not readable (HTTP 404)
    ├── QueryError                  a list query names an unknown field or operator (HTTP 400)
    └── DatabaseUnavailableError    the database cannot be reached right now (HTTP 503)

HTTP status mapping lives in one place: ``capebase.crud.errors``.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException


class CapeBaseError(Exception):
    """Base class of every error capebase raises."""


class ConfigurationError(CapeBaseError):
    """The library was set up in a way that cannot work; the message says how to fix it."""


class NotATableError(ConfigurationError, TypeError):
    """A model argument (``publish``, ``subscribe``, ``permission_required``) is not a
    SQLModel table model."""


class NotStartedError(CapeBaseError):
    """A resource was used before CapeBase's lifespan started it."""


class PermissionDeniedError(CapeBaseError, HTTPException):
    """The permission policy denies ``action`` on ``model`` for the current caller.

    It is also a FastAPI ``HTTPException`` (``status_code`` 403, or 401 for an anonymous
    caller), so code written for capebase 0.1 that catches ``HTTPException`` still does;
    capebase's own handler answers it wherever it is raised.

    Attributes:
        action: "create", "read", "update" or "delete".
        model: the model's name.
        is_anonymous: whether the caller had no identity (HTTP maps this to 401).
        status_code: 401 when ``is_anonymous``, else 403.
    """

    def __init__(self, action: str, model: str, *, is_anonymous: bool = False) -> None:
        self.action = action
        self.model = model
        self.is_anonymous = is_anonymous
        message = f"Permission denied: cannot {action} {model}"
        HTTPException.__init__(self, 401 if is_anonymous else 403, message)
        Exception.__init__(self, message)

    def __str__(self) -> str:
        return str(self.detail)

    def __repr__(self) -> str:
        return (
            f"PermissionDeniedError({self.action!r}, {self.model!r}, "
            f"is_anonymous={self.is_anonymous!r})"
        )


class UnfilterableStatementError(CapeBaseError, NotImplementedError):
    """A user session was asked to run a statement the policy cannot be applied to.

    Also a ``NotImplementedError``, which capebase 0.1 raised for raw SQL in user sessions.
    """


class NotFoundError(CapeBaseError):
    """A row does not exist, or the caller may not read it (the two look the same)."""

    def __init__(self, model: str, pk: Any) -> None:
        self.model = model
        self.pk = pk
        super().__init__(f"{model} not found")


class QueryError(CapeBaseError):
    """A list query is malformed: unknown field, unknown operator or misplaced parameter."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        self.status_code = status_code
        super().__init__(message)


class DatabaseUnavailableError(CapeBaseError):
    """The database could not be reached (down, restarting, refusing connections).

    Raised when opening a connection fails for a reason the driver does not report as a
    database error of its own; HTTP maps it, like the drivers' connection errors, to 503.
    """
