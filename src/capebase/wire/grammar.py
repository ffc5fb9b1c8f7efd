"""Column values in JSON bodies: the grammar OpenAPI publishes for each, and the check that
makes validation accept exactly it.

The generated routes validate a body's bytes in JSON mode against strict schemas (``routes``,
``schemas``), where JSON types are what the schema says: ``0`` is no boolean, ``false`` no
integer. Strings still need a look: pydantic reads dates and times more loosely than their
published ``format`` (a Unix time ``"0"`` as a datetime, a UUID without dashes), and a column
without a time zone is served without an offset, which the ``date-time`` and ``time`` formats
require. So each such value gets its grammar checked before pydantic parses it, and where
pydantic's schema is not what capebase serves, the published schema is the grammar's pattern.
A column's limits (an integer's range, a text's length, a decimal's digits) join the field's
schema where the field declares none, and a JSON number sent for a Decimal is read again from
its text (``ExactDecimals``), since pydantic reads it as a double.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import reduce
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen
from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    Field,
    NaiveDatetime,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError
from sqlalchemy import Column, DateTime, Numeric

from .values import enum_values, exact_decimal, integer_range, storage_type, text_length

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
        elif self.numbers and isinstance(value, int | float | Decimal) and not isinstance(
            value, bool
        ):  # a Decimal: one ``ExactDecimals`` read from the body's text
            return value
        raise PydanticCustomError(
            "string_format", "Input should be {expected}", {"expected": self.expected}
        )

    def metadata(self) -> tuple[Any, ...]:
        """The ``Annotated`` metadata of a type of this grammar.

        A checked value reaches pydantic's own validator as a Python value, which strict mode
        would refuse for a string: the type is validated laxly, behind this check.
        """
        checks: tuple[Any, ...] = (Strict(False), BeforeValidator(self.check))
        if self.numbers:  # a Decimal: sent to the database in a form it takes
            checks = (*checks, AfterValidator(exact_decimal))
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


def decimal_grammar(precision: int | None = None, scale: int | None = None) -> Grammar:
    """The grammar of a Decimal; with a ``NUMERIC(precision, scale)`` column's digits, which
    its published schema states (the number's bounds, ``x-max-digits``, ``x-decimal-places``)."""
    number: dict[str, Any] = {"type": "number"}
    published: dict[str, Any] = {
        "anyOf": [number, {"type": "string", "pattern": f"^{_DECIMAL}$"}]
    }
    if precision is not None and scale is not None:
        bound = 10 ** (precision - scale)
        number.update(exclusiveMinimum=-bound, exclusiveMaximum=bound)
        published.update({
            "description": f"A decimal of at most {precision} digits, {scale} after the point",
            "x-max-digits": precision,
            "x-decimal-places": scale,
        })
    return Grammar(
        re.compile(_DECIMAL),
        "a number, or a string of one like '12.50'",
        published,
        published_mode="validation",  # responses carry strings, as pydantic says
        numbers=True,
    )


DECIMAL = decimal_grammar()


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
    if python_type is dt.time:  # publish refuses Time(timezone=True) (``values``)
        return NAIVE_TIME
    if python_type is dt.date:
        return DATE
    if python_type is uuid.UUID:
        return UUID
    if python_type is Decimal:
        if isinstance(stored, Numeric) and stored.precision is not None:
            return decimal_grammar(stored.precision, stored.scale or 0)
        return DECIMAL
    if python_type is dt.timedelta:
        return DURATION
    return None


def wire_annotation(
    annotation: Any,
    column: Column[Any] | None,
    constraints: Sequence[Any] = (),
    dialect: str = "",
) -> Any:
    """``annotation`` with the grammar checks (and published schemas) of the types in it,
    and the limits of the column on ``dialect`` (an integer's range, a text's length, a
    decimal's digits) where the field's ``constraints`` (its metadata) set none;
    ``X | None`` keeps its ``None``."""
    if get_origin(annotation) in (Union, UnionType):
        members = get_args(annotation)
        wired = [wire_annotation(member, column, constraints, dialect) for member in members]
        if all(a is b for a, b in zip(wired, members, strict=True)):
            return annotation
        return reduce(operator.or_, wired)
    if annotation is int and column is not None:
        return _integer(column, constraints)
    if annotation is str and column is not None:
        values = enum_values(column.type)
        if values is not None:  # published as the members, which pydantic then enforces
            return Literal[values]
        length = text_length(column, dialect)
        if length is None or any(isinstance(c, MaxLen) for c in constraints):
            return annotation
        return Annotated[str, MaxLen(length)]
    grammar = grammar_of(annotation, column)
    if grammar is None:
        return annotation
    return Annotated[(annotation, *_digits(annotation, column, constraints),
                      *grammar.metadata())]


def _digits(annotation: Any, column: Column[Any] | None, constraints: Sequence[Any]) -> list[Any]:
    """A Decimal column's digits as pydantic constraints, unless the field declares its own
    (``sa_column=Column(Numeric(10, 2))`` declares none): the database would round a value
    with more decimal places."""
    stored = storage_type(column.type) if column is not None else None
    if (
        annotation is not Decimal
        or not isinstance(stored, Numeric)
        or stored.precision is None
        or any(getattr(c, "max_digits", None) is not None for c in constraints)
        or any(getattr(c, "decimal_places", None) is not None for c in constraints)
    ):
        return []
    return [Field(max_digits=stored.precision, decimal_places=stored.scale or 0)]


class ExactDecimals:
    """The Decimal fields of a body schema, read again from the body's JSON text: pydantic
    reads a JSON number as a double first, which keeps about 16 significant digits, so that
    ``12345678901234567890.5`` would be stored as ``12345678901234567000``."""

    def __init__(self, fields: dict[str, tuple[str, TypeAdapter[Any]]]) -> None:
        self._fields = fields  # JSON key -> (field name, the field's validator)

    @classmethod
    def of(cls, schema: type[BaseModel]) -> ExactDecimals | None:
        """The reader of ``schema``'s Decimal fields, or None when it has none."""
        fields: dict[str, tuple[str, TypeAdapter[Any]]] = {}
        for name, info in schema.model_fields.items():
            if _holds_decimal(info.annotation):
                annotation: Any = info.annotation
                if info.metadata:  # the field's own constraints (max_digits...)
                    annotation = Annotated[(annotation, *info.metadata)]
                fields[info.alias or name] = (name, TypeAdapter(annotation))
        return cls(fields) if fields else None

    def apply(self, body: bytes, value: BaseModel) -> BaseModel:
        """``value`` (validated from ``body``) with its Decimal fields sent as JSON numbers
        validated again from their exact text.

        Raises:
            RequestValidationError: an exact number the field does not take (more digits).
        """
        sent = json.loads(body, parse_float=Decimal)
        updates: dict[str, Any] = {}
        for key, (name, field) in self._fields.items():
            number = sent.get(key)
            if not isinstance(number, int | Decimal) or isinstance(number, bool):
                continue
            exact = Decimal(number)
            if exact == getattr(value, name):
                continue
            try:
                updates[name] = field.validate_python(exact)
            except ValidationError as exc:
                raise RequestValidationError([
                    {**error, "loc": ("body", key, *error["loc"]), "input": str(exact)}
                    for error in exc.errors(include_url=False)
                ]) from None
        return value.model_copy(update=updates) if updates else value


def _holds_decimal(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, UnionType, Annotated):
        return any(_holds_decimal(member) for member in get_args(annotation))
    return annotation is Decimal


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
