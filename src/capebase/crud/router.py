"""Generation of the REST routes of one published model."""

from __future__ import annotations

import inspect as pyinspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Container, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter
from sqlalchemy import Column, Table, bindparam, func, select
from sqlalchemy.exc import DataError, IntegrityError
from starlette.convertors import Convertor, register_url_convertor

from ..auth.context import AuthContext
from ..auth.fields import server_values
from ..db.mapping import require_plain_columns
from ..db.sessions import INTERNAL
from ..errors import ConfigurationError, NotATableError, NotFoundError, PermissionDeniedError
from ..http.errors import constraint_failures_as_http
from ..limits import check_filter_count
from ..observability.secret_fields import secret_keys
from ..policy.enforcement import check_in_database, row_image
from ..policy.sqlexpr import equals
from .declarations import annotation_problem, declaration_problem, schema_field_problem
from .direct_writes import KEY, DirectWriter, Undecided
from .query import (
    RESERVED,
    STREAM_PARAMETERS,
    FilterField,
    filter_fields,
    parse_filters,
    parse_order_by,
)
from .routes import (
    AuthSolver,
    GeneratedRoute,
    body_handler,
    item_handler,
    lean,
    query_handler,
)
from .schemas import (
    create_schema_for,
    input_schema,
    read_schema_for,
    row_type,
    update_schema_for,
)
from .server_fields import ServerFields, refusing, schema_warnings, server_fields
from .structured import json_safe
from .values import ValueChecks, integer_range, storage_type, text_problem, unserved_problem

if TYPE_CHECKING:
    from ..app import CapeBase

logger = logging.getLogger("capebase")

RouteName = Literal["list", "get", "create", "update", "delete", "subscribe"]
ROUTE_NAMES: tuple[RouteName, ...] = get_args(RouteName)


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


@dataclass(frozen=True, eq=False)
class PublishedModel:
    """Everything computed once when a model is published; requests only read it."""

    model: type[Any]
    table: Table
    path: str
    routes: frozenset[RouteName]
    pk: Column[Any]
    create_schema: type[BaseModel]
    update_schema: type[BaseModel]
    read_schema: type[BaseModel]
    row_json: TypeAdapter[Any]
    rows_json: TypeAdapter[Any]
    fields: dict[str, FilterField]
    value_checks: ValueChecks
    key_range: tuple[int, int] | None
    server_set: ServerFields

    @property
    def name(self) -> str:
        """The model's class name, used in messages."""
        return self.model.__name__


QUERY_PARAMETERS = RESERVED | STREAM_PARAMETERS
"""Query parameters the list and stream routes read for themselves, never as filters."""


