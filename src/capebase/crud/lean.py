"""The route class of the generated endpoints: APIRoute, with a shorter request path for the
ones that need nothing from FastAPI but the caller (and a JSON body).

FastAPI solves every parameter of an endpoint on each request; for ``GET /todo/{id}`` and
``DELETE /todo/{id}`` that is the primary key, which the path convertor (``{id:int}``,
``{id:uuid}``) has already parsed, and the AuthContext. A lean handler solves only the auth
provider (with the app's dependency overrides) and calls the endpoint; matching, OpenAPI and
error handling stay FastAPI's.

Create and update take their body this way too, for exactness rather than speed: FastAPI
validates a decoded body in pydantic's Python mode, where ``0`` is a valid boolean and
``false`` a valid integer; ``body_handler`` validates the body's bytes in JSON mode against a
strict schema, which accepts the JSON types the published schema names and nothing else.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._compat.fastapi import (
    Dependant,
    bound_exit_stacks,
    get_dependant,
    request_exit_stack,
    request_params_to_args,
    solve_dependencies,
    validate_field,
)
from ..auth.provider import AuthProvider, accept_any_connection, checked_context
from ..http.errors import unreadable_body
from ..identity.context import AuthContext
from ..wire.grammar import ExactDecimals

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
    """Solves the caller's AuthContext for a request, as FastAPI would for an endpoint that
    depends on ``auth_dependency``.

    ``auth_dependency`` only checks what ``provider`` returns; solving the provider directly
    saves a level of FastAPI's dependency solving per request. When the app overrides
    ``auth_dependency`` itself (tests do), the override is solved instead.
    """

    def __init__(
        self,
        auth_dependency: Callable[..., Awaitable[AuthContext]],
        provider: AuthProvider,
    ) -> None:
        async def through_provider(ctx: Any = Depends(accept_any_connection(provider))) -> Any:
            return ctx

        async def through_dependency(ctx: AuthContext = Depends(auth_dependency)) -> Any:
            return ctx

        self._auth_dependency = auth_dependency
        self._provider = provider
        self._direct = get_dependant(path="", call=through_provider)
        self._overridden = get_dependant(path="", call=through_dependency)
        self._simple = _SimpleCall.of(self._direct.dependencies[0])

    async def __call__(self, request: Request) -> tuple[AuthContext, Any]:
        """The caller's AuthContext, and the background tasks its provider added."""
        app = request.scope.get("app")  # the app's overrides: tests override providers
        overrides = getattr(app, "dependency_overrides", {})
        if self._simple is not None and not overrides:
            return checked_context(self._provider, await self._simple(request)), None
        overridden = self._auth_dependency in overrides
        solved = await solve_dependencies(
            request=request,
            dependant=self._overridden if overridden else self._direct,
            async_exit_stack=request_exit_stack(request.scope),
            embed_body_fields=False,
            dependency_overrides_provider=app,
        )
        if solved.errors:
            raise RequestValidationError(solved.errors)
        return checked_context(self._provider, solved.values["ctx"]), solved.background_tasks


    async def before_response(self, request: Request) -> tuple[AuthContext, Any]:
        """As ``__call__``, for a route outside FastAPI's request handling (the streams):
        the provider's own dependencies are closed before the response starts, not when a
        stream ends hours later."""
        async with AsyncExitStack() as stack:
            with bound_exit_stacks(request.scope, stack):
                return await self(request)


class _SimpleCall:
    """A dependency that takes only the request and header, query or cookie values, called
    without FastAPI's general solver (which costs more than such a provider's own work).
    The values and their errors are FastAPI's: its fields validate them."""

    def __init__(self, dependant: Dependant) -> None:
        assert dependant.call is not None
        self._call = dependant.call
        self._is_async = inspect.iscoroutinefunction(dependant.call)
        self._sources = [
            (fields, source)
            for fields, source in (
                (dependant.header_params, "headers"),
                (dependant.query_params, "query_params"),
                (dependant.cookie_params, "cookies"),
            )
            if fields
        ]
        self._request_names = [
            name
            for name in (dependant.request_param_name, dependant.http_connection_param_name)
            if name is not None
        ]

    @classmethod
    def of(cls, dependant: Dependant) -> _SimpleCall | None:
        """The simple form of ``dependant``, or ``None`` if it needs the general solver."""
        call = dependant.call
        if (
            call is None
            or dependant.dependencies
            or dependant.path_params
            or dependant.body_params
            or dependant.websocket_param_name
            or dependant.response_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
            or getattr(dependant, "concurrency", None) is not None
            or inspect.isgeneratorfunction(call)
            or inspect.isasyncgenfunction(call)
            or not (inspect.isfunction(call) or inspect.ismethod(call))
        ):
            return None
        return cls(dependant)

    async def __call__(self, request: Request) -> Any:
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for fields, source in self._sources:
            found, problems = request_params_to_args(fields, getattr(request, source))
            values.update(found)
            errors.extend(problems)
        if errors:
            raise RequestValidationError(errors)
        for name in self._request_names:
            values[name] = request
        if self._is_async:
            return await self._call(**values)
        return await run_in_threadpool(self._call, **values)


