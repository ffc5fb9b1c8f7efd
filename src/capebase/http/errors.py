"""Where errors become HTTP answers and WebSocket close codes: the only place.

=================================  =========================================  ===============
exception                          HTTP answer (``{"detail": ...}``)          WebSocket close
=================================  =========================================  ===============
PermissionDeniedError              403; 401 + ``WWW-Authenticate: Bearer``    1008
                                   (and "Authentication required") when the
                                   caller is anonymous
NotFoundError                      404                                        1008
PreconditionFailedError            412                                        1008
QueryError                         400; 422 when ``is_invalid_value``         1008
BatchError                         its ``cause``'s answer with ``"index"``    1008
                                   added; without one 413 when
                                   ``is_too_large``, else 400
TooManySubscriptionsError          429                                        1013
DatabaseUnavailableError, a        503 + ``Retry-After``                      1013
driver's connection error
a statement timeout                504                                        1013
InvalidCredentialsError,           401 + ``WWW-Authenticate: Bearer``         1008
InvalidTokenError,
AuthenticationRequiredError
AccountExistsError                 409                                        1008
LockedOutError                     429 + ``Retry-After``                      1013
ConfigurationError (NotATable...), none: a bug, raised again (500)            1011
NotStartedError,
UnfilterableStatementError
=================================  =========================================  ===============

Also answered here, without an exception of capebase's: a database constraint failure (409, or
422 for a value the column cannot store), a body over ``LimitsConfig.max_body_size`` (413) and
a body that cannot be read (400).

On a WebSocket, an error after the handshake, or one worth retrying (1013), closes the socket
with its code, accepted first so the client sees code and reason (a close before accept is an
HTTP 403 to the client); any other error refuses the handshake with its HTTP answer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, WebSocketException, status
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketState

from ..db.failures import classify, is_constraint_failure
from ..errors import (
    AccountExistsError,
    AuthError,
    BatchError,
    CapeBaseError,
    DatabaseUnavailableError,
    LockedOutError,
    MappedStatus,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    QueryError,
    TooManySubscriptionsError,
)
from ..observer import count_http_denial

logger = logging.getLogger("capebase")

GOING_AWAY = status.WS_1001_GOING_AWAY
"""The server is shutting down; the client may resume elsewhere."""
POLICY_VIOLATION = status.WS_1008_POLICY_VIOLATION
"""The request cannot be served as it is (bad credentials, a bad query): do not retry it."""
INTERNAL_ERROR = status.WS_1011_INTERNAL_ERROR
TRY_AGAIN_LATER = status.WS_1013_TRY_AGAIN_LATER
"""The server cannot serve it right now (database unreachable or slow, limits): retry later."""

DEFAULT_RETRY_AFTER = 5
_BEARER = {"WWW-Authenticate": "Bearer"}
_HANDLED = (
    BatchError,
    PermissionDeniedError,
    NotFoundError,
    PreconditionFailedError,
    QueryError,
    TooManySubscriptionsError,
    AuthError,
    DatabaseUnavailableError,
    sa_exc.DBAPIError,  # OperationalError, InterfaceError, a dropped connection...
    sa_exc.TimeoutError,  # no pooled connection came free within pool_timeout
    ConnectionError,  # OSErrors of a refused or reset connection
    TimeoutError,
)


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """How one error is answered: over HTTP, and on a WebSocket."""

    status: int
    detail: str
    close_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    index: int | None = None
    """The row or operation of a bulk create or batch that failed (``BatchError``)."""

    def response(self) -> JSONResponse:
        """The HTTP response: ``{"detail": ...}`` (and ``"index"`` for a failed row or
        operation of a batch) with the status and headers."""
        body: dict[str, Any] = {"detail": self.detail}
        if self.index is not None:
            body["index"] = self.index
        return JSONResponse(body, status_code=self.status, headers=dict(self.headers))


def answer_for(
    exc: BaseException, *, retry_after: int = DEFAULT_RETRY_AFTER
) -> ErrorAnswer | None:
    """How ``exc`` is answered, or ``None`` for an error that is a bug (it stays a 500, so
    that it gets noticed). ``retry_after`` is the ``Retry-After`` of a database failure."""
    if isinstance(exc, BatchError):
        return _batch_answer(exc, retry_after)
    if isinstance(exc, PermissionDeniedError):
        if exc.is_anonymous:
            return ErrorAnswer(401, "Authentication required", POLICY_VIOLATION, _BEARER)
        return ErrorAnswer(403, str(exc), POLICY_VIOLATION)
    if isinstance(exc, NotFoundError):
        return ErrorAnswer(404, str(exc), POLICY_VIOLATION)
    if isinstance(exc, PreconditionFailedError):
        return ErrorAnswer(412, str(exc), POLICY_VIOLATION)
    if isinstance(exc, QueryError):
        return ErrorAnswer(422 if exc.is_invalid_value else 400, str(exc), POLICY_VIOLATION)
    if isinstance(exc, TooManySubscriptionsError):
        return ErrorAnswer(429, str(exc), TRY_AGAIN_LATER)
    if isinstance(exc, LockedOutError):
        wait = str(max(1, math.ceil(exc.retry_after)))
        return ErrorAnswer(429, str(exc), TRY_AGAIN_LATER, {"Retry-After": wait})
    if isinstance(exc, AccountExistsError):
        return ErrorAnswer(409, str(exc), POLICY_VIOLATION)
    if isinstance(exc, AuthError):
        return ErrorAnswer(401, str(exc), POLICY_VIOLATION, _BEARER)
    kind = classify(exc)
    if kind == "timeout":
        detail = "The database did not answer in time (LimitsConfig.statement_timeout)"
        return ErrorAnswer(504, detail, TRY_AGAIN_LATER)
    if kind == "unavailable":
        detail = "The database is unavailable; retry later"
        return ErrorAnswer(503, detail, TRY_AGAIN_LATER, {"Retry-After": str(retry_after)})
    return None


def _batch_answer(exc: BatchError, retry_after: int) -> ErrorAnswer | None:
    if exc.cause is None:
        status_code = 413 if exc.is_too_large else 400
        return ErrorAnswer(status_code, str(exc), POLICY_VIOLATION, index=exc.index)
    cause = exc.cause
    answer = answer_for(cause, retry_after=retry_after)
    if answer is None and isinstance(cause, HTTPException):  # constraint_failures_as_http's
        answer = ErrorAnswer(
            cause.status_code, str(cause.detail), POLICY_VIOLATION, cause.headers or {}
        )
    return None if answer is None else dataclasses.replace(answer, index=exc.index)


def http_status(exc: CapeBaseError) -> int:
    """The HTTP status ``exc`` is answered with (the ``status_code`` of 0.1's classes).

    Raises:
        LookupError: ``exc`` is not answered: it is a bug, a 500.
    """
    answer = answer_for(exc)
    if answer is None:
        raise LookupError(f"{type(exc).__name__} has no HTTP answer: it is a 500")
    return answer.status


def response_for(exc: CapeBaseError) -> JSONResponse:
    """The HTTP response of ``exc``, for a route that answers it itself.

    Raises:
        CapeBaseError: ``exc`` itself, if it is not answered (a bug).
    """
    answer = answer_for(exc)
    if answer is None:
        raise exc
    return answer.response()


async def close_websocket(websocket: WebSocket, exc: CapeBaseError) -> None:
    """Close ``websocket`` with the close code of ``exc`` and its message as the reason,
    accepting it first if needed so that the client sees both.

    Raises:
        CapeBaseError: ``exc`` itself, if it is not answered (a bug).
    """
    answer = answer_for(exc)
    if answer is None:
        raise exc
    await _close(websocket, answer)


def refusal(connection: HTTPConnection, exc: CapeBaseError) -> Exception:
    """What a dependency raises to refuse ``connection`` for ``exc``: ``exc`` itself over
    HTTP (the handler answers it); on a WebSocket handshake, a close with its code before
    accept, which the client sees as an HTTP 403."""
    answer = answer_for(exc)
    if connection.scope["type"] != "websocket" or answer is None:
        return exc
    return WebSocketException(code=answer.close_code, reason=answer.detail[:120])


def install_error_handlers(app: FastAPI, *, retry_after: int = DEFAULT_RETRY_AFTER) -> None:
    """Answer capebase's errors and the database's failures as the table above says, in the
    user's routes as in the generated ones (``Retry-After: retry_after`` on a 503)."""

    async def answer_error(connection: HTTPConnection, exc: Exception) -> JSONResponse | None:
        answer = answer_for(exc, retry_after=retry_after)
        if answer is None:
            raise exc  # a DBAPIError that is not about reaching the database: a bug
        denied = exc.cause if isinstance(exc, BatchError) else exc
        if isinstance(denied, PermissionDeniedError):
            count_http_denial(connection, denied)  # type: ignore[arg-type]  # reads the scope only
        if answer.status >= 500:
            logger.warning("capebase: %s %s answered %d: %s: %s",
                           connection.scope.get("method", "WS"), connection.url.path,
                           answer.status, type(exc).__name__, str(exc)[:300])
        if isinstance(connection, WebSocket) and (
            connection.client_state != WebSocketState.CONNECTING
            or answer.close_code == TRY_AGAIN_LATER
        ):
            await _close(connection, answer)
            return None
        return answer.response()

    for error in _HANDLED:
        app.add_exception_handler(error, answer_error)  # type: ignore[arg-type]


@contextmanager
def constraint_failures_as_http(model: str) -> Iterator[None]:
    """A write of ``model`` that breaks a constraint → 409; a value the database cannot
    store → 422 (both ``HTTPException``: they are not capebase's errors)."""
    try:
        yield
    except (sa_exc.IntegrityError, sa_exc.OperationalError) as exc:
        if isinstance(exc, sa_exc.OperationalError) and not is_constraint_failure(exc):
            raise
        raise HTTPException(
            status_code=409,
            detail=f"{model} conflicts with stored data: {_constraint_message(exc)}",
        ) from exc
    except sa_exc.DataError as exc:
        # What the value checks cannot know, such as MySQL's VARCHAR(255) for a plain str.
        raise HTTPException(
            status_code=422,
            detail=f"{model} has a value the database cannot store: {_constraint_message(exc)}",
        ) from exc


def body_too_large(max_body_size: int) -> HTTPException:
    """The 413 of a body over ``LimitsConfig.max_body_size``.

    An HTTPException: FastAPI re-raises it from body parsing, and its handler answers the
    usual ``{"detail": ...}``. The rest of the body is never read, so the connection cannot
    carry another request: ``Connection: close``, which also stops an endless body.
    """
    return HTTPException(
        status_code=413,
        detail=f"Request body too large: at most {max_body_size} bytes "
        "(LimitsConfig.max_body_size)",
        headers={"Connection": "close"},
    )


def unreadable_body() -> HTTPException:
    """The 400 of a body that could not be read (a client gone mid-body), as FastAPI's."""
    return HTTPException(status_code=400, detail="There was an error parsing the body")


async def _close(websocket: WebSocket, answer: ErrorAnswer) -> None:
    if websocket.application_state == WebSocketState.DISCONNECTED:
        return  # the app closed it already: nothing more can be sent
    if websocket.client_state == WebSocketState.CONNECTING:
        await websocket.accept()
    await websocket.close(code=answer.close_code, reason=answer.detail[:120])


def _constraint_message(exc: sa_exc.DBAPIError) -> str:
    message = str(exc.orig).strip().splitlines()[0] if exc.orig else "constraint violated"
    return message[:200]


MappedStatus.lookup = http_status
