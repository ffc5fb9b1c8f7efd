"""``POST /todo`` with a JSON array: a bulk create, every row or none.

Each row is validated, filled and checked as ``POST /todo`` with that row alone would be, and
they are written in order in one transaction (``writes.batch``): a row that fails (403, 409,
...) fails the request with its index, and nothing is stored or logged. An object body takes
the single create unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from ..errors import BatchError
from ..http.errors import constraint_failures_as_http
from ..identity.context import AuthContext
from ..wire.grammar import ExactDecimals
from ..writes.batch import write_batch
from .bodies import check_batch_size, is_json_array, parsed_json, relocated, validated_item
from .inputs import create_values, require_create
from .lean import AuthSolver, HandlerFactory, LeanHandler, json_body, validated_body
from .published import PublishedModel

if TYPE_CHECKING:
    from ..http.services import RouteServices

T = TypeVar("T")


class _OneOf:
    """A union's JSON schema as ``oneOf`` (its members exclude each other: an object or an
    array) rather than pydantic's ``anyOf``."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if "anyOf" in schema:
            schema["oneOf"] = schema.pop("anyOf")
        return schema


def one_or_many(schema: type[BaseModel]) -> Any:
    """The annotation of a body (or response) that is one ``schema`` or an array of them."""
    return Annotated[schema | list[schema], _OneOf()]  # type: ignore[valid-type]


def create_handler(
    solver: AuthSolver,
    services: RouteServices,
    published: PublishedModel,
    single: Callable[..., Awaitable[Response]],
) -> HandlerFactory:
    """The lean handler of ``POST /todo``: an object body is ``single(body=..., ctx=...)``
    (``lean.body_handler``'s validation), an array a bulk create."""
    schema = published.create_schema
    exact = ExactDecimals.of(schema)

    def factory(_route: APIRoute) -> LeanHandler:
        async def handle(request: Request) -> Response:
            ctx, background = await solver(request)
            body = await json_body(request)
            if is_json_array(body):
                response = await bulk_create(services, published, exact, ctx, body)
            else:
                response = await single(body=validated_body(schema, exact, body), ctx=ctx)
            if response.background is None:
                response.background = background
            return response

        return handle

    return factory


async def bulk_create(
    services: RouteServices,
    published: PublishedModel,
    exact: ExactDecimals | None,
    ctx: AuthContext,
    body: bytes,
) -> Response:
    """Create a row from each item of the array ``body``, all or none; 201 with the rows as
    stored, in order.

    Raises:
        RequestValidationError: 422, every invalid row's errors (``loc`` ``("body", i, ...)``).
        BatchError: too many rows (413), or the row ``index`` failed (its own answer).
        PermissionDeniedError: the caller may create no row at all.
    """
    p = published
    items = parsed_json(body)
    check_batch_size(len(items), services.limits.max_batch_size, "rows")
    rows = each_valid(
        lambda i: validated_item(p.create_schema, exact, items[i], (i,)), len(items)
    )
    require_create(p, services.policy, ctx)
    values = each_valid(lambda i: _at(i, lambda: create_values(p, rows[i])), len(rows))
    images = []
    async with write_batch(services.policy, services.user_session, ctx) as batch:
        for index, row in enumerate(values):
            images.append(await write_at(index, p.name, batch.create(p, row)))
        with constraint_failures_as_http(p.name):  # a constraint checked at commit
            await batch.commit()
    return Response(p.rows_json.dump_json(images), media_type="application/json",
                    status_code=201)


def each_valid(validate: Callable[[int], T], count: int) -> list[T]:
    """``validate(i)`` for each ``i < count``.

    Raises:
        RequestValidationError: the errors of every ``i`` that failed, together.
    """
    results: list[T] = []
    errors: list[Any] = []
    for index in range(count):
        try:
            results.append(validate(index))
        except RequestValidationError as exc:
            errors.extend(exc.errors())
    if errors:
        raise RequestValidationError(errors)
    return results


def _at(index: int, prepare: Callable[[], T]) -> T:
    try:
        return prepare()
    except RequestValidationError as exc:
        raise relocated(exc, (index,)) from None


async def write_at(index: int, model: str, write: Awaitable[T]) -> T:
    """Await ``write``, the write of row or operation ``index``.

    Raises:
        BatchError: ``write`` failed; its error is the ``cause`` (a constraint failure as
            ``constraint_failures_as_http`` answers it).
    """
    try:
        with constraint_failures_as_http(model):
            return await write
    except RequestValidationError:
        raise  # located by the caller: its loc names the row
    except Exception as exc:
        raise BatchError(f"{model}: item {index} failed: {exc}", index=index, cause=exc) from exc
