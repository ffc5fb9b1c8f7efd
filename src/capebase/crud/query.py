"""The list query grammar: ``?field__op=value``, ``order_by``, ``limit``, ``offset``, ``count``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Column, ColumnElement, String, Table, not_

from ..errors import QueryError
from ..policy.sqlexpr import equals, one_of

RESERVED = frozenset({"order_by", "limit", "offset", "count"})
TEXT_OPERATORS = frozenset({"like", "ilike", "contains", "icontains", "startswith"})
OPERATORS = (
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin",
    "like", "ilike", "contains", "icontains", "startswith", "isnull",
)
_BOOL = TypeAdapter(bool)


@dataclass(frozen=True, slots=True)
class FilterField:
    """A column that lists may filter and sort on, with the parser for its values."""

    column: Column[Any]
    parse: Callable[[str], Any]
    is_text: bool


def filter_fields(table: Table) -> dict[str, FilterField]:
    """The filterable columns of ``table``, built once per published model."""
    fields = {}
    for column in table.c:
        try:
            python_type: Any = column.type.python_type
        except NotImplementedError:
            python_type = str
        adapter = TypeAdapter(python_type)
        fields[column.key] = FilterField(
            column=column,
            parse=adapter.validate_strings,
            is_text=isinstance(column.type, String),
        )
    return fields


def parse_filters(
    params: Iterable[tuple[str, str]], fields: dict[str, FilterField], *, max_in: int
) -> list[ColumnElement[bool]]:
    """Turn query parameters into WHERE conditions (AND-ed).

    Raises:
        QueryError: 400 for an unknown field or operator, 422 for a value that does not parse.
    """
    conditions: list[ColumnElement[bool]] = []
    for key, raw in params:
        if key in RESERVED:
            continue
        name, _, op = key.partition("__")
        op = op or "eq"
        field = fields.get(name)
        if field is None:
            known = ", ".join(fields)
            raise QueryError(f"Unknown filter field {name!r}; filterable fields: {known}")
        if op not in OPERATORS:
            raise QueryError(f"Unknown filter operator {op!r} in {key!r}; use one of: "
                             + ", ".join(OPERATORS))
        conditions.append(_condition(name, op, raw, field, max_in))
    return conditions


def _condition(name: str, op: str, raw: str, field: FilterField, max_in: int) -> ColumnElement[bool]:
    column = field.column
    if op == "isnull":
        wanted = _parse(name, raw, _BOOL.validate_strings)
        return column.is_(None) if wanted else column.is_not(None)
    if op in TEXT_OPERATORS:
        if not field.is_text:
            raise QueryError(f"Operator {op!r} applies to text fields only; {name!r} is not text")
        return _text_condition(column, op, raw)
    if op in ("in", "nin"):
        items = [item for item in raw.split(",")] if raw != "" else []
        if len(items) > max_in:
            raise QueryError(f"Too many values for {name}__{op}: at most {max_in}", status_code=422)
        values = [_parse(name, item, field.parse) for item in items]
        if not values:
            raise QueryError(f"{name}__{op} needs at least one value", status_code=422)
        condition = one_of(column, values)
        return condition if op == "in" else not_(condition)
    value = _parse(name, raw, field.parse)
    if op == "eq":
        return equals(column, value)
    if op == "ne":
        return not_(equals(column, value))
    comparisons = {"gt": column > value, "gte": column >= value,
                   "lt": column < value, "lte": column <= value}
    return comparisons[op]


def _text_condition(column: Column[Any], op: str, raw: str) -> ColumnElement[bool]:
    if op == "like":
        return column.like(raw)
    if op == "ilike":
        return column.ilike(raw)
    if op == "contains":
        return column.contains(raw, autoescape=True)
    if op == "icontains":
        return column.icontains(raw, autoescape=True)
    return column.startswith(raw, autoescape=True)


def _parse(name: str, raw: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(raw)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"] if exc.errors() else "invalid value"
        raise QueryError(f"Invalid value {raw!r} for {name!r}: {reason}", status_code=422) from exc


def parse_order_by(raw: str | None, fields: dict[str, FilterField], pk: list[Column[Any]]) -> list[Any]:
    """``order_by=-inserted_at,id`` → ORDER BY clauses; the primary key breaks ties.

    Raises:
        QueryError: 400 for an unknown field.
    """
    clauses: list[Any] = []
    used: set[str] = set()
    for part in (raw or "").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("-+")
        field = fields.get(name)
        if field is None:
            raise QueryError(f"Unknown order_by field {name!r}; sortable fields: {', '.join(fields)}")
        used.add(name)
        clauses.append(field.column.desc() if descending else field.column.asc())
    clauses.extend(column.asc() for column in pk if column.key not in used)
    return clauses