def describe_model(
    model: type[Any],
    routes: Sequence[str] | None,
    create_schema: type[BaseModel] | None,
    update_schema: type[BaseModel] | None,
    *,
    dialect: str = "",
) -> PublishedModel:
    """Validate a ``publish`` call and precompute schemas, serializers and filters
    (``dialect``: the database's, for the types it stores differently).

    Raises:
        ConfigurationError: not a table model, composite primary key, unknown route name, a
            column type the routes cannot serve exactly, a field annotation its column does
            not store exactly, a user schema changing a column's field type.
    """
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise NotATableError(
            f"Cannot publish {getattr(model, '__name__', model)!r}: it is not a table model "
            "(declare it with `class X(SQLModel, table=True)`)"
        )
    require_plain_columns(model, "publish")
    pk_columns = list(table.primary_key.columns)
    if len(pk_columns) != 1:
        raise ConfigurationError(
            f"Cannot publish {model.__name__}: generated routes need exactly one primary-key "
            f"column, it has {len(pk_columns)}"
        )
    for column in table.c:
        if column.key in QUERY_PARAMETERS or "__" in column.key:
            raise ConfigurationError(
                f"Cannot publish {model.__name__}: field {column.key!r} cannot be filtered as "
                f"?{column.key}=... (names the routes read for themselves: "
                f"{', '.join(sorted(QUERY_PARAMETERS))}; and '__' separates a field from its "
                "operator); rename the field"
            )
        field = getattr(model, "model_fields", {}).get(column.key)
        problem = (
            unserved_problem(column, dialect)
            or declaration_problem(column.type)
            or (annotation_problem(field.annotation, column.type) if field else None)
        )
        if problem is not None:
            raise ConfigurationError(
                f"Cannot publish {model.__name__}: field {column.key!r} ({column.type!r}) "
                f"cannot be served: {problem}"
            )
    chosen = list(ROUTE_NAMES) if routes is None else list(routes)
    unknown = [r for r in chosen if r not in ROUTE_NAMES]
    if unknown:
        raise ConfigurationError(
            f"Unknown route {unknown[0]!r} for {model.__name__}; "
            f"choose from {', '.join(ROUTE_NAMES)}"
        )
    row = row_type(model)
    server = server_fields(model)
    columns = table.c.keys()
    for schema, refused, route in (
        (create_schema, server.on_create, "create"),
        (update_schema, server.on_update, "update"),
    ):
        if schema is not None:
            _check_schema(model, schema, refused, route)
        for warning in schema_warnings(schema, refused, columns, route) if schema else ():
            logger.warning("capebase: %s", warning)
    return PublishedModel(
        model=model,
        table=table,
        path=f"/{table.name}",
        routes=frozenset(chosen),  # type: ignore[arg-type]  # validated above
        pk=pk_columns[0],
        create_schema=refusing(
            input_schema(create_schema, model, dialect) if create_schema
            else create_schema_for(model, dialect),
            server.on_create,
        ),
        update_schema=refusing(
            input_schema(update_schema, model, dialect) if update_schema
            else update_schema_for(model, dialect),
            server.on_update,
        ),
        server_set=server,
        read_schema=read_schema_for(model, dialect),
        row_json=TypeAdapter(row),
        rows_json=TypeAdapter(list[row]),  # type: ignore[valid-type]
        # Secret columns can be neither filtered nor sorted on: either would reveal their values.
        fields={k: f for k, f in filter_fields(table).items() if k not in secret_keys(table)},
        value_checks=ValueChecks(table, dialect),
        key_range=integer_range(pk_columns[0].type),
    )


def _check_schema(
    model: type[Any], schema: type[BaseModel], refused: Container[str], route: str
) -> None:
    """Refuse a user's schema whose field for a column is not what the column stores: its
    values would be changed or fail in the database (``declarations``).

    Raises:
        ConfigurationError: naming the schema, the field and the annotations.
    """
    table = model.__table__
    for name, info in schema.model_fields.items():
        field = getattr(model, "model_fields", {}).get(name)
        if name not in table.c or name in refused or field is None:  # ignored, or a 422
            continue
        column = table.c[name]
        problem = annotation_problem(info.annotation, column.type) or schema_field_problem(
            info.annotation, field.annotation
        )
        if problem is not None:
            raise ConfigurationError(
                f"Cannot publish {model.__name__} with {route}_schema={schema.__name__}: "
                f"field {name!r} ({column.type!r}) cannot be served: {problem}"
            )


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


