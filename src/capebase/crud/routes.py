"""The route class of the generated endpoints: APIRoute, with a shorter request path for the
ones that need nothing from FastAPI but the caller.

FastAPI solves every parameter of an endpoint on each request; for ``GET /todo/{id}`` and
``DELETE /todo/{id}`` that is the primary key, which the path convertor (``{id:int}``,
``{id:uuid}``) has already parsed, and the AuthContext. A lean handler solves only the auth
provider (with the app's dependency overrides) and calls the endpoint; matching, OpenAPI and
error handling stay FastAPI's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.dependencies.utils import get_dependant, solve_dependencies
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from ..auth.context import AuthContext

LeanHandler = Callable[[Request], Awaitable[Response]]

_LEAN = "__capebase_lean_handler__"


class GeneratedRoute(APIRoute):
    """An APIRoute that serves an endpoint marked by ``lean`` with the marked handler."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler: LeanHandler | None = getattr(self.endpoint, _LEAN, None)
        return super().get_route_handler() if handler is None else handler


def lean(endpoint: Any, handler: LeanHandler) -> Any:
    """Mark ``endpoint`` to be served by ``handler`` when routed through ``GeneratedRoute``."""
    setattr(endpoint, _LEAN, handler)
    return endpoint


class AuthSolver:
    """Solves ``auth_dependency`` alone for a request, as FastAPI would for an endpoint."""

    def __init__(self, auth_dependency: Callable[..., Awaitable[AuthContext]]) -> None:
        async def caller(ctx: AuthContext = Depends(auth_dependency)) -> AuthContext:
            return ctx

        self._dependant = get_dependant(path="", call=caller)

    async def __call__(self, request: Request) -> tuple[AuthContext, Any]:
        """The caller's AuthContext, and the background tasks its provider added."""
        solved = await solve_dependencies(
            request=request,
            dependant=self._dependant,
            async_exit_stack=request.scope["fastapi_inner_astack"],
            embed_body_fields=False,
            # The app's overrides: tests override the provider this way.
            dependency_overrides_provider=request.scope.get("app"),
        )
        if solved.errors:
            raise RequestValidationError(solved.errors)
        return solved.values["ctx"], solved.background_tasks


def item_handler(
    solver: AuthSolver, method: Callable[..., Awaitable[Response]]
) -> LeanHandler:
    """The lean handler of an item route: ``method(ctx=..., <key>=...)``."""

    async def handle(request: Request) -> Response:
        ctx, background = await solver(request)
        response = await method(ctx=ctx, **request.path_params)
        if response.background is None:
            response.background = background
        return response

    return handle
