"""Query-string values as values of a column's type: the parsers of filter values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Boolean, DateTime, Float, Interval, Numeric, literal
from sqlalchemy.types import TypeEngine

from ..wire.values import (
    ValueCheck,
    enum_values,
    exact_decimal,
    integer_range,
    interval_problem,
    storage_type,
    text_problem,
    utc_problem,
)

BOOL = TypeAdapter(bool)


def value_parser(declared: TypeEngine[Any], stored: TypeEngine[Any]) -> Callable[[str], Any]:
    """The function turning one query-string value into a value of the column's type.

    It raises ``ValueError`` (pydantic's ValidationError is one) for a value the column could
    not hold, so the database never sees it (see ``values``).
    """
    if isinstance(declared, Interval):  # a TypeDecorator over DateTime where not native
        return _interval
    if isinstance(stored, Boolean):
        return BOOL.validate_strings
    bounds = integer_range(stored)
    if bounds is not None:
        return _integer_parser(*bounds)
    if isinstance(stored, DateTime):
        return _datetime_parser(is_aware=bool(stored.timezone))
    members = enum_values(stored)
    if members is not None:
        return _member_parser(members)
    try:
        python_type: Any = stored.python_type
    except NotImplementedError:
        python_type = str
    if python_type is str:
        return parse_text
    if python_type is Decimal:
        return _decimal
    return TypeAdapter(python_type).validate_strings


_DECIMAL = TypeAdapter(Decimal)


def _decimal(raw: str) -> Decimal:
    return exact_decimal(_DECIMAL.validate_strings(raw))


def checked(parse: Callable[[str], Any], check: ValueCheck | None) -> Callable[[str], Any]:
    """``parse``, refusing what the column cannot hold as a body value would be refused."""
    if check is None:
        return parse

    def parse_and_check(raw: str) -> Any:
        value = parse(raw)
        problem = check(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    return parse_and_check


def _member_parser(members: tuple[str, ...]) -> Callable[[str], str]:
    """An enum of strings: a value that is none of its members fails in PostgreSQL's
    comparison with its native enum."""
    allowed = frozenset(members)

    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"not one of {', '.join(map(repr, members))}")
        return raw

    return parse


_TIMEDELTA = TypeAdapter(timedelta)


def _interval(raw: str) -> timedelta:
    value: timedelta = _TIMEDELTA.validate_strings(raw)
    problem = interval_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def parse_text(raw: str) -> str:
    problem = text_problem(raw)
    if problem is not None:
        raise ValueError(problem)
    return raw


def _integer_parser(low: int, high: int) -> Callable[[str], int]:
    adapter = TypeAdapter(int)

    def parse(raw: str) -> int:
        value: int = adapter.validate_strings(raw)
        if not low <= value <= high:
            raise ValueError(f"out of range for this column ({low} to {high})")
        return value

    return parse


def _datetime_parser(*, is_aware: bool) -> Callable[[str], datetime]:
    """Datetimes without an offset are UTC; naive columns are compared in UTC."""
    adapter = TypeAdapter(datetime)

    def parse(raw: str) -> datetime:
        value: datetime = adapter.validate_strings(raw)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC) if is_aware else value
        problem = utc_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value if is_aware else value.astimezone(UTC).replace(tzinfo=None)

    return parse


def exact_bind(column: Any, value: Any) -> Any:
    """``value`` as a filter compares it with ``column``: a Decimal against a NUMERIC(p, s)
    column is bound as NUMERIC without precision. PostgreSQL casts a parameter to the
    column's type, which rounds ``1.005`` to ``1.01`` (and a value with more digits than
    ``p`` fails); SQLite, MariaDB and the stream filters compare the exact value."""
    if isinstance(value, Decimal):
        stored = storage_type(column.type)
        if isinstance(stored, Numeric) and not isinstance(stored, Float):
            return literal(value, type_=Numeric(asdecimal=True))
    return value