def item_handler(solver: AuthSolver, method: Callable[..., Awaitable[Response]]) -> HandlerFactory:
    """The lean handler of an item route: ``method(ctx=..., request=..., <key>=...)``."""

    def factory(_route: APIRoute) -> LeanHandler:
        async def handle(request: Request) -> Response:
            ctx, background = await solver(request)
            response = await method(ctx=ctx, request=request, **request.path_params)
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
        # ModelField.default is computed on every read: read each once, not per request
        defaults = {field.name: field.default for field in fields}

        async def handle(request: Request) -> Response:
            ctx, background = await solver(request)
            values = _query_values(fields, defaults, request)
            response = await method(request=request, ctx=ctx, **values)
            if response.background is None:
                response.background = background
            return response

        return handle

    return factory


def item_query_handler(
    solver: AuthSolver, method: Callable[..., Awaitable[Response]]
) -> HandlerFactory:
    """The lean handler of an item route that takes query parameters too (get, with
    ``select``): ``method(ctx=..., request=..., <query parameters>..., <key>=...)``."""

    def factory(route: APIRoute) -> LeanHandler:
        fields = route.dependant.query_params
        # ModelField.default is computed on every read: read each once, not per request
        defaults = {field.name: field.default for field in fields}

        async def handle(request: Request) -> Response:
            ctx, background = await solver(request)
            values = _query_values(fields, defaults, request)
            response = await method(ctx=ctx, request=request, **values, **request.path_params)
            if response.background is None:
                response.background = background
            return response

        return handle

    return factory


def _query_values(
    fields: list[Any], defaults: dict[str, Any], request: Request
) -> dict[str, Any]:
    """The route's query parameters from ``request``, validated by their FastAPI fields.

    Raises:
        RequestValidationError: FastAPI's 422 for the values that do not validate.
    """
    query = request.query_params
    values: dict[str, Any] = {}
    errors: list[Any] = []
    for field in fields:
        if field.alias not in query:  # most are absent: `in` costs less than a failing get
            values[field.name] = defaults[field.name]  # immutable (None, 0, False)
            continue
        raw = query[field.alias]
        value, problems = validate_field(field, raw, values, ("query", field.alias))
        values[field.name] = value
        errors.extend(problems)
    if errors:
        raise RequestValidationError(errors)
    return values


def body_handler(
    solver: AuthSolver, method: Callable[..., Awaitable[Response]], schema: type[BaseModel]
) -> HandlerFactory:
    """The lean handler of a route taking a JSON body (create, update):
    ``method(body=..., ctx=..., request=..., <key>=...)``, the body an instance of ``schema``
    validated from its bytes in JSON mode (the schema is strict, see ``schemas``), its
    Decimal numbers from their exact text (``wire.ExactDecimals``). Errors have FastAPI's
    shape (``loc`` starts with "body")."""

    exact = ExactDecimals.of(schema)

    def factory(_route: APIRoute) -> LeanHandler:
        async def handle(request: Request) -> Response:
            ctx, background = await solver(request)
            body = await json_body(request)
            value = validated_body(schema, exact, body)
            response = await method(body=value, ctx=ctx, request=request, **request.path_params)
            if response.background is None:
                response.background = background
            return response

        return handle

    return factory


def validated_body(schema: type[BaseModel], exact: ExactDecimals | None, body: bytes) -> BaseModel:
    """``body`` (JSON text) as an instance of ``schema``, validated in JSON mode, its Decimal
    numbers from their exact text.

    Raises:
        RequestValidationError: FastAPI's 422, each error's ``loc`` starting with "body".
    """
    try:
        value = schema.model_validate_json(body)
        return value if exact is None else exact.apply(body, value)
    except ValidationError as exc:
        raise RequestValidationError(_body_errors(exc)) from None


def _body_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic's errors located in the body, as FastAPI reports them, their inputs as JSON
    can carry them: the input of a body that is no JSON is left out, as FastAPI leaves it (it
    may not even be text)."""
    errors = []
    for error in exc.errors(include_url=False):
        located: dict[str, Any] = {**error, "loc": ("body", *error["loc"])}
        if error["type"] == "json_invalid":
            located["input"] = {}
        elif "input" in error:
            located["input"] = _writable(error["input"])
        errors.append(located)
    return errors


def _writable(value: Any) -> Any:
    """``value`` with NaN and infinities as text, wherever they sit: JSON cannot carry them,
    and a number such as ``1e400`` parses as infinity (a "missing" error's input is the whole
    body)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _writable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_writable(item) for item in value]
    return value


async def json_body(request: Request) -> bytes:
    """The request's body, which must be JSON: a missing one, or one of another media type, is
    a 422 as FastAPI answers it; a body that cannot be read is a 400."""
    try:
        body = await request.body()
    except StarletteHTTPException:  # the body size limit (FastAPI's is a subclass)
        raise
    except Exception as exc:  # a client gone mid-body, for one
        raise unreadable_body() from exc
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    content_type = request.headers.get("content-type", "")
    media_type = content_type.partition(";")[0].strip().lower()
    if not (media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )):
        raise RequestValidationError([{
            "type": "content_type",
            "loc": ("body",),
            "msg": "The body must be JSON, sent with Content-Type: application/json",
            "input": content_type or None,
        }])
    return body
