"""Related rows of a list or get request: ``expand=``, conditions and sort keys on related
fields, each related row read under its own model's read rules for the caller.

How each part reaches the related rows, so that the policy holds and no row costs a statement:

- a many-to-one relation that is expanded or sorted on is LEFT JOINed to the request's one
  statement, as a subquery of the related rows the caller may read: a related row the caller
  may not read joins nothing, so it is ``null``, and sorts as null;
- a one-to-many relation that is expanded costs one statement for the whole page: the related
  rows the caller may read whose key is one of the page's, numbered per parent row
  (``ROW_NUMBER() OVER (PARTITION BY ...)``) to keep the first ``limit`` of each, by primary key;
- a condition on a related field (``project__name=x``) is ``key IN (the keys of related rows
  the caller may read that meet it)``: a related row the caller may not read meets no
  condition, so a filter can never tell that it exists, nor what it holds.

The related rows are served with their model's own serializer, so its secret fields never are;
filters and sorts name only its filterable (non-secret) fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Select, Subquery, func, select

from ..errors import QueryError
from ..filters.cursor import encode_cursor
from ..filters.order import SortKey, order_clauses, parse_sort
from ..filters.query import FilterField
from ..filters.related import ExpandItem, Scope, parse_related_select
from ..filters.select import parse_select
from .relations import Related, Relations

if TYPE_CHECKING:
    from sqlalchemy import Column, ColumnElement

    from ..identity.context import AuthContext
    from ..limits import LimitsConfig
    from ..policy import Policy

Fetch = Callable[[Any], Awaitable[Sequence[Sequence[Any]]]]
"""Runs a statement and returns its rows as tuples."""

_PARENT = "capebase_parent"
_RANK = "capebase_rank"


@dataclass(slots=True)
class _Join:
    """A many-to-one relation joined to the request's statement."""

    related: Related
    rows: Subquery
    keys: list[str]
    """The related columns the statement selects: the served ones, and the joined key."""
    served: list[str]

    @property
    def joined_at(self) -> int:
        """The position of the joined key among ``keys``: NULL there when nothing joined."""
        return self.keys.index(self.related.remote.key)


@dataclass(slots=True)
class ExpandedRow:
    """A row with what its relations hold: ``one`` a related row or ``None`` per joined
    many-to-one relation, ``many`` a list per expanded one-to-many relation."""

    row: dict[str, Any]
    one: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    many: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Selection:
    """What ``select=`` leaves of a row (``None``: every field) and of each expanded row."""

    own: set[str] | None
    related: dict[str, set[str] | None]


