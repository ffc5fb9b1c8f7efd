"""Generation of the REST routes of one published model."""

from __future__ import annotations

import inspect as pyinspect
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel, create_model
from starlette.convertors import Convertor, register_url_convertor

from ..identity.context import AuthContext
from ..wire.values import storage_type
from .bulk import create_handler, one_or_many
from .handlers import Handlers
from .lean import (
    AuthSolver,
    GeneratedRoute,
    HandlerFactory,
    body_handler,
    item_handler,
    item_query_handler,
    lean,
    query_handler,
)
from .openapi import (
    GROUP_PARAMETERS,
    LIST_HEADERS,
    error_content,
    list_parameters,
    stream_parameters,
)
from .published import PublishedModel

if TYPE_CHECKING:
    from ..http.services import RouteServices

logger = logging.getLogger("capebase")

class ErrorBody(BaseModel):
    """The body of every error response: ``{"detail": ...}``."""

    detail: Any


class InvalidInputBody(BaseModel):
    """The body of a 422: FastAPI's list of field errors (body, path or query parameters), or
    one message (a filter value, a resume token, a limit)."""

    detail: list[dict[str, Any]] | str


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Authentication required"},
    403: {"model": ErrorBody, "description": "Permission denied"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Not found, or not readable by the caller"}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The row conflicts with stored data"}
}
_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body cannot be parsed"},
    413: {"model": ErrorBody, "description": "Request body too large (LimitsConfig.max_body_size)"},
}
_DATABASE: dict[int | str, dict[str, Any]] = {
    422: {"model": InvalidInputBody, "description": "Invalid input"},
    503: {"model": ErrorBody, "description": "The database is unavailable; retry after "
          "`Retry-After` seconds"},
    504: {"model": ErrorBody, "description": "A statement ran past LimitsConfig.statement_timeout"},
}


_ETAG = {"ETag": {"description": "The row's version: send it in If-Match to update or "
                  "delete only that version, in If-None-Match to get 304 while it holds",
                  "schema": {"type": "string"}}}
_PRECONDITION: dict[int | str, dict[str, Any]] = {
    412: {"model": ErrorBody, "description": "The row changed since the ETag sent in If-Match "
          "(or matches If-None-Match)"},
}


def _condition_headers(*names: str) -> dict[str, Any]:
    """The conditional request headers an item route reads, for OpenAPI (``openapi_extra``:
    the endpoints read them from the request on both paths)."""
    described = {
        "If-Match": "Only if the row's ETag is one of these (`*`: any version)",
        "If-None-Match": "Only if the row's ETag is none of these (`*`: no version)",
    }
    return {"parameters": [
        {"name": name, "in": "header", "required": False, "description": described[name],
         "schema": {"type": "string"}}
        for name in names
    ]}


def _pk_path(published: PublishedModel) -> tuple[str, Any]:
    """The item path and the Python type of its key; typed convertors keep ``/todo/filter``
    from ever matching ``/todo/{id}`` when the key is an int or UUID."""
    try:
        # storage_type: SQLModel's str columns are TypeDecorators, whose python_type is object
        python_type = storage_type(published.pk.type).python_type
    except NotImplementedError:
        python_type = str
    key = published.pk.key
    if python_type is int:
        return f"{published.path}/{{{key}:int}}", int
    if python_type is uuid.UUID:
        return f"{published.path}/{{{key}:uuid}}", uuid.UUID
    if python_type is str:
        return f"{published.path}/{{{key}:{TEXT_KEY}}}", str
    return f"{published.path}/{{{key}}}", python_type


class _TextKeyConvertor(Convertor[str]):
    """A text primary key in a path: any non-empty text, ``/`` included (sent as ``%2F``,
    which the server decodes before routing), so every stored key has a URL."""

    regex = "(?s:.+)"  # a newline too

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


TEXT_KEY = "capebase_text_key"
"""The path convertor of text primary keys (a Starlette convertor name, so global)."""
register_url_convertor(TEXT_KEY, _TextKeyConvertor())


def _with_signature(method: Callable[..., Any], params: list[pyinspect.Parameter]) -> Any:
    """An endpoint calling ``method`` whose signature FastAPI reads as ``params``; this is how
    the primary key's name and type, and the body schema, are chosen per model."""

    async def endpoint(**kwargs: Any) -> Any:
        return await method(**kwargs)

    endpoint.__signature__ = pyinspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = method.__name__
    return endpoint


def _select_param() -> pyinspect.Parameter:
    return pyinspect.Parameter(
        "selection", pyinspect.Parameter.KEYWORD_ONLY, annotation=str | None,
        default=Query(None, alias="select",
                      description="Comma-separated fields to return (default: all)"),
    )


