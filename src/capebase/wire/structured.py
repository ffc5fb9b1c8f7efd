"""What a JSON or an ARRAY column can hold, the same on every database.

PostgreSQL's ``jsonb`` refuses ``\u0000`` in a string and its ``json`` any NaN or infinity (which
SQLite would store as null); MariaDB checks a JSON column with ``JSON_VALID``, which refuses
documents nested deeper than 31 levels; SQLite gives a JSON column numeric affinity, so a lone
integer beyond 64 bits is stored as a float (or null). A PostgreSQL array must be rectangular,
with no empty inner array, and each element must fit the item type. These would be 500s (or
silently other values) from the database; checked here, they are a 422 naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

MAX_JSON_DEPTH = 31
"""The deepest nesting of arrays and objects in a JSON value (MariaDB's ``JSON_VALID``)."""


def check_json(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON on every database, or None."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth == MAX_JSON_DEPTH:
                return f"nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                item = item.values()
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "JSON has no NaN or Infinity"
        elif (
            depth == 0 and item is value and isinstance(item, int)
            and not isinstance(item, bool) and not -(2**63) <= item < 2**63
        ):
            return (
                "an integer beyond 64 bits as the whole value (SQLite stores a JSON column's "
                "lone number as a float); put it in a list or an object"
            )
        elif isinstance(item, str) and "\x00" in item:
            return "text cannot contain NUL characters (\\u0000)"
    return None


def array_check(item_check: Callable[[Any], str | None] | None) -> Callable[[Any], str | None]:
    """The check of an ARRAY column's values whose elements ``item_check`` checks."""

    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return None
        shape = _shape(value)
        if isinstance(shape, str):
            return shape
        if item_check is not None:
            for element in _elements(value):
                problem = None if element is None else item_check(element)
                if problem is not None:
                    return f"an element: {problem}"
        return None

    return check


def _shape(value: list[Any]) -> tuple[int, ...] | str:
    """The dimensions of a rectangular array, or why it is not one (PostgreSQL's arrays are)."""
    nested = [isinstance(element, list) for element in value]
    if not any(nested):
        return (len(value),)
    if not all(nested):
        return "an array cannot mix inner arrays and values"
    shapes = [_shape(element) for element in value]
    problems = [shape for shape in shapes if isinstance(shape, str)]
    if problems:
        return problems[0]
    inner = [shape for shape in shapes if not isinstance(shape, str)]
    if len(set(inner)) > 1:
        return "the inner arrays must all have the same length"
    if inner[0][0] == 0:
        return "an inner array cannot be empty"
    return (len(value), *inner[0])


def _elements(value: list[Any]) -> list[Any]:
    elements: list[Any] = []
    for element in value:
        elements.extend(_elements(element) if isinstance(element, list) else [element])
    return elements


def json_safe(value: Any) -> Any:
    """``value`` with each NaN or infinity as its text, so an error can quote it as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value
