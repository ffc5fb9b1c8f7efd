"""The order of a list: ``order_by`` as sort keys, their ORDER BY, and the keyset condition
that selects the rows after a given row in that order (``?after=`` cursors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, and_, false, or_
from sqlalchemy.types import Enum

from ..errors import QueryError
from ..policy.sqlexpr import codepoint_ordered, declaration_ordered, equals, one_of
from ..wire.values import storage_type
from .query import FilterField
from .values import exact_bind


@dataclass(frozen=True, slots=True)
class SortKey:
    """One column of a list's order: its name, field and direction."""

    name: str
    field: FilterField
    descending: bool
    is_plain: bool = False
    """Sorted by the column as the database compares it (the primary key breaking ties),
    not in code point or declaration order."""

    @property
    def column(self) -> Column[Any]:
        """The sorted column."""
        return self.field.column


def parse_sort(
    raw: str | None, fields: dict[str, FilterField], pk: Sequence[Column[Any]]
) -> list[SortKey]:
    """``order_by=-inserted_at,id`` → the sort keys, ended by the primary key's columns not
    named (ascending), which break ties: the order is total.

    Raises:
        QueryError: 400 for an unknown field, or one that has no order (JSON).
    """
    keys: list[SortKey] = []
    used: set[str] = set()
    for part in (raw or "").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("-+")
        field = fields.get(name)
        if field is None:
            raise QueryError(
                "Unknown order_by field {!r}; sortable fields: {}".format(
                    name, ", ".join(k for k, f in fields.items() if f.is_sortable)
                )
            )
        if not field.is_sortable:
            raise QueryError(f"Cannot sort on {name!r}: {field.kind} values have no order")
        if name in used:
            continue  # a repeated key orders nothing more
        used.add(name)
        keys.append(SortKey(name, field, descending))
    for column in pk:
        if column.key not in used:
            field = fields.get(column.key) or FilterField(column, _unparsed, is_text=False)
            keys.append(SortKey(column.key, field, False, is_plain=True))
    return keys


def _unparsed(raw: str) -> Any:  # pragma: no cover - a key column is always a field
    raise ValueError("not a filterable column")


def order_clauses(keys: Sequence[SortKey], dialect: str) -> list[Any]:
    """The ORDER BY of ``keys``. NULL sorts after every value ascending and before every
    value descending, on every ``dialect`` (PostgreSQL's default: NULL is the largest)."""
    clauses: list[Any] = []
    for key in keys:
        column = key.column
        if column.nullable and dialect != "postgresql":
            # SQLite and MySQL put NULL first ascending; MySQL has no NULLS LAST.
            is_null = column.is_(None)
            clauses.append(is_null.desc() if key.descending else is_null.asc())
        sort = _sort_expression(key, dialect)
        clauses.append(sort.desc() if key.descending else sort.asc())
    return clauses


def after(keys: Sequence[SortKey], values: Sequence[Any], dialect: str) -> ColumnElement[bool]:
    """The rows strictly after the row whose sort values are ``values`` (one per key), in
    the order ``order_clauses(keys)`` gives: equal on the first keys and after on the next,
    for each position. NULL is the largest value, as in that order."""
    alternatives: list[ColumnElement[bool]] = []
    prefix: list[ColumnElement[bool]] = []
    for key, value in zip(keys, values, strict=True):
        beyond = _beyond(key, value, dialect)
        if beyond is not None:
            alternatives.append(and_(*prefix, beyond))
        column = key.column
        prefix.append(
            column.is_(None) if value is None else equals(column, exact_bind(column, value))
        )
    return or_(*alternatives) if alternatives else false()


def _beyond(key: SortKey, value: Any, dialect: str) -> ColumnElement[bool] | None:
    """The rows whose ``key`` comes after ``value``; ``None`` when none can."""
    column = key.column
    nulls_after = column.nullable and not key.descending
    if value is None:
        # NULL is last ascending (nothing after it), first descending (every value after it).
        return column.is_not(None) if key.descending else None
    domain = None if key.is_plain else _domain(key)
    if domain is not None:
        # Booleans and enums: the members after ``value`` in their declared order, as a list,
        # since MySQL compares an ENUM with text as text, not by its order.
        index = domain.index(value) if value in domain else -1
        members = domain[:index] if key.descending else domain[index + 1:]
        beyond: ColumnElement[bool] | None = one_of(column, members) if members else None
    else:
        sort = _sort_expression(key, dialect)
        bound = exact_bind(column, value)
        beyond = sort < bound if key.descending else sort > bound
    if nulls_after:
        return column.is_(None) if beyond is None else or_(beyond, column.is_(None))
    return beyond


def _domain(key: SortKey) -> list[Any] | None:
    """The values of a boolean or enum column in their order; ``None`` for other types."""
    if key.field.kind == "boolean":
        return [False, True]
    if key.field.kind != "enum":
        return None
    stored = storage_type(key.column.type)
    assert isinstance(stored, Enum)
    if stored.enum_class is not None:
        return list(stored.enum_class)
    return list(stored.enums)


def _sort_expression(key: SortKey, dialect: str) -> ColumnElement[Any]:
    if key.is_plain:
        return key.column
    expression: ColumnElement[Any] = declaration_ordered(key.column, dialect)
    if key.field.is_text:
        expression = codepoint_ordered(expression)
    return expression