def _expand_param() -> pyinspect.Parameter:
    return pyinspect.Parameter(
        "expand", pyinspect.Parameter.KEYWORD_ONLY, annotation=str | None,
        default=Query(None, description="Comma-separated relations to include: `project` "
                      "(a row or null), `comments` or `comments(limit=5)` (a list per row)"),
    )


def build_router(services: RouteServices, published: PublishedModel) -> APIRouter:
    """The APIRouter with the routes ``published.routes`` asks for."""
    router = APIRouter(tags=[published.table.name])
    name = published.table.name
    auth = Depends(services.auth_dependency)
    ctx_param = pyinspect.Parameter("ctx", pyinspect.Parameter.KEYWORD_ONLY,
                                    annotation=AuthContext, default=auth)
    item_path, pk_type = _pk_path(published)
    pk_param = pyinspect.Parameter(published.pk.key, pyinspect.Parameter.KEYWORD_ONLY,
                                   annotation=pk_type, default=Path())
    handlers = Handlers(services, published)
    request_param = pyinspect.Parameter("request", pyinspect.Parameter.KEYWORD_ONLY,
                                        annotation=Request)
    solver = AuthSolver(services.auth_dependency, services.auth_provider)

    def fast(endpoint: Any, handler: HandlerFactory) -> Any:
        # Only the caller solved per request; off, FastAPI solves every parameter. Bodies
        # always take body_handler, for their exactness (JSON-mode strict validation).
        return lean(endpoint, handler) if services.crud.fast_path else endpoint

    if "subscribe" in published.routes:
        # Declared before the item routes so /todo/subscribe never reads as /todo/{id}.
        from ..http.streams.messages import stream_message
        from ..http.streams.sse import StreamRoute, sse_endpoint
        from ..http.streams.websocket import websocket_endpoint

        endpoint = sse_endpoint(services, published, solver, stream_message(published))
        router.add_api_route(
            f"{published.path}/subscribe", endpoint,
            methods=["GET"], route_class_override=StreamRoute,
            operation_id=f"subscribe_{name}", summary=f"Stream {name} changes (SSE)",
            description=(
                f"Server-Sent Events: each change of a {name} row the caller may read, as "
                f"`{published.name}StreamMessage` JSON in `data:`, its resume token in `id:`. "
                f"`WS {published.path}/subscribe` takes the same query parameters and sends "
                "the same JSON as text messages, each change with its `resume` token, and "
                '`{"event": "heartbeat"}` on a quiet stream.'
            ),
            response_class=EventSourceResponse,
            response_description="The stream's events (`id:` is the resume token)",
            openapi_extra={"parameters": stream_parameters(published)},
            # The errors are JSON, not events: content given, not a model (which would be
            # declared with the route's media type).
            responses={
                400: error_content(ErrorBody, "Unknown filter or select field or operator, "
                                   "or a malformed or too large filter group"),
                429: error_content(ErrorBody, "Too many subscriptions"),
                **{status: error_content(body["model"], body["description"])
                   for status, body in _DATABASE.items()},
            },
        )
        router.add_api_websocket_route(f"{published.path}/subscribe",
                                       websocket_endpoint(services, published))

    if "list" in published.routes:
        config = services.crud
        list_params = [
            pyinspect.Parameter("request", pyinspect.Parameter.KEYWORD_ONLY, annotation=Request),
            ctx_param,
            pyinspect.Parameter("limit", pyinspect.Parameter.KEYWORD_ONLY, annotation=int | None,
                                default=Query(None, ge=0, le=config.max_page_size,
                                              description="Page size (default "
                                              f"{config.default_page_size})")),
            pyinspect.Parameter("offset", pyinspect.Parameter.KEYWORD_ONLY, annotation=int,
                                # A 64-bit OFFSET on every database; larger is a 422.
                                default=Query(0, ge=0, le=2**63 - 1,
                                              description="Rows to skip (`after` pages "
                                              "stably while rows are inserted)")),
            pyinspect.Parameter("order_by", pyinspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                                default=Query(None, description="Comma-separated fields, "
                                              "'-' for descending")),
            pyinspect.Parameter("count", pyinspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                default=Query(False, description="Add the X-Total-Count header")),
        ]
        list_params.append(_select_param())
        list_params.extend([
            pyinspect.Parameter("after", pyinspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                                default=Query(None, description="The page after this cursor "
                                              "(from the Link header of the previous page)")),
            pyinspect.Parameter("envelope", pyinspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                default=Query(False, description='Answer {"items": [...], '
                                              '"next": cursor or null}')),
            _expand_param(),
        ])
        list_params.extend(
            pyinspect.Parameter(
                name.replace(".", "_") + "_", pyinspect.Parameter.KEYWORD_ONLY,
                annotation=str | None, default=Query(None, alias=name, description=description),
            )
            for name, description in GROUP_PARAMETERS
        )
        endpoint = fast(_with_signature(handlers.list_rows, list_params),
                        query_handler(solver, handlers.list_rows))
        router.add_api_route(
            published.path, endpoint, methods=["GET"], route_class_override=GeneratedRoute,
            # an array, or with envelope=true an object with the array and the next cursor
            response_model=list[published.read_schema] | create_model(  # type: ignore[name-defined]
                f"{published.model.__name__}Page",
                items=(list[published.read_schema], ...),  # type: ignore[name-defined]
                next=(str | None, ...),
            ),
            operation_id=f"list_{name}", summary=f"List {name}",
            openapi_extra={"parameters": list_parameters(published)},
            description=(
                "Filter with `?field=value` or `?field__op=value`, each a query parameter "
                "typed by its field. Combine conditions with `or=(a__eq=1,b__gt=2)`, "
                "`and=(...)`, `not.or=(...)`, `not.and=(...)`, nested as "
                "`or=(a__eq=1,and(b__gt=2,c__lt=3))`."
            ),
            responses={
                200: {"description": "The rows", "headers": LIST_HEADERS},
                400: {"model": ErrorBody,
                      "description": "Unknown filter or select field or operator, a "
                      "malformed or too large filter group, or an invalid cursor"},
                **_DATABASE,
            },
        )
    if "get" in published.routes:
        endpoint = fast(
            _with_signature(handlers.get_row,
                            [pk_param, ctx_param, _select_param(), request_param,
                             _expand_param()]),
            item_query_handler(solver, handlers.get_row),
        )
        router.add_api_route(
            item_path, endpoint, methods=["GET"], route_class_override=GeneratedRoute,
            response_model=published.read_schema, operation_id=f"get_{name}",
            summary=f"Get one {name}",
            openapi_extra=_condition_headers("If-Match", "If-None-Match"),
            responses={
                200: {"description": "The row", "headers": _ETAG},
                304: {"description": "The row's ETag matches If-None-Match", "headers": _ETAG},
                400: {"model": ErrorBody, "description": "Unknown select field, or a "
                      "malformed If-Match or If-None-Match"},
                **_NOT_FOUND, **_PRECONDITION, **_DATABASE,
            },
        )
    if "create" in published.routes:
        # One row, or an array of them created all or none (crud.bulk).
        body = pyinspect.Parameter("body", pyinspect.Parameter.KEYWORD_ONLY,
                                   annotation=one_or_many(published.create_schema))
        endpoint = lean(_with_signature(handlers.create_row, [body, ctx_param]),
                        create_handler(solver, services, published, handlers.create_row))
        router.add_api_route(
            published.path, endpoint, route_class_override=GeneratedRoute,
            methods=["POST"], status_code=201,
            response_model=one_or_many(published.read_schema),
            operation_id=f"create_{name}", summary=f"Create a {name}, or several",
            description=(
                "A JSON object creates one row; a JSON array creates each of its rows, all or "
                "none, and answers them in order (at most LimitsConfig.max_batch_size rows, "
                "413 above it). An error of one row carries its index: in `loc` for a 422, as "
                "`index` otherwise."
            ),
            responses={201: {"description": "The row as stored (one row: with its ETag)",
                             "headers": _ETAG},
                       **_ERRORS, **_CONFLICT, **_BODY, **_DATABASE},
        )
    if "update" in published.routes:
        body = pyinspect.Parameter("body", pyinspect.Parameter.KEYWORD_ONLY,
                                   annotation=published.update_schema)
        endpoint = lean(_with_signature(handlers.update_row,
                                        [pk_param, body, ctx_param, request_param]),
                        body_handler(solver, handlers.update_row, published.update_schema))
        router.add_api_route(
            item_path, endpoint, route_class_override=GeneratedRoute,
            methods=["PATCH"], response_model=published.read_schema,
            operation_id=f"update_{name}", summary=f"Update a {name}",
            openapi_extra=_condition_headers("If-Match", "If-None-Match"),
            responses={200: {"description": "The row as stored", "headers": _ETAG},
                       **_ERRORS, **_NOT_FOUND, **_CONFLICT, **_PRECONDITION, **_BODY,
                       **_DATABASE},
        )
    if "delete" in published.routes:
        endpoint = fast(_with_signature(handlers.delete_row, [pk_param, ctx_param, request_param]),
                        item_handler(solver, handlers.delete_row))
        router.add_api_route(
            item_path, endpoint, route_class_override=GeneratedRoute,
            methods=["DELETE"], status_code=204, response_class=Response,
            operation_id=f"delete_{name}", summary=f"Delete a {name}",
            openapi_extra=_condition_headers("If-Match", "If-None-Match"),
            responses={400: {"model": ErrorBody,
                             "description": "A malformed If-Match or If-None-Match"},
                       **_ERRORS, **_NOT_FOUND, **_PRECONDITION, **_DATABASE},
        )
    return router


