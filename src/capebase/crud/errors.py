"""The one place capebase errors become HTTP responses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..errors import NotFoundError, PermissionDeniedError, QueryError
from ..observability.observer import count_http_denial


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


def install_error_handlers(app: FastAPI) -> None:
    """Map PermissionDeniedError → 403 (401 when anonymous), NotFoundError → 404,
    QueryError → 400/422, in the user's routes as in the generated ones."""
    app.add_exception_handler(PermissionDeniedError, _permission_denied)
    app.add_exception_handler(NotFoundError, _not_found)
    app.add_exception_handler(QueryError, _bad_query)
