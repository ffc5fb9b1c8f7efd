"""The capebase exception tree.

    CapeBaseError
    ├── ConfigurationError          misuse of the library, found at set-up time
    │   └── NotATableError          a model argument is not a table model (also a TypeError)
    ├── NotStartedError             used before CapeBase's lifespan started
    ├── PermissionDeniedError       the policy denies an action; also a FastAPI HTTPException,
    │                               as in capebase 0.1
    ├── UnfilterableStatementError  a statement a user session cannot enforce the policy on
    │                               (also a NotImplementedError, as in capebase 0.1)
    ├── NotFoundError               a row does not exist or is not readable
    ├── PreconditionFailedError     an ``If-Match`` / ``If-None-Match`` condition is false
    ├── QueryError                  a list or stream query names an unknown field or operator,
    │                               or has an invalid value
    ├── BatchError                  a bulk create or batch fails as a whole: too many
    │                               operations, one naming no published route, or one that
    │                               failed (``cause``, at ``index``)
    ├── TooManySubscriptionsError   the stream limits are reached
    ├── DatabaseUnavailableError    the database cannot be reached right now
    └── AuthError                   the built-in auth refuses (``capebase.auth.builtin``)
        ├── InvalidCredentialsError wrong login or password, or a disabled account
        ├── InvalidTokenError       a malformed, expired, forged or revoked token
        ├── AuthenticationRequiredError  no token where a signed-in user is needed
        ├── AccountExistsError      sign-up with a taken email or username
        └── LockedOutError          too many failed sign-ins; ``retry_after`` seconds

The exceptions say what went wrong, never how to answer it: ``capebase.http.errors`` alone maps
each one to an HTTP status and a WebSocket close code.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar, overload

from fastapi import HTTPException

BAD_CREDENTIALS = "Incorrect username or password"
BAD_TOKEN = "Invalid or expired token"


class CapeBaseError(Exception):
    """Base class of every error capebase raises."""


class MappedStatus:
    """The ``status_code`` of the classes that had one in capebase 0.1: read from the HTTP
    error map (``capebase.http.errors``), which registers itself here when it is imported, so
    that this module depends on no HTTP layer."""

    lookup: ClassVar[Callable[[CapeBaseError], int] | None] = None

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> MappedStatus: ...
    @overload
    def __get__(self, instance: CapeBaseError, owner: type[Any]) -> int: ...
    def __get__(self, instance: CapeBaseError | None, owner: type[Any]) -> MappedStatus | int:
        if instance is None:
            return self
        if MappedStatus.lookup is None:
            # Cannot happen through ``import capebase``, which loads the map.
            raise RuntimeError("capebase.http.errors is not loaded: import capebase first")
        return MappedStatus.lookup(instance)

    def __set__(self, instance: CapeBaseError, value: int) -> None:
        """Ignored: ``HTTPException.__init__`` assigns one, the map decides."""


class ConfigurationError(CapeBaseError):
    """The library was set up in a way that cannot work; the message says how to fix it."""


class NotATableError(ConfigurationError, TypeError):
    """A model argument (``publish``, ``subscribe``, ``permission_required``) is not a
    SQLModel table model."""


class NotStartedError(CapeBaseError):
    """A resource was used before CapeBase's lifespan started it (the realtime hub's resume
    tokens, for one)."""


class PermissionDeniedError(CapeBaseError, HTTPException):
    """The permission policy denies ``action`` on ``model`` for the current caller.

    It is also a FastAPI ``HTTPException`` (``status_code`` 403, or 401 for an anonymous
    caller), so code written for capebase 0.1 that catches ``HTTPException`` still does;
    capebase's own handler answers it wherever it is raised.

    Attributes:
        action: "create", "read", "update" or "delete".
        model: the model's name.
        is_anonymous: whether the caller had no identity (HTTP maps this to 401).
        status_code: the HTTP status capebase answers it with: 401 when ``is_anonymous``,
            else 403.
    """

    status_code = MappedStatus()  # from the map; HTTPException.__init__ cannot change it

    def __init__(self, action: str, model: str, *, is_anonymous: bool = False) -> None:
        self.action = action
        self.model = model
        self.is_anonymous = is_anonymous
        message = f"Permission denied: cannot {action} {model}"
        self.detail = message  # before status_code is read: the map reads the message too
        HTTPException.__init__(self, self.status_code, message)
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


class PreconditionFailedError(CapeBaseError):
    """A conditional write's precondition is false: the row changed since the caller read
    the ``ETag`` it sent in ``If-Match`` (or matches its ``If-None-Match``).

    Attributes:
        model: the model's name.
        pk: the primary key of the row.
        header: the header whose condition is false.
    """

    def __init__(self, model: str, pk: Any, *, header: str = "If-Match") -> None:
        self.model = model
        self.pk = pk
        self.header = header
        if header == "If-Match":
            message = f"{model} has changed since the ETag sent in If-Match: read it again"
        else:
            message = f"{model} is at a version the request's {header} excludes"
        super().__init__(message)


class QueryError(CapeBaseError):
    """A list or stream query is malformed: an unknown field or operator, a misplaced
    parameter; or, with ``is_invalid_value``, a known one has a value that cannot be used
    (unparsable, empty, over a limit).

    Attributes:
        is_invalid_value: the names are right but a value is not (HTTP 422, not 400).
        status_code: the HTTP status capebase answers it with (400 or 422).
    """

    status_code = MappedStatus()

    def __init__(
        self, message: str, *, is_invalid_value: bool = False, status_code: int | None = None
    ) -> None:
        if status_code is not None:
            if status_code not in (400, 422):
                raise ValueError("QueryError(status_code=...) must be 400 or 422")
            warnings.warn(
                "QueryError(status_code=...) is deprecated: pass is_invalid_value=True for a "
                "422 (capebase.http.errors decides the status)",
                DeprecationWarning,
                stacklevel=2,
            )
            is_invalid_value = status_code == 422
        self.is_invalid_value = is_invalid_value
        super().__init__(message)


class BatchError(CapeBaseError):
    """A bulk create (``POST /todo`` with an array) or a batch (``POST /_capebase/batch``)
    that writes nothing.

    Attributes:
        index: the position of the row or operation that failed, or ``None`` when the request
            as a whole is refused.
        cause: the error of that row or operation (``PermissionDeniedError``,
            ``NotFoundError``, a constraint failure...), answered as the single route would
            answer it, with ``index`` added; ``None`` when the request is refused as sent.
        is_too_large: the request carries more than ``LimitsConfig.max_batch_size`` rows or
            operations.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        cause: BaseException | None = None,
        is_too_large: bool = False,
    ) -> None:
        self.index = index
        self.cause = cause
        self.is_too_large = is_too_large
        super().__init__(message)


class TooManySubscriptionsError(CapeBaseError):
    """The process already serves ``RealtimeConfig.max_subscriptions`` streams, or the client
    ``RealtimeConfig.max_subscriptions_per_client``."""


class DatabaseUnavailableError(CapeBaseError):
    """The database could not be reached (down, restarting, refusing connections).

    Raised when opening a connection fails for a reason the driver does not report as a
    database error of its own; HTTP maps it, like the drivers' connection errors, to 503.
    """


class AuthError(CapeBaseError):
    """Base class of the built-in auth's errors. Their messages are deliberately uniform:
    none says whether an account exists or why a token failed."""


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
