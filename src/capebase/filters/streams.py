"""Stream filters: the list grammar's ``?field__op=value`` conditions and groups a stream may
carry, parsed once and evaluated in Python on each change's row images."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import QueryError
from ..limits import DEFAULT_MAX_FILTER_DEPTH, DEFAULT_MAX_FILTER_TERMS
from .groups import Group, Term, split_params
from .query import (
    STREAM_PARAMETERS,
    FilterField,
    _parse,
    check_operator,
    list_items,
    parse_isnull,
)

STREAM_OPERATORS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "isnull")
NOT_FILTERS = STREAM_PARAMETERS | {"select"}
"""Query parameters of a stream that are not filters."""
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """One ``?field__op=value`` condition of a stream, evaluated in Python per event."""

    field: str
    op: str
    value: Any

    def matches(self, image: dict[str, Any]) -> bool:
        """Whether the row image satisfies this condition (NULL never matches a comparison)."""
        current = image.get(self.field)
        if self.op == "isnull":
            return (current is None) is bool(self.value)
        if current is None:
            return False
        if self.op == "in":
            return current in self.value
        if self.op == "nin":
            return current not in self.value
        try:
            return _COMPARE[self.op](current, self.value)
        except TypeError:
            return False


@dataclass(frozen=True, slots=True)
class StreamGroup:
    """A group of conditions (``or=(...)``, ``not.and=(...)``...), evaluated in Python: a
    condition on a missing value is false, and ``not`` makes it true, as lists do in SQL."""

    kind: str
    negated: bool
    items: tuple[StreamFilter | StreamGroup, ...]

    def matches(self, image: dict[str, Any]) -> bool:
        """Whether the row image satisfies the group."""
        if self.kind == "and":
            found = all(item.matches(image) for item in self.items)
        else:
            found = any(item.matches(image) for item in self.items)
        return not found if self.negated else found


StreamCondition = StreamFilter | StreamGroup
"""What a stream's filter list holds: conditions and groups, AND-ed."""


def parse_stream_filters(
    params: Iterable[tuple[str, str]],
    fields: dict[str, FilterField],
    *,
    max_in: int,
    max_terms: int = DEFAULT_MAX_FILTER_TERMS,
    max_depth: int = DEFAULT_MAX_FILTER_DEPTH,
) -> list[StreamCondition]:
    """The stream's filters from its query string, in the list grammar (groups included).

    Raises:
        QueryError: unknown field or operator, a malformed group, more than ``max_terms``
            conditions, groups nested deeper than ``max_depth`` (400), or a value that does
            not parse (422).
    """
    terms, groups = split_params(
        params, reserved=NOT_FILTERS, max_terms=max_terms, max_depth=max_depth
    )
    filters: list[StreamCondition] = [_stream_filter(t, fields, max_in) for t in terms]
    filters.extend(_stream_group(group, fields, max_in) for group in groups)
    return filters


def _stream_group(group: Group, fields: dict[str, FilterField], max_in: int) -> StreamGroup:
    items = tuple(
        _stream_group(item, fields, max_in) if isinstance(item, Group)
        else _stream_filter(item, fields, max_in)
        for item in group.items
    )
    return StreamGroup(group.kind, group.negated, items)


def _stream_filter(term: Term, fields: dict[str, FilterField], max_in: int) -> StreamFilter:
    name, op, raw = term.name, term.op, term.raw
    field = fields.get(name)
    if field is None:
        raise QueryError(
            f"Unknown filter field {name!r}; filterable fields: {', '.join(fields)}"
        )
    if op not in STREAM_OPERATORS:
        raise QueryError(
            f"Operator {op!r} is not available on streams; use one of: "
            + ", ".join(STREAM_OPERATORS)
        )
    check_operator(name, op, field)
    if op == "isnull":
        value: Any = parse_isnull(name, raw)  # as the list reads it: "maybe" is a 422
    elif op in ("in", "nin"):
        if term.items is None:  # a plain parameter: "" is the one value "", as before
            items = tuple(raw.split(","))
            if len(items) > max_in:
                raise QueryError(
                    f"Too many values for {term.key}: at most {max_in}", is_invalid_value=True
                )
        else:
            items = list_items(name, op, raw, term.items, max_in)
        value = frozenset(_parse(name, item, field.parse) for item in items)
    else:
        value = _parse(name, raw, field.parse)
    return StreamFilter(name, op, value)
