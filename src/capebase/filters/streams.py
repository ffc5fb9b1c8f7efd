"""Stream filters: the list grammar's ``?field__op=value`` conditions a stream may carry,
parsed once and evaluated in Python on each change's row images."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import QueryError
from .query import STREAM_PARAMETERS, FilterField, _parse, check_operator, parse_isnull

STREAM_OPERATORS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "isnull")
NOT_FILTERS = STREAM_PARAMETERS
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


def parse_stream_filters(
    params: Iterable[tuple[str, str]], fields: dict[str, FilterField], *, max_in: int
) -> list[StreamFilter]:
    """The stream's filters from its query string, in the list grammar.

    Raises:
        QueryError: unknown field or operator (400), or a value that does not parse (422).
    """
    filters: list[StreamFilter] = []
    for key, raw in params:
        if key in NOT_FILTERS:
            continue
        name, _, op = key.partition("__")
        op = op or "eq"
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
            items = raw.split(",")
            if len(items) > max_in:
                raise QueryError(
                    f"Too many values for {key}: at most {max_in}", is_invalid_value=True
                )
            value = frozenset(_parse(name, item, field.parse) for item in items)
        else:
            value = _parse(name, raw, field.parse)
        filters.append(StreamFilter(name, op, value))
    return filters
