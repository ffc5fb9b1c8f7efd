"""What the generated routes do: list, get, create, update and delete rows of one published
model as the caller, on the direct path where it can decide, in the caller's session
otherwise."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from pydantic import BaseModel
from sqlalchemy import bindparam, func, select

from ..errors import NotFoundError
from ..filters.query import (
    RESERVED,
    parse_filters,
    parse_order_by,
)
from ..filters.select import parse_select
from ..http.errors import constraint_failures_as_http
from ..identity.context import AuthContext
from ..limits import check_filter_count
from ..policy.sqlexpr import equals
from ..writes import row_writer
from ..writes.direct import KEY
from .inputs import create_values, require_create, route_key, update_changes
from .published import PublishedModel

if TYPE_CHECKING:
    from ..http.services import RouteServices

logger = logging.getLogger("capebase")


class Handlers:
    """The endpoint functions of one published model."""

    def __init__(self, services: RouteServices, published: PublishedModel) -> None:
        self.services = services
        self.published = published
        self.select_all = select(published.table)
        # Built once, so SQLAlchemy's cache key for it is computed once too.
        self.select_by_key = self.select_all.where(
            equals(published.pk, bindparam(KEY, type_=published.pk.type))
        )
        if services.direct is not None:
            services.direct.prebuilt(self.select_by_key)
        self.columns = tuple(published.table.c.keys())
        self.dialect = services.engine.dialect.name
        self.writer = row_writer(
            published, services.policy, services.hub, services.user_session, services.direct
        )

    async def _fetch(
        self, statement: Any, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The rows of ``statement`` as dicts, on the driver connection when capebase has a
        direct executor for the driver, through Core otherwise."""
        direct = self.services.direct
        if direct is not None:
            rows = await direct.fetch(statement, params)
            return [dict(zip(self.columns, row, strict=True)) for row in rows]
        async with self.services.engine.connect() as connection:
            result = await connection.execute(statement, params)
            return [dict(row) for row in result.mappings()]

    async def _count(self, statement: Any) -> int:
        direct = self.services.direct
        if direct is not None:
            return int(await direct.scalar(statement))
        async with self.services.engine.connect() as connection:
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
        selection: str | None = None,
        **groups: str | None,
    ) -> Response:
        """The rows the caller may read that match the query's filters, with the fields of
        ``selection`` (``?select=``, default all); ``groups`` (``or``,
        ``not.and``...) are declared for OpenAPI and read from ``request``, where each may
        be repeated."""
        p = self.published
        config = self.services.crud
        limits = self.services.limits
        params = request.query_params.multi_items()
        check_filter_count(params, ignored=RESERVED, limit=limits.max_filters)
        conditions = parse_filters(
            params, p.fields, max_in=config.max_in_values,
            max_terms=limits.max_filter_terms, max_depth=limits.max_filter_depth,
        )
        selected = parse_select(selection, p.fields)
        read = self.services.policy.sql_filter(p.model, "read", ctx)
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
        body = p.rows_json.dump_json(
            rows, include=None if selected is None else {"__all__": selected}
        )
        return Response(body, media_type="application/json", headers=headers)

    async def get_row(
        self, *, ctx: AuthContext, selection: str | None = None, **path: Any
    ) -> Response:
        p = self.published
        selected = parse_select(selection, p.fields)
        key = self._key(path)
        rows = await self._fetch(self.select_by_key, {KEY: key})
        # The read rules checked in Python on the row: the same answer as the SQL predicate
        # (tests/policy proves the two agree), without building a statement per request.
        verdict = self.services.policy.check_row(p.model, "read", ctx, rows[0]) if rows else False
        if verdict is None:  # a `where` Python cannot evaluate: let the database decide
            statement = self.select_all.where(
                equals(p.pk, key), self.services.policy.sql_filter(p.model, "read", ctx)
            )
            rows = await self._fetch(statement)
            verdict = bool(rows)
        if not verdict:
            raise NotFoundError(p.name, key)
        return Response(p.row_json.dump_json(rows[0], include=selected),
                        media_type="application/json")

    async def create_row(self, *, body: BaseModel, ctx: AuthContext) -> Response:
        p = self.published
        require_create(p, self.services.policy, ctx)
        values = create_values(p, body)
        with constraint_failures_as_http(p.name):
            image = await self.writer.create(ctx, values)
        return Response(p.row_json.dump_json(image), media_type="application/json",
                        status_code=201)

    async def update_row(self, *, body: BaseModel, ctx: AuthContext, **path: Any) -> Response:
        p = self.published
        key = self._key(path)
        changes = update_changes(p, body)
        with constraint_failures_as_http(p.name):
            image = await self.writer.update(ctx, key, changes)
        return Response(p.row_json.dump_json(image), media_type="application/json")

    async def delete_row(self, *, ctx: AuthContext, **path: Any) -> Response:
        key = self._key(path)
        with constraint_failures_as_http(self.published.name):
            await self.writer.delete(ctx, key)
        return Response(status_code=204)

    def _key(self, path: dict[str, Any]) -> Any:
        """The primary key from the path (404 for a key no row can have: ``route_key``)."""
        return route_key(self.published, path[self.published.pk.key])