def build_router(cape: CapeBase, published: PublishedModel) -> APIRouter:
    """The APIRouter with the routes ``published.routes`` asks for."""
    router = APIRouter(tags=[published.table.name])
    name = published.table.name
    auth = Depends(cape.auth_dependency)
    ctx_param = pyinspect.Parameter("ctx", pyinspect.Parameter.KEYWORD_ONLY,
                                    annotation=AuthContext, default=auth)
    item_path, pk_type = _pk_path(published)
    pk_param = pyinspect.Parameter(published.pk.key, pyinspect.Parameter.KEYWORD_ONLY,
                                   annotation=pk_type, default=Path())
    handlers = _Handlers(cape, published)
    solver = AuthSolver(cape.auth_dependency, cape.auth_provider)

    if "subscribe" in published.routes:
        # Declared before the item routes so /todo/subscribe never reads as /todo/{id}.
        from ..realtime.transports.sse import sse_endpoint, sse_route
        from ..realtime.transports.websocket import websocket_endpoint

        # The Starlette route serves the stream; the API route after it (never reached)
        # documents it in OpenAPI.
        router.routes.append(sse_route(cape, published, f"{published.path}/subscribe", solver))
        router.add_api_route(
            f"{published.path}/subscribe", sse_endpoint(cape, published), methods=["GET"],
            operation_id=f"subscribe_{name}", summary=f"Stream {name} changes (SSE)",
            response_class=Response,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-Sent Events; `id:` is the change id"},
                       400: {"model": ErrorBody, "description": "Unknown filter"},
                       429: {"model": ErrorBody, "description": "Too many subscriptions"},
                       **_DATABASE},
        )
        router.add_api_websocket_route(f"{published.path}/subscribe",
                                       websocket_endpoint(cape, published))

    if "list" in published.routes:
        config = cape.crud_config
        list_params = [
            pyinspect.Parameter("request", pyinspect.Parameter.KEYWORD_ONLY, annotation=Request),
            ctx_param,
            pyinspect.Parameter("limit", pyinspect.Parameter.KEYWORD_ONLY, annotation=int | None,
                                default=Query(None, ge=0, le=config.max_page_size,
                                              description="Page size (default "
                                              f"{config.default_page_size})")),
            pyinspect.Parameter("offset", pyinspect.Parameter.KEYWORD_ONLY, annotation=int,
                                # A 64-bit OFFSET on every database; larger is a 422.
                                default=Query(0, ge=0, le=2**63 - 1)),
            pyinspect.Parameter("order_by", pyinspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                                default=Query(None, description="Comma-separated fields, "
                                              "'-' for descending")),
            pyinspect.Parameter("count", pyinspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                default=Query(False, description="Add the X-Total-Count header")),
        ]
        endpoint = lean(_with_signature(handlers.list_rows, list_params),
                        query_handler(solver, handlers.list_rows))
        router.add_api_route(
            published.path, endpoint, methods=["GET"], route_class_override=GeneratedRoute,
            response_model=list[published.read_schema],  # type: ignore[name-defined]
            operation_id=f"list_{name}", summary=f"List {name}",
            description=(
                "Filter with `?field=value` or `?field__op=value`, op in "
                "ne, gt, gte, lt, lte, in, nin, like, ilike, contains, icontains, startswith, "
                f"isnull. Fields: {', '.join(published.fields)}."
            ),
            responses={
                400: {"model": ErrorBody, "description": "Unknown filter field or operator"},
                **_DATABASE,
            },
        )
    if "get" in published.routes:
        endpoint = lean(_with_signature(handlers.get_row, [pk_param, ctx_param]),
                        item_handler(solver, handlers.get_row))
        router.add_api_route(
            item_path, endpoint, methods=["GET"], route_class_override=GeneratedRoute,
            response_model=published.read_schema, operation_id=f"get_{name}",
            summary=f"Get one {name}", responses={**_NOT_FOUND, **_DATABASE},
        )
    if "create" in published.routes:
        body = pyinspect.Parameter("body", pyinspect.Parameter.KEYWORD_ONLY,
                                   annotation=published.create_schema)
        endpoint = lean(_with_signature(handlers.create_row, [body, ctx_param]),
                        body_handler(solver, handlers.create_row, published.create_schema))
        router.add_api_route(
            published.path, endpoint, route_class_override=GeneratedRoute,
            methods=["POST"], status_code=201, response_model=published.read_schema,
            operation_id=f"create_{name}", summary=f"Create a {name}",
            responses={**_ERRORS, **_CONFLICT, **_BODY, **_DATABASE},
        )
    if "update" in published.routes:
        body = pyinspect.Parameter("body", pyinspect.Parameter.KEYWORD_ONLY,
                                   annotation=published.update_schema)
        endpoint = lean(_with_signature(handlers.update_row, [pk_param, body, ctx_param]),
                        body_handler(solver, handlers.update_row, published.update_schema))
        router.add_api_route(
            item_path, endpoint, route_class_override=GeneratedRoute,
            methods=["PATCH"], response_model=published.read_schema,
            operation_id=f"update_{name}", summary=f"Update a {name}",
            responses={**_ERRORS, **_NOT_FOUND, **_CONFLICT, **_BODY, **_DATABASE},
        )
    if "delete" in published.routes:
        endpoint = lean(_with_signature(handlers.delete_row, [pk_param, ctx_param]),
                        item_handler(solver, handlers.delete_row))
        router.add_api_route(
            item_path, endpoint, route_class_override=GeneratedRoute,
            methods=["DELETE"], status_code=204, response_class=Response,
            operation_id=f"delete_{name}", summary=f"Delete a {name}",
            responses={**_ERRORS, **_NOT_FOUND, **_DATABASE},
        )
    return router


