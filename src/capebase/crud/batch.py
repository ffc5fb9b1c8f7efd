"""``POST /_capebase/batch``: creates, updates and deletes across published models in one
transaction, every operation or none.

The body is ``{"requests": [{"method": "POST", "url": "/todo", "body": {...}}, ...]}``. Each
operation names a route a model publishes (``POST /todo``, ``PATCH /todo/3``,
``DELETE /todo/3``) and is validated, checked and captured exactly as that route would be;
they run in order in one transaction (``writes.batch``), so a later operation sees what an
earlier one wrote. An operation that fails fails the batch with its own answer and its
index, and nothing is stored or logged.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.convertors import CONVERTOR_TYPES, Convertor
from starlette.routing import BaseRoute

from ..errors import BatchError, NotFoundError
from ..http.errors import constraint_failures_as_http
from ..identity.context import AuthContext
from ..wire.grammar import ExactDecimals
from ..writes.batch import WriteBatch, write_batch
from .bodies import check_batch_size, parsed_json, validated_item
from .bulk import write_at
from .inputs import create_values, require_create, route_key, update_changes
from .lean import AuthSolver, GeneratedRoute, LeanHandler, json_body, lean
from .published import PublishedModel
from .router import TEXT_KEY, _pk_path

if TYPE_CHECKING:
    from ..http.services import RouteServices

Method = Literal["POST", "PATCH", "DELETE"]
_ACTIONS: dict[Method, Literal["create", "update", "delete"]] = {
    "POST": "create", "PATCH": "update", "DELETE": "delete",
}
_STATUS = {"create": 201, "update": 200, "delete": 204}


class BatchOperation(BaseModel):
    """One write of a batch, as its own request would be sent."""

    model_config = ConfigDict(extra="forbid", strict=True)

    method: Method
    url: str = Field(description="A published item or collection path: `/todo`, `/todo/3` "
                     "(a key percent-encoded as in its own URL); no query string")
    body: dict[str, Any] | None = Field(
        None, description="The route's body: required for POST and PATCH, absent for DELETE"
    )


class BatchRequest(BaseModel):
    """The body of the batch route."""

    model_config = ConfigDict(extra="forbid", strict=True)

    requests: list[BatchOperation]


class BatchResult(BaseModel):
    """The answer of one operation: the status and body its own route would have sent."""

    status: int
    body: dict[str, Any] | None


class BatchResponse(BaseModel):
    """The batch's answer when every operation succeeded, in the order of ``requests``."""

    responses: list[BatchResult]


class BatchErrorBody(BaseModel):
    """A failed batch: the failing operation's own error and its index (422s carry the index
    in each error's ``loc`` instead)."""

    detail: Any
    index: int | None = None


@dataclass(frozen=True, slots=True)
class _Planned:
    index: int
    published: PublishedModel
    action: Literal["create", "update", "delete"]
    key: Any = None
    body: BaseModel | None = None


