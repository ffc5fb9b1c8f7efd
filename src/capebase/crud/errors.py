"""The one place capebase errors become HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketState

from ..db.failures import classify
from ..errors import DatabaseUnavailableError, NotFoundError, PermissionDeniedError, QueryError
from ..observability.observer import count_http_denial

logger = logging.getLogger("capebase")

TRY_AGAIN_LATER = 1013
"""WebSocket close code for a database that is unreachable or too slow right now."""


async def _permission_denied(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PermissionDeniedError)
    count_http_denial(request, exc)
    if exc.is_anonymous:
        return JSONResponse(
            {"detail": "Authentication required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    return JSONResponse({"detail": str(exc)}, status_code=403)


async def _not_found(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _bad_query(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, QueryError)
    return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)


def _database_failure(
    retry_after: int,
) -> Callable[[HTTPConnection, Exception], Awaitable[JSONResponse | None]]:
    """The handler of database errors: 503 (with Retry-After) while the database cannot be
    reached, 504 when a statement ran past ``LimitsConfig.statement_timeout``; any other
    error is raised again, to stay the 500 of a bug."""

    async def database_failure(connection: HTTPConnection, exc: Exception) -> JSONResponse | None:
        kind = classify(exc)
        if kind is None:
            raise exc
        if kind == "timeout":
            status, headers = 504, {}
            detail = "The database did not answer in time (LimitsConfig.statement_timeout)"
        else:
            status, headers = 503, {"Retry-After": str(retry_after)}
            detail = "The database is unavailable; retry later"
        logger.warning("capebase: %s %s answered %d: %s: %s", _method(connection),
                       connection.url.path, status, type(exc).__name__, str(exc)[:300])
        if isinstance(connection, WebSocket):
            if connection.client_state == WebSocketState.CONNECTING:
                await connection.accept()  # a close before accept would show only "403"
            await connection.close(code=TRY_AGAIN_LATER, reason=detail[:120])
            return None
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    return database_failure


def _method(connection: HTTPConnection) -> str:
    return str(connection.scope.get("method", "WS"))


def install_error_handlers(app: FastAPI, *, retry_after: int = 5) -> None:
    """Map PermissionDeniedError → 403 (401 when anonymous), NotFoundError → 404,
    QueryError → 400/422, in the user's routes as in the generated ones; and a database that
    is unreachable → 503 with ``Retry-After: retry_after``, a statement timeout → 504 (a
    WebSocket closes with 1013 for either)."""
    app.add_exception_handler(PermissionDeniedError, _permission_denied)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(QueryError, _bad_query)
    database_failure = _database_failure(retry_after)
    for error in (
        DatabaseUnavailableError,
        sa_exc.DBAPIError,  # OperationalError, InterfaceError, a dropped connection...
        sa_exc.TimeoutError,  # no pooled connection came free within pool_timeout
        ConnectionError,  # OSErrors of a refused or reset connection
        TimeoutError,
    ):
        app.add_exception_handler(error, database_failure)  # type: ignore[arg-type]
