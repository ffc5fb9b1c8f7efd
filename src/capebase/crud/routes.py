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
HandlerFactory = Callable[[APIRoute], LeanHandler]

_LEAN = "__capebase_lean_handler__"


class GeneratedRoute(APIRoute):
    """An APIRoute that serves an endpoint marked by ``lean`` with the marked handler."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        factory: HandlerFactory | None = getattr(self.endpoint, _LEAN, None)
        return super().get_route_handler() if factory is None else factory(self)


def lean(endpoint: Any, factory: HandlerFactory) -> Any:
    """Mark ``endpoint`` to be served by ``factory(route)`` when routed by ``GeneratedRoute``."""
    setattr(endpoint, _LEAN, factory)
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


def item_handler(solver: AuthSolver, method: Callable[..., Awaitable[Response]]) -> HandlerFactory:
    """The lean handler of an item route: ``method(ctx=..., <key>=...)``."""

    def factory(_route: APIRoute) -> LeanHandler:
        async def handle(request: Request) -> Response:
            ctx, background = await solver(request)
            response = await method(ctx=ctx, **request.path_params)
            if response.background is None:
                response.background = background
            return response

        return handle

    return factory


def query_handler(
    solver: AuthSolver, method: Callable[..., Awaitable[Response]]
) -> HandlerFactory:
    """The lean handler of a route taking the request, the AuthContext and query parameters
    (the list): ``method(request=..., ctx=..., <query parameters>...)``, the parameters
    validated by the route's own fields, so values and errors are FastAPI's."""

    def factory(route: APIRoute) -> LeanHandler:
        fields = route.dependant.query_params

        async def handle(request: Request) -> Response:
            ctx, background = await solver(request)
            query = request.query_params
            values: dict[str, Any] = {}
            errors: list[Any] = []
            for field in fields:
                raw = query.get(field.alias)
                if raw is None:
                    values[field.name] = field.default  # immutable defaults (None, 0, False)
                    continue
                value, problems = field.validate(raw, values, loc=("query", field.alias))
                values[field.name] = value
                errors.extend(problems)
            if errors:
                raise RequestValidationError(errors)
            response = await method(request=request, ctx=ctx, **values)
            if response.background is None:
                response.background = background
            return response

        return handle

    return factory
