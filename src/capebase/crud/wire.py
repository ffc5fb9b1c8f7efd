"""Column values in JSON bodies: the grammar OpenAPI publishes for each, and the check that
makes validation accept exactly it.

The generated routes validate a body's bytes in JSON mode against strict schemas (``routes``,
``schemas``), where JSON types are what the schema says: ``0`` is no boolean, ``false`` no
integer. Strings still need a look: pydantic reads dates and times more loosely than their
published ``format`` (a Unix time ``"0"`` as a datetime, a UUID without dashes), and a column
without a time zone is served without an offset, which the ``date-time`` and ``time`` formats
require. So each such value gets its grammar checked before pydantic parses it, and where
pydantic's schema is not what capebase serves, the published schema is the grammar's pattern.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import AwareDatetime, BeforeValidator, NaiveDatetime, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError
from sqlalchemy import Column, DateTime, Time

from .values import integer_range, storage_type

_FRACTION = r"(\.[0-9]{1,6})?"  # microseconds: what every database keeps
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
_DATE = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = rf"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]{_FRACTION}"


@dataclass(frozen=True)
class Grammar:
    """What a column's JSON value must look like: a string of a grammar (or a number)."""

    regex: re.Pattern[str]
    """Matched in full; written so that ECMA-262 (OpenAPI's ``pattern``) reads it the same."""
    expected: str
    """The message of a value that does not fit: 'Input should be {expected}'."""
    published: dict[str, Any] | None = None
    """The JSON schema OpenAPI shows in place of pydantic's, or None to keep pydantic's."""
    published_mode: Literal["validation"] | None = None
    """Where ``published`` applies: request bodies only, or responses too (None)."""
    numbers: bool = False
    """Whether JSON numbers are accepted too (Decimal)."""

    def check(self, value: Any) -> Any:
        """``value`` if it fits; raises otherwise."""
        if isinstance(value, str):
            if self.regex.fullmatch(value) is not None:
                return value
        elif self.numbers and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise PydanticCustomError(
            "string_format", "Input should be {expected}", {"expected": self.expected}
        )

    def metadata(self) -> tuple[Any, ...]:
        """The ``Annotated`` metadata of a type of this grammar.

        A checked value reaches pydantic's own validator as a Python value, which strict mode
        would refuse for a string: the type is validated laxly, behind this check.
        """
        checks = (Strict(False), BeforeValidator(self.check))
        if self.published is None:
            return checks
        return (*checks, WithJsonSchema(self.published, mode=self.published_mode))


def _grammar(pattern: str, expected: str, publish: str | None = None) -> Grammar:
    """A grammar of strings; ``publish`` describes it in a schema of its own (``pattern``)
    in place of pydantic's ``format``."""
    published = None
    if publish is not None:
        published = {"type": "string", "pattern": f"^{pattern}$", "description": publish}
    return Grammar(re.compile(pattern), expected, published)