class BatchRoute:
    """The batch handler over the models ``published`` holds (read at each request, so a
    model published later is in reach)."""

    def __init__(self, services: RouteServices, published: Mapping[Any, PublishedModel]) -> None:
        self.services = services
        self.published = published
        self._exact: dict[type[BaseModel], ExactDecimals | None] = {}
        self._keys: dict[PublishedModel, tuple[TypeAdapter[Any], Convertor[Any]]] = {}

    async def run(self, ctx: AuthContext, body: bytes) -> Response:
        """Run the batch ``body`` as ``ctx``: 200 with each operation's answer, or the error
        of the first that failed (nothing written)."""
        parsed = parsed_json(body)
        requests = parsed.get("requests") if isinstance(parsed, dict) else None
        if isinstance(requests, list):
            check_batch_size(len(requests), self.services.limits.max_batch_size, "operations")
        try:
            operations = BatchRequest.model_validate(parsed).requests
        except ValidationError as exc:
            raise RequestValidationError([
                {**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)
            ]) from None
        # In order: the batch fails at its first invalid operation, before anything is written.
        plan = [self._validated(self._resolve(i, op), op) for i, op in enumerate(operations)]
        results: list[bytes] = []
        async with write_batch(self.services.policy, self.services.user_session, ctx) as batch:
            for step in plan:
                results.append(await write_at(
                    step.index, step.published.name, self._write(batch, ctx, step)
                ))
            with constraint_failures_as_http("The batch"):  # a constraint checked at commit
                await batch.commit()
        return Response(b'{"responses":[' + b",".join(results) + b"]}",
                        media_type="application/json")

    def _resolve(self, index: int, op: BatchOperation) -> _Planned:
        """The published route ``op`` names, and its key.

        Raises:
            BatchError: 400, no published route; 404 (``NotFoundError``), a key no row has.
        """
        url = op.url
        if not url.startswith("/") or "?" in url or "#" in url:
            raise BatchError(f"Operation {index}: url {url!r} must be a path such as /todo/3, "
                             "without a query string", index=index)
        path = unquote(url)
        action = _ACTIONS[op.method]
        for p in self.published.values():
            if path == p.path and action == "create":
                key_text = None
            elif path.startswith(f"{p.path}/") and action != "create":
                key_text = path[len(p.path) + 1:]
            else:
                continue
            if action not in p.routes:
                break
            if key_text is None:
                return _Planned(index, p, action)
            return _Planned(index, p, action, self._key(index, p, key_text))
        raise BatchError(f"Operation {index}: {op.method} {url} is not a route a published "
                         f"model offers", index=index)

    def _key(self, index: int, published: PublishedModel, text: str) -> Any:
        """The key ``text`` as its route's path convertor and parameter read it; 404 for a
        text that cannot be one."""
        python_type, convertor = self._key_readers(published)
        try:
            if not re.fullmatch(convertor.regex, text):
                raise ValueError(text)
            key = python_type.validate_python(convertor.convert(text))
            return route_key(published, key)
        except (ValueError, NotFoundError) as exc:
            cause = NotFoundError(published.name, text)
            raise BatchError(str(cause), index=index, cause=cause) from exc

    def _key_readers(self, published: PublishedModel) -> tuple[TypeAdapter[Any], Convertor[Any]]:
        readers = self._keys.get(published)
        if readers is None:
            python_type = _pk_path(published)[1]
            name = {int: "int", uuid.UUID: "uuid", str: TEXT_KEY}.get(python_type, "str")
            readers = self._keys[published] = (TypeAdapter(python_type), CONVERTOR_TYPES[name])
        return readers

    def _validated(self, step: _Planned, op: BatchOperation) -> _Planned:
        at = ("requests", step.index, "body")
        if step.action == "delete":
            if op.body is not None:
                raise RequestValidationError([{
                    "type": "extra_forbidden", "loc": ("body", *at),
                    "msg": "DELETE takes no body", "input": op.body,
                }])
            return step
        p = step.published
        schema = p.create_schema if step.action == "create" else p.update_schema
        if op.body is None:
            raise RequestValidationError([
                {"type": "missing", "loc": ("body", *at), "msg": "Field required", "input": None}
            ])
        if schema not in self._exact:
            self._exact[schema] = ExactDecimals.of(schema)
        body = validated_item(schema, self._exact[schema], op.body, at)
        return _Planned(step.index, p, step.action, step.key, body)

    async def _write(self, batch: WriteBatch, ctx: AuthContext, step: _Planned) -> bytes:
        """One operation, as its own route would run it; its answer as JSON."""
        p, at = step.published, ("requests", step.index, "body")
        status = _STATUS[step.action]
        image: dict[str, Any] | None = None
        try:
            if step.action == "create":
                require_create(p, self.services.policy, ctx)
                assert step.body is not None  # _validated set it
                image = await batch.create(p, create_values(p, step.body))
            elif step.action == "update":
                assert step.body is not None
                image = await batch.update(p, step.key, update_changes(p, step.body))
            else:
                await batch.delete(p, step.key)
        except RequestValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *at, *tuple(e["loc"])[1:])} for e in exc.errors()]
            ) from None
        row = b"null" if image is None else p.row_json.dump_json(image)
        return b'{"status":%d,"body":%s}' % (status, row)


def install_batch_route(
    app: FastAPI, services: RouteServices, published: Mapping[Any, PublishedModel]
) -> list[BaseRoute]:
    """Add the batch route at ``CrudConfig.batch_path`` (none if it is ``None``) to ``app``;
    the routes added, which the app keeps after its own."""
    path = services.crud.batch_path
    if path is None:
        return []
    before = len(app.router.routes)
    app.include_router(build_batch_router(services, published, path))
    return list(app.router.routes[before:])


def build_batch_router(
    services: RouteServices, published: Mapping[Any, PublishedModel], path: str
) -> APIRouter:
    """The APIRouter of the batch route at ``path``, over the models ``published`` holds."""
    route = BatchRoute(services, published)
    solver = AuthSolver(services.auth_dependency, services.auth_provider)

    async def batch(body: BatchRequest) -> Response:  # the signature is for OpenAPI only
        raise NotImplementedError  # never called: the lean handler below serves the route

    def factory(_route: APIRoute) -> LeanHandler:
        async def handle(request: Request) -> Response:
            ctx, background = await solver(request)
            response = await route.run(ctx, await json_body(request))
            response.background = background
            return response

        return handle

    router = APIRouter(tags=["batch"])
    router.add_api_route(
        path, lean(batch, factory), methods=["POST"], route_class_override=GeneratedRoute,
        response_model=BatchResponse, operation_id="capebase_batch",
        summary="Run several creates, updates and deletes, all or none",
        responses={
            code: {"model": BatchErrorBody, "description": description}
            for code, description in (
                (400, "An operation names no published route, or the body cannot be parsed"),
                (401, "An operation needs a signed-in caller"),
                (403, "An operation is denied by the policy"),
                (404, "An operation's row does not exist or is not readable by the caller"),
                (409, "An operation conflicts with stored data"),
                (413, "More than LimitsConfig.max_batch_size operations, or a body larger "
                 "than LimitsConfig.max_body_size"),
                (422, "Invalid input (each error's `loc` names the operation)"),
                (503, "The database is unavailable; retry after `Retry-After` seconds"),
                (504, "A statement ran past LimitsConfig.statement_timeout"),
            )
        },
    )
    return router