class _Handlers:
    """The endpoint functions of one published model."""

    def __init__(self, cape: CapeBase, published: PublishedModel) -> None:
        self.cape = cape
        self.published = published
        self.select_all = select(published.table)
        # Built once, so SQLAlchemy's cache key for it is computed once too.
        self.select_by_key = self.select_all.where(
            equals(published.pk, bindparam(KEY, type_=published.pk.type))
        )
        if cape.direct is not None:
            cape.direct.prebuilt(self.select_by_key)
        self.columns = tuple(published.table.c.keys())
        self.dialect = cape.engine.dialect.name
        self.writer = (
            DirectWriter(cape, published, cape.direct)
            if cape.direct is not None and DirectWriter.supports(published, cape.direct)
            else None
        )

    async def _fetch(
        self, statement: Any, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The rows of ``statement`` as dicts, on the driver connection when capebase has a
        direct executor for the driver, through Core otherwise."""
        direct = self.cape.direct
        if direct is not None:
            rows = await direct.fetch(statement, params)
            return [dict(zip(self.columns, row, strict=True)) for row in rows]
        async with self.cape.engine.connect() as connection:
            result = await connection.execute(statement, params)
            return [dict(row) for row in result.mappings()]

    async def _count(self, statement: Any) -> int:
        direct = self.cape.direct
        if direct is not None:
            return int(await direct.scalar(statement))
        async with self.cape.engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def list_rows(
        self,
        *,
        request: Request,
        ctx: AuthContext,
        limit: int | None,
        offset: int,
        order_by: str | None,
        count: bool,
    ) -> Response:
        p = self.published
        config = self.cape.crud_config
        params = request.query_params.multi_items()
        check_filter_count(params, ignored=RESERVED, limit=self.cape.limits.max_filters)
        conditions = parse_filters(params, p.fields, max_in=config.max_in_values)
        read = self.cape.policy.sql_filter(p.model, "read", ctx)
        statement = (
            self.select_all.where(read, *conditions)
            .order_by(*parse_order_by(order_by, p.fields, [p.pk], self.dialect))
            .limit(config.default_page_size if limit is None else limit)
            .offset(offset)
        )
        headers = {}
        rows = await self._fetch(statement)
        if count:
            counter = select(func.count()).select_from(p.table).where(read, *conditions)
            headers["X-Total-Count"] = str(await self._count(counter))
        return Response(p.rows_json.dump_json(rows), media_type="application/json",
                        headers=headers)

    async def get_row(self, *, ctx: AuthContext, **path: Any) -> Response:
        p = self.published
        key = self._key(path)
        rows = await self._fetch(self.select_by_key, {KEY: key})
        # The read rules checked in Python on the row: the same answer as the SQL predicate
        # (tests/policy proves the two agree), without building a statement per request.
        verdict = self.cape.policy.check_row(p.model, "read", ctx, rows[0]) if rows else False
        if verdict is None:  # a `where` Python cannot evaluate: let the database decide
            statement = self.select_all.where(
                equals(p.pk, key), self.cape.policy.sql_filter(p.model, "read", ctx)
            )
            rows = await self._fetch(statement)
            verdict = bool(rows)
        if not verdict:
            raise NotFoundError(p.name, key)
        return Response(p.row_json.dump_json(rows[0]), media_type="application/json")

    async def create_row(self, *, body: BaseModel, ctx: AuthContext) -> Response:
        p = self.published
        if not self.cape.policy.allows_some(p.model, "create", ctx):
            raise PermissionDeniedError("create", p.name, is_anonymous=ctx.is_anonymous)
        required = p.server_set.required_auth
        if required and None in server_values(p.model, ctx, required).values():
            # An auth field the caller has no value for (an anonymous caller's FROM_AUTH_ID):
            # the row could not be stored, and it is the caller, not the row, that is lacking.
            raise PermissionDeniedError("create", p.name, is_anonymous=ctx.is_anonymous)
        refused = p.server_set.on_create  # the schema refused them; never take one regardless
        values = {
            k: v for k, v in body.model_dump().items() if k in p.table.c and k not in refused
        }
        self._check_values(values)
        with constraint_failures_as_http(p.name):
            image = await self._create(ctx, values)
        return Response(p.row_json.dump_json(image), media_type="application/json",
                        status_code=201)

    async def update_row(self, *, body: BaseModel, ctx: AuthContext, **path: Any) -> Response:
        p = self.published
        key = self._key(path)
        refused = p.server_set.on_update
        changes = {
            k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in refused
        }
        self._check_values(changes)
        with constraint_failures_as_http(p.name):
            image = await self._update(ctx, key, changes)
        return Response(p.row_json.dump_json(image), media_type="application/json")

    async def delete_row(self, *, ctx: AuthContext, **path: Any) -> Response:
        key = self._key(path)
        with constraint_failures_as_http(self.published.name):
            await self._delete(ctx, key)
        return Response(status_code=204)

    # The writes: the direct transaction when it can decide, the user's session otherwise.

    async def _create(self, ctx: AuthContext, values: dict[str, Any]) -> dict[str, Any]:
        if self.writer is not None:
            with suppress(Undecided):
                return await self.writer.create(ctx, values)
        obj = self.published.model(**values)
        async with self.cape.get_session(ctx) as session:
            session.add(obj)
            return await _save(session, self.published, obj)

    async def _update(self, ctx: AuthContext, key: Any, changes: dict[str, Any]) -> dict[str, Any]:
        if self.writer is not None:
            with suppress(Undecided):
                return await self.writer.update(ctx, key, changes)
        async with self.cape.get_session(ctx) as session:
            obj = await self._load(session, key)
            await self._require(session, "update", ctx, row_image(obj))
            for field, value in changes.items():
                if field in self.published.table.c:
                    setattr(obj, field, value)
            return await _save(session, self.published, obj)

    async def _delete(self, ctx: AuthContext, key: Any) -> None:
        if self.writer is not None:
            with suppress(Undecided):
                await self.writer.delete(ctx, key)
                return
        async with self.cape.get_session(ctx) as session:
            obj = await self._load(session, key)
            await self._require(session, "delete", ctx, row_image(obj))
            await session.delete(obj)
            await _commit(session, self.published)

    def _key(self, path: dict[str, Any]) -> Any:
        """The primary key from the path; 404 for a key no row can have, which the database
        driver would otherwise reject with an error (an integer out of range, a text with a
        NUL character on PostgreSQL)."""
        p = self.published
        key = path[p.pk.key]
        if p.key_range is not None and not p.key_range[0] <= key <= p.key_range[1]:
            raise NotFoundError(p.name, key)
        if isinstance(key, str) and text_problem(key) is not None:
            raise NotFoundError(p.name, key)
        return key

    async def _load(self, session: Any, key: Any) -> Any:
        """The row with primary key ``key`` that the session's user can read, or 404."""
        p = self.published
        obj = await session.get(p.model, key)
        # MySQL finds 'abc' for the key 'ABC' under its default collations.
        if obj is None or getattr(obj, p.pk.key) != key:
            raise NotFoundError(p.name, key)
        return obj

    def _check_values(self, values: dict[str, Any]) -> None:
        problems = self.published.value_checks.problems(values)
        if problems:
            raise RequestValidationError([
                {"type": "value_error", "loc": ("body", field), "msg": reason,
                 "input": json_safe(value)}
                for field, value, reason in problems
            ])

    async def _require(
        self, session: Any, action: str, ctx: AuthContext, row: dict[str, Any]
    ) -> None:
        """Deny early, before any change is made: the flush checks again, on the stored row."""
        p = self.published
        verdict = self.cape.policy.check_row(p.model, action, ctx, row)
        if verdict is None:
            verdict = await session.run_sync(
                lambda s: check_in_database(s, self.cape.policy, p.model, action, ctx, row)
            )
        if not verdict:
            raise PermissionDeniedError(action, p.name, is_anonymous=ctx.is_anonymous)


async def _save(session: Any, published: PublishedModel, obj: Any) -> dict[str, Any]:
    """Commit ``obj`` and return its row as stored: server defaults filled in, values as the
    database keeps them (MySQL's DATETIME drops microseconds, for one)."""

    model, pk = published.model, published.pk
    # Read back past the caller's read rules: the write was allowed, and its answer is the row
    # as written even when the change moves it out of the caller's view (as on the direct path).
    read_back = select(model).execution_options(populate_existing=True, **INTERNAL)

    async def flush_and_read() -> None:
        await session.flush()
        await session.execute(read_back.where(equals(pk, getattr(obj, pk.key))))

    await _commit(session, published, before=flush_and_read)
    return row_image(obj)


async def _commit(
    session: Any,
    published: PublishedModel,
    before: Callable[[], Awaitable[None]] | None = None,
) -> None:
    try:
        if before is not None:
            await before()
        await session.commit()
    except (IntegrityError, DataError):
        await session.rollback()
        raise