DATE = _grammar(_DATE, "a date, YYYY-MM-DD")
AWARE_DATETIME = _grammar(
    f"{_DATE}T{_TIME}{_OFFSET}",
    "a date-time with an offset, like 2024-05-01T12:30:00Z (at most 6 fractional digits)",
)
NAIVE_DATETIME = _grammar(
    f"(?!0000){_DATE}T{_TIME}",  # published as this pattern: years 1 to 9999, as Python's
    "a date-time without an offset, like 2024-05-01T12:30:00 (the column stores none)",
    publish="A date-time without an offset (the column stores none)",
)
AWARE_TIME = _grammar(f"{_TIME}{_OFFSET}", "a time with an offset, like 12:30:00Z")
NAIVE_TIME = _grammar(
    _TIME,
    "a time without an offset, like 12:30:00 (the column stores none)",
    publish="A time of day without an offset",
)
UUID = _grammar(
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "a UUID, like 0b7ef8a4-3b1c-4d2e-9f50-6a7b8c9d0e1f",
)
# ISO 8601 durations as pydantic writes them (years of 365 days, then days; seconds with up to
# 6 fractional digits; a leading "-"), and weeks. No months (their length varies), no empty
# "P" or "T": pydantic would also read "1 day" or "P1DT", which the schema does not allow.
_DURATION = (
    r"[+-]?P(?=[0-9]|T[0-9])([0-9]+Y)?([0-9]+W)?([0-9]+D)?"
    r"(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+(\.[0-9]{1,6})?S)?)?"
)
DURATION = _grammar(
    _DURATION,
    "an ISO 8601 duration, like P1DT2H30M or -PT0.5S",
    publish="An ISO 8601 duration: [-]P[nY][nW][nD][T[nH][nM][n[.ffffff]S]] (a year is 365 days)",
)
_DECIMAL = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
DECIMAL = Grammar(
    re.compile(_DECIMAL),
    "a number, or a string of one like '12.50'",
    {"anyOf": [{"type": "number"}, {"type": "string", "pattern": f"^{_DECIMAL}$"}]},
    published_mode="validation",  # responses carry strings, as pydantic says
    numbers=True,
)


def _integral(value: Any) -> Any:
    """``value`` if it is a JSON integer: JSON Schema's ``integer`` includes ``5.0``, which
    pydantic's strict mode refuses."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return value
    raise PydanticCustomError("int_type", "Input should be a valid integer")


def grammar_of(python_type: Any, column: Column[Any] | None) -> Grammar | None:
    """The grammar of JSON strings for a value of ``python_type`` stored in ``column`` (None
    for a field that is no column), or None when pydantic's own reading is exact."""
    stored = storage_type(column.type) if column is not None else None
    if python_type is AwareDatetime:
        return AWARE_DATETIME
    if python_type is NaiveDatetime:
        return NAIVE_DATETIME
    if python_type is dt.datetime:
        aware = not isinstance(stored, DateTime) or bool(stored.timezone)
        return AWARE_DATETIME if aware else NAIVE_DATETIME
    if python_type is dt.time:
        aware = isinstance(stored, Time) and bool(stored.timezone)
        return AWARE_TIME if aware else NAIVE_TIME
    if python_type is dt.date:
        return DATE
    if python_type is uuid.UUID:
        return UUID
    if python_type is Decimal:
        return DECIMAL
    if python_type is dt.timedelta:
        return DURATION
    return None


def wire_annotation(
    annotation: Any, column: Column[Any] | None, constraints: Sequence[Any] = ()
) -> Any:
    """``annotation`` with the grammar checks (and published schemas) of the types in it,
    and the range of an integer column where the field's ``constraints`` (its metadata) set
    none; ``X | None`` keeps its ``None``."""
    if get_origin(annotation) in (Union, UnionType):
        members = get_args(annotation)
        wired = [wire_annotation(member, column, constraints) for member in members]
        if all(a is b for a, b in zip(wired, members, strict=True)):
            return annotation
        return reduce(operator.or_, wired)
    if annotation is int and column is not None:
        return _integer(column, constraints)
    grammar = grammar_of(annotation, column)
    if grammar is None:
        return annotation
    return Annotated[(annotation, *grammar.metadata())]


def _integer(column: Column[Any], constraints: Sequence[Any]) -> Any:
    """An integer column's ``int``: its range published (so that clients know), unless the
    field has bounds of its own, which pydantic would let these replace."""
    bounds = integer_range(column.type)
    if bounds is None:
        return int
    limits: list[Any] = []
    if not any(isinstance(c, Ge | Gt) for c in constraints):
        limits.append(Ge(bounds[0]))
    if not any(isinstance(c, Le | Lt) for c in constraints):
        limits.append(Le(bounds[1]))
    # The bounds first: they belong to the int schema, which the check wraps.
    return Annotated[(int, *limits, Strict(False), BeforeValidator(_integral))]
