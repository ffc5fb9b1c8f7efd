"""What the generated routes do: list, get, create, update and delete rows of one published
model as the caller, on the direct path where it can decide, in the caller's session
otherwise."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from pydantic import BaseModel
from sqlalchemy import bindparam, func, select

from ..errors import NotFoundError, PreconditionFailedError
from ..filters.order import order_clauses, parse_sort
from ..filters.query import RESERVED, parse_filters
from ..filters.related import parse_expand
from ..http.errors import constraint_failures_as_http
from ..identity.context import AuthContext
from ..limits import check_filter_count
from ..policy.sqlexpr import equals
from ..writes import row_writer
from ..writes.direct import KEY
from .conditional import Preconditions, etag_of, parse_tags
from .expand import RelatedQuery
from .inputs import create_values, require_create, route_key, update_changes
from .paging import after_cursor, enveloped, next_cursor, next_link
from .published import PublishedModel
from .relations import Relations

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

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
        self.relations = Relations(published, services.published)

    def _related(self, ctx: AuthContext, expand: str | None) -> RelatedQuery:
        """The related rows a request reaches, ``expand`` (``?expand=``) expanded."""
        limits = self.services.limits
        related = RelatedQuery(self.relations, self.services.policy, ctx, limits, self.dialect)
        related.expand(parse_expand(
            expand, max_expand=limits.max_expand, max_limit=limits.max_expand_limit
        ))
        return related

    async def _fetch_values(self, statement: Any) -> list[Any]:
        """The rows of ``statement`` as tuples (direct or through Core, as ``_fetch``)."""
        direct = self.services.direct
        if direct is not None:
            return await direct.fetch(statement)
        async with self.services.engine.connect() as connection:
            return list((await connection.execute(statement)).all())

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

    async def _total(
        self,
        read: Any,
        conditions: list[ColumnElement[bool]],
        offset: int,
        seen: int,
        *,
        last: bool,
        cursor: bool,
    ) -> int:
        """The number of rows the listing matches, never fewer than the page just read shows.

        A last page (short, and reached by offset alone) is its own count. Otherwise the count
        runs in a statement of its own, which sees rows committed or deleted after the page was
        read; a count below ``offset + seen`` would tell a client the page it holds is the
        whole list, so the count is raised to what the page proved to exist.
        """
        if last and not cursor and (seen > 0 or offset == 0):
            return offset + seen
        counter = select(func.count()).select_from(self.published.table).where(read, *conditions)
        proven = offset + seen if seen > 0 and not cursor else 0
        return max(await self._count(counter), proven)

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
        after: str | None = None,
        envelope: bool = False,
        expand: str | None = None,
        **groups: str | None,
    ) -> Response:
        """The rows the caller may read that match the query's filters, with the fields of
        ``selection`` (``?select=``, default all) and the related rows of ``expand``, from
        the cursor ``after`` on; the next page's cursor in ``Link`` (and in the body with
        ``envelope``). ``groups`` (``or``, ``not.and``...) are declared for OpenAPI and read
        from ``request``, where each may be repeated."""
        p = self.published
        config = self.services.crud
        limits = self.services.limits
        params = request.query_params.multi_items()
        check_filter_count(params, ignored=RESERVED, limit=limits.max_filters)
        related = self._related(ctx, expand)
        conditions = parse_filters(
            params, p.fields, max_in=config.max_in_values,
            max_terms=limits.max_filter_terms, max_depth=limits.max_filter_depth,
            related=related,
        )
        selected = related.selection(selection, p.fields)
        keys = parse_sort(order_by, related.sort_fields(order_by, p.fields), [p.pk])
        page = after_cursor(after, keys, offset, self.dialect)
        read = self.services.policy.sql_filter(p.model, "read", ctx)
        size = config.default_page_size if limit is None else limit
        statement = related.statement(
            self.select_all.where(read, *conditions, *page)
            .order_by(*order_clauses(keys, self.dialect))
            .limit(size + 1)  # one more: whether a next page exists
            .offset(offset)
        )
        headers = {}
        include = None if selected.own is None else {"__all__": selected.own}
        if related.is_plain:
            rows = await self._fetch(statement)
            seen, more = len(rows), len(rows) > size
            cursor = next_cursor(rows[:size], more, keys, p.row_json)
            body = p.rows_json.dump_json(rows[:size], include=include)
        else:
            expanded, more = await related.load(
                self._fetch_values, statement, self.columns, limit=size
            )
            seen = len(expanded) + more
            cursor = related.next_cursor(expanded, more, keys)
            body = b"[" + b",".join(
                related.dump(row, p.row_json.dump_json(row.row, include=selected.own),
                             selected)
                for row in expanded
            ) + b"]"
        if cursor is not None:
            headers["Link"] = next_link(request, cursor)
        if count:  # the whole listing: the cursor, like limit and offset, is not counted
            headers["X-Total-Count"] = str(
                await self._total(read, conditions, offset, seen, last=not more,
                                  cursor=after is not None)
            )
        if envelope:
            body = enveloped(body, cursor)
        return Response(body, media_type="application/json", headers=headers)

    async def get_row(
        self,
        *,
        ctx: AuthContext,
        selection: str | None = None,
        request: Request | None = None,
        expand: str | None = None,
        **path: Any,
    ) -> Response:
        """The row, with its ETag; 304 when it matches ``If-None-Match``, 412 when it does
        not match ``If-Match``. With ``expand``, the row's related rows too (see
        ``_expanded_row``)."""
        p = self.published
        if_match = None if request is None else parse_tags(request, "If-Match")
        if_none_match = None if request is None else parse_tags(request, "If-None-Match")
        if expand is not None:
            return await self._expanded_row(ctx, expand, selection, if_match, path)
        # Through the related grammar only when asked: it explains a relation named in select.
        selected = None if selection is None else self._related(ctx, None).selection(
            selection, p.fields).own
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
        whole = p.row_json.dump_json(rows[0])
        headers = {"ETag": etag_of(whole)}
        if if_match is not None and not if_match.matches_strongly(headers["ETag"]):
            raise PreconditionFailedError(p.name, key)
        if if_none_match is not None and if_none_match.matches_weakly(headers["ETag"]):
            return Response(status_code=304, headers=headers)
        body = whole if selected is None else p.row_json.dump_json(rows[0], include=selected)
        return Response(body, media_type="application/json", headers=headers)

    async def _expanded_row(
        self, ctx: AuthContext, expand: str, selection: str | None, if_match: Any,
        path: dict[str, Any],
    ) -> Response:
        """The row with the related rows ``expand`` names, in one statement (and one per
        one-to-many relation). Its ETag is the row's own, as without ``expand``, so that it
        serves ``If-Match``; ``If-None-Match`` gets no 304, since related rows may have
        changed while the row did not."""
        p = self.published
        related = self._related(ctx, expand)
        selected = related.selection(selection, p.fields)
        key = self._key(path)
        read = self.services.policy.sql_filter(p.model, "read", ctx)
        statement = related.statement(self.select_all.where(equals(p.pk, key), read))
        rows, _ = await related.load(self._fetch_values, statement, self.columns)
        if not rows:
            raise NotFoundError(p.name, key)
        etag = etag_of(p.row_json.dump_json(rows[0].row))
        if if_match is not None and not if_match.matches_strongly(etag):
            raise PreconditionFailedError(p.name, key)
        body = related.dump(rows[0], p.row_json.dump_json(rows[0].row, include=selected.own),
                            selected)
        return Response(body, media_type="application/json", headers={"ETag": etag})

    async def create_row(
        self, *, body: BaseModel, ctx: AuthContext, request: Request | None = None
    ) -> Response:
        p = self.published
        require_create(p, self.services.policy, ctx)
        values = create_values(p, body)
        with constraint_failures_as_http(p.name):
            image = await self.writer.create(ctx, values)
        return self._row_response(image, status_code=201)

    async def update_row(
        self, *, body: BaseModel, ctx: AuthContext, request: Request | None = None, **path: Any
    ) -> Response:
        p = self.published
        key = self._key(path)
        precondition = Preconditions.of(request, p.row_json, p.name, key)
        changes = update_changes(p, body)
        with constraint_failures_as_http(p.name):
            image = await self.writer.update(ctx, key, changes, precondition)
        return self._row_response(image)

    async def delete_row(
        self, *, ctx: AuthContext, request: Request | None = None, **path: Any
    ) -> Response:
        p = self.published
        key = self._key(path)
        precondition = Preconditions.of(request, p.row_json, p.name, key)
        with constraint_failures_as_http(p.name):
            await self.writer.delete(ctx, key, precondition)
        return Response(status_code=204)

    def _row_response(self, image: dict[str, Any], status_code: int = 200) -> Response:
        body = self.published.row_json.dump_json(image)
        return Response(body, status_code=status_code, media_type="application/json",
                        headers={"ETag": etag_of(body)})

    def _key(self, path: dict[str, Any]) -> Any:
        """The primary key from the path (404 for a key no row can have: ``route_key``)."""
        return route_key(self.published, path[self.published.pk.key])