class RelatedQuery:
    """The related rows one request of ``relations``' model reaches, as ``ctx``."""

    def __init__(
        self, relations: Relations, policy: Policy, ctx: AuthContext, limits: LimitsConfig,
        dialect: str,
    ) -> None:
        self.relations = relations
        self.policy = policy
        self.ctx = ctx
        self.limits = limits
        self.dialect = dialect
        self.expanded: list[tuple[Related, int]] = []
        """The expanded relations, with the most related rows per row (one-to-many)."""
        self._joins: dict[str, _Join] = {}
        self._reads: dict[type[Any], ColumnElement[bool]] = {}

    @property
    def is_plain(self) -> bool:
        """Whether the request reaches no related row through its statement's columns."""
        return not self._joins and not self.expanded

    # -- expand ----------------------------------------------------------------------------

    def expand(self, items: Sequence[ExpandItem]) -> None:
        """Expand the relations ``items`` name (already parsed: ``filters.related``).

        Raises:
            QueryError: 400 for a relation that cannot be expanded, a limit on a
                many-to-one relation.
        """
        for item in items:
            related = self.relations.get(item.name, "expand")
            if not related.is_many:
                if item.limit is not None:
                    raise QueryError(
                        f"Cannot limit {item.name!r}: it is a many-to-one relation (one row "
                        "or null); limit applies to one-to-many relations"
                    )
                self._join(related)
            self.expanded.append(
                (related, self.limits.expand_limit if item.limit is None else item.limit)
            )

    def selection(self, raw: str | None, fields: dict[str, FilterField]) -> Selection:
        """``select=raw`` split between the row's own fields and the expanded rows' fields.

        Raises:
            QueryError: 400 for an unknown field, or one of a relation not expanded.
        """
        names = [related.name for related, _ in self.expanded]
        own, picked, named = parse_related_select(raw, names, self.relations)
        for name, chosen in picked.items():
            target = next(r for r, _ in self.expanded if r.name == name).published
            for item in chosen or ():
                if item not in target.fields:
                    raise QueryError(
                        f"Unknown select field {item!r} of {name!r}; fields: "
                        + ", ".join(target.fields)
                    )
        if own == "" and named:
            return Selection(set(), picked)
        return Selection(parse_select(own, fields), picked)

    # -- filters (filters.related.RelatedFilters) -------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self.relations

    def field(self, relation: str, name: str) -> tuple[FilterField, Scope]:
        """The related field ``relation__name`` of a condition, and its scope: the listed
        rows one of whose related rows, readable by the caller, meets the condition."""
        related = self.relations.get(relation, "filter on")
        target = self._field(related, name, "filter")
        read = self._read(related)

        def scope(condition: ColumnElement[bool]) -> ColumnElement[bool]:
            matching = (
                select(related.remote)
                .where(related.remote.is_not(None), read, condition)
                .correlate(None)  # the same table, related to itself, stays its own FROM
            )
            result: ColumnElement[bool] = related.local.in_(matching)
            return result

        return target, scope

    # -- sort ------------------------------------------------------------------------------

    def sort_fields(
        self, order_by: str | None, fields: dict[str, FilterField]
    ) -> dict[str, FilterField]:
        """``fields`` and the related fields ``order_by`` names (``project__name``), which
        sort the rows whose related row the caller may not read as null.

        Raises:
            QueryError: 400 for a one-to-many relation or an unknown field of a relation.
        """
        if order_by is None or "__" not in order_by:
            return fields
        found = dict(fields)
        for part in order_by.split(","):
            name = part.strip().lstrip("-+")
            head, separator, rest = name.partition("__")
            if not separator or name in fields or head not in self.relations:
                continue
            related = self.relations.get(head, "sort on")
            if related.is_many:
                raise QueryError(
                    f"Cannot sort on {name!r}: {head!r} is a one-to-many relation, and a row "
                    "has several related rows; sort on fields of many-to-one relations"
                )
            own = self._field(related, rest, "sort")
            join = self._join(related)
            # A subquery's column of a table column is a Column too.
            column = cast("Column[Any]", join.rows.c[rest])
            column.nullable = True  # a related row the caller may not read joins as NULL
            found[name] = dataclasses.replace(own, column=column)
        return found

    # -- statements and rows ---------------------------------------------------------------

    def statement(self, base: Select[Any]) -> Select[Any]:
        """``base`` (a select of the model's table) with the many-to-one joins and their
        columns."""
        if not self._joins:
            return base
        source: Any = self.relations.published.table
        for join in self._joins.values():
            source = source.outerjoin(
                join.rows, join.rows.c[join.related.remote.key] == join.related.local
            )
        columns = [join.rows.c[key] for join in self._joins.values() for key in join.keys]
        return base.select_from(source).add_columns(*columns)

    async def load(
        self, fetch: Fetch, statement: Select[Any], columns: Sequence[str],
        *, limit: int | None = None,
    ) -> tuple[list[ExpandedRow], bool]:
        """The rows of ``statement`` (``self.statement(...)``) with their related rows: the
        first ``limit`` of them, and whether there were more."""
        fetched = await fetch(statement)
        more = limit is not None and len(fetched) > limit
        rows = [self._split(values, columns) for values in fetched[:limit]]
        for related, per_row in self.expanded:
            if related.is_many:
                await self._load_many(fetch, related, per_row, rows)
        return rows, more

    def _split(self, values: Sequence[Any], columns: Sequence[str]) -> ExpandedRow:
        count = len(columns)
        row = ExpandedRow(dict(zip(columns, values[:count], strict=True)))
        start = count
        for name, join in self._joins.items():
            part = values[start:start + len(join.keys)]
            start += len(join.keys)
            present = part[join.joined_at] is not None
            row.one[name] = dict(zip(join.served, part, strict=False)) if present else None
        return row

    async def _load_many(
        self, fetch: Fetch, related: Related, limit: int, rows: list[ExpandedRow]
    ) -> None:
        """The related rows of a one-to-many relation for every row, in one statement."""
        name, local = related.name, related.local.key
        keys = list(dict.fromkeys(r.row[local] for r in rows if r.row[local] is not None))
        found: dict[Any, list[dict[str, Any]]] = {}
        if keys:
            target = related.published
            served = _served(related)
            keyed = parse_sort(None, target.fields, [target.pk])
            rank = func.row_number().over(
                partition_by=related.remote, order_by=order_clauses(keyed, self.dialect)
            )
            inner = (
                select(*(target.table.c[k] for k in served), related.remote.label(_PARENT),
                       rank.label(_RANK))
                .where(related.remote.in_(keys), self._read(related))
                .subquery()
            )
            statement = (
                select(*(inner.c[k] for k in served), inner.c[_PARENT])
                .where(inner.c[_RANK] <= limit)
                .order_by(inner.c[_PARENT], inner.c[_RANK])
            )
            for values in await fetch(statement):
                found.setdefault(values[-1], []).append(dict(zip(served, values, strict=False)))
        for row in rows:
            # Matched in Python exactly: text keys equal on MySQL's collation but not byte for
            # byte are not the same row's.
            row.many[name] = found.get(row.row[local], []) if row.row[local] is not None else []

    # -- JSON ------------------------------------------------------------------------------

    def dump(self, row: ExpandedRow, own: bytes, selection: Selection) -> bytes:
        """The JSON of ``row``: ``own`` (its fields' JSON object) with each expanded
        relation's rows after them, under the relation's name."""
        parts = []
        for related, _ in self.expanded:
            name, target = related.name, related.published
            include = selection.related.get(name)
            if related.is_many:
                value = target.rows_json.dump_json(
                    row.many[name], include=None if include is None else {"__all__": include}
                )
            else:
                one = row.one[name]
                value = b"null" if one is None else target.row_json.dump_json(one, include=include)
            parts.append(b'"' + name.encode() + b'":' + value)
        if not parts:
            return own
        inner = own[1:-1]
        return b"{" + inner + (b"," if inner else b"") + b",".join(parts) + b"}"

    def next_cursor(
        self, rows: list[ExpandedRow], more: bool, keys: Sequence[SortKey]
    ) -> str | None:
        """The cursor of the page after ``rows``: its last row's sort values, related ones
        (``project__name``) included, as the response shows them."""
        if not (more and rows):
            return None
        last = rows[-1]
        values = self.relations.published.row_json.dump_python(last.row, mode="json")
        for key in keys:
            head, separator, rest = key.name.partition("__")
            if separator and head in self._joins:
                one = last.one[head]
                target = self._joins[head].related.published
                values[key.name] = (
                    None if one is None else target.row_json.dump_python(one, mode="json")[rest]
                )
        return encode_cursor(keys, values)

    # -- parts -----------------------------------------------------------------------------

    def _join(self, related: Related) -> _Join:
        join = self._joins.get(related.name)
        if join is None:
            served = _served(related)
            keys = list(dict.fromkeys([*served, related.remote.key]))
            table = related.published.table
            rows = select(*(table.c[k] for k in keys)).where(self._read(related)).subquery()
            join = self._joins[related.name] = _Join(related, rows, keys, served)
        return join

    def _read(self, related: Related) -> ColumnElement[bool]:
        model = related.published.model
        read = self._reads.get(model)
        if read is None:
            read = self._reads[model] = self.policy.sql_filter(model, "read", self.ctx)
        return read

    def _field(self, related: Related, name: str, use: str) -> FilterField:
        found = related.published.fields.get(name)
        if found is None:
            raise QueryError(
                f"Unknown field {name!r} of {related.name!r} to {use} on; fields of "
                f"{related.name}: {', '.join(related.published.fields)}"
            )
        return found


def _served(related: Related) -> list[str]:
    """The related model's columns its responses show (no secret field)."""
    target = related.published
    return [c.key for c in target.table.c if c.key in target.read_schema.model_fields]
