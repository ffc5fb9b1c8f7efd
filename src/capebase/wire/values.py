"""What a column can hold, checked before a value reaches the database, the same on every one.

Drivers reject some values with errors that are not the client's to read (PostgreSQL refuses NUL
characters and integers beyond the column's width), and SQLite stores values PostgreSQL and
MySQL refuse (overlong strings). Checking here gives every database the same 422.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Column,
    DateTime,
    Enum,
    Float,
    Integer,
    Interval,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Table,
    Time,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import CompileError
from sqlalchemy.types import TypeDecorator, TypeEngine

from .structured import array_check, check_json

ValueCheck = Callable[[Any], str | None]
"""Returns why a value does not fit a column, or None when it does."""

# Widths as PostgreSQL and MySQL store them; SQLite's INTEGER is wider, but the same model
# should accept the same values on every database.
_INT_BITS: tuple[tuple[type[Integer], int], ...] = (
    (SmallInteger, 16),
    (BigInteger, 64),
    (Integer, 32),
)



def storage_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """The type a column is stored as: SQLModel's ``AutoString`` and ``UTCDateTime`` are
    TypeDecorators over ``String`` and ``DateTime``."""
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return type_


def integer_range(type_: TypeEngine[Any]) -> tuple[int, int] | None:
    """The smallest and largest value of an integer type, or None for other types."""
    stored = storage_type(type_)
    if not isinstance(stored, Integer):
        return None
    bits = next(bits for kind, bits in _INT_BITS if isinstance(stored, kind))
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def enum_values(type_: TypeEngine[Any]) -> tuple[str, ...] | None:
    """The values of an ``Enum`` column declared with strings (``Enum("red", "green")``),
    or None for other types: its field is a ``str``, which takes no other value."""
    stored = storage_type(type_)
    if isinstance(stored, Enum) and stored.enum_class is None:
        return tuple(stored.enums)
    return None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text on every database, or None."""
    if "\x00" in value:
        return "text cannot contain NUL characters"
    return None


_EPOCH = datetime(1970, 1, 1)
# Where intervals are not native (SQLite, MySQL) SQLAlchemy stores the epoch plus the interval
# as a DATETIME, whose range is years 1000 to 9999 on MySQL.
INTERVAL_RANGE = (datetime(1000, 1, 1) - _EPOCH, datetime(9999, 12, 31, 23, 59, 59) - _EPOCH)


def interval_problem(value: timedelta) -> str | None:
    """Why ``value`` cannot be stored as an interval on every database, or None."""
    low, high = INTERVAL_RANGE
    if not low <= value <= high:
        return f"out of range for an interval ({low.days} to {high.days} days)"
    return None


def _check_interval(value: Any) -> str | None:
    return interval_problem(value) if isinstance(value, timedelta) else None


def _check_finite(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (MySQL cannot store infinity or NaN)"
    return None


def _check_aware(value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    if value.utcoffset() is None:
        return "needs a time zone offset (such as Z or +02:00)"
    return utc_problem(value)


def utc_problem(value: datetime) -> str | None:
    """Why ``value`` cannot be stored in UTC (it is stored so), or None."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        return "out of range once converted to UTC"
    return None


MAX_DECIMAL_PLACES = 1000
"""Digits after the point a Decimal filter value may have (drivers refuse huge exponents)."""


def decimal_check(precision: int, scale: int, *, stored: bool = True) -> ValueCheck:
    """The check of a ``NUMERIC(precision, scale)`` value: finite, and no larger than the
    column can hold (drivers fail on a value far beyond it, even in a comparison); a value
    ``stored`` has at most ``scale`` digits after the point, which the database would round."""
    whole_digits = precision - scale
    places = scale if stored else MAX_DECIMAL_PLACES

    def check(value: Any) -> str | None:
        if not isinstance(value, Decimal):
            return None
        if not value.is_finite():
            return "must be a finite number"
        if value and value.adjusted() >= whole_digits:
            return f"out of range for this column (at most {whole_digits} digits before the point)"
        if decimal_places(value) > places:
            return f"more than {places} digits after the point"
        return None

    return check


def exact_decimal(value: Decimal) -> Decimal:
    """``value`` with the same number and no trailing zeros (zero as ``0``), without rounding.

    ``0E+300000`` and ``1.000…0`` (20,000 zeros) are fine numbers that drivers refuse to
    send (asyncpg: "exponent is too large"); the checks bound the digits that remain.
    """
    if not value.is_finite():
        return value
    if not value:
        return Decimal(0)
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    kept = len("".join(map(str, digits)).rstrip("0"))
    return Decimal((sign, digits[:kept], exponent + len(digits) - kept))


def decimal_places(value: Decimal) -> int:
    """The digits after the point of a finite ``value``, trailing zeros left out (exactly:
    ``normalize()`` would round to the context's precision)."""
    _sign, digits, exponent = value.as_tuple()
    if not value or not isinstance(exponent, int):
        return 0
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing_zeros))


def _check_naive_time(value: Any) -> str | None:
    if isinstance(value, time) and value.tzinfo is not None:
        return "cannot carry a time zone offset (the column stores a time of day)"
    return None


def text_length(column: Column[Any], dialect: str = "") -> int | None:
    """The characters a text ``column`` holds on ``dialect``, or None for no limit (or no
    text): SQLModel's ``AutoString`` (a plain ``str``) is ``VARCHAR(255)`` on MySQL."""
    return _length(column.type, dialect)


def _length(type_: TypeEngine[Any], dialect: str) -> int | None:
    stored = storage_type(type_)
    if not isinstance(stored, String):
        return None
    if stored.length is None and dialect in ("mysql", "mariadb"):
        default: int | None = getattr(type_, "mysql_default_length", None)
        return default
    return stored.length


def value_check(
    column: Column[Any], *, stored: bool = True, dialect: str = ""
) -> ValueCheck | None:
    """The check for values of ``column`` on ``dialect``, or None when every value of its
    Python type fits.

    ``stored=False`` checks a value compared with the column (a filter), not stored in it: a
    text longer than the column is then a fine value that no row equals, and a decimal may
    have more places than the column keeps.
    """
    return _type_check(column.type, stored, dialect)


def _type_check(type_: TypeEngine[Any], stored: bool, dialect: str) -> ValueCheck | None:
    if isinstance(type_, Interval):  # a TypeDecorator over DateTime where not native
        return _check_interval
    bounds = integer_range(type_)
    if bounds is not None:
        low, high = bounds

        def check_integer(value: Any) -> str | None:
            if isinstance(value, int) and not low <= value <= high:
                return f"out of range for this column ({low} to {high})"
            return None

        return check_integer
    kind = storage_type(type_)
    if isinstance(kind, String):
        length = _length(type_, dialect) if stored else None

        def check_text(value: Any) -> str | None:
            if not isinstance(value, str):
                return None
            if length is not None and len(value) > length:
                return f"longer than this column's {length} characters"
            return text_problem(value)

        return check_text
    if isinstance(kind, Float):
        return _check_finite
    if isinstance(kind, Numeric) and kind.precision is not None:
        return decimal_check(kind.precision, kind.scale or 0, stored=stored)
    if isinstance(kind, DateTime) and kind.timezone:
        return _check_aware  # SQLModel's UTCDateTime refuses naive values with a 500
    if isinstance(kind, Time):
        return _check_naive_time
    if isinstance(kind, JSON):
        return check_json
    if isinstance(kind, ARRAY):
        return array_check(_type_check(kind.item_type, stored, dialect))
    return None


class ValueChecks:
    """The value checks of one table on ``dialect``, built once when a model is published."""

    def __init__(self, table: Table, dialect: str = "") -> None:
        self._checks = {
            column.key: check
            for column in table.c
            if (check := value_check(column, dialect=dialect)) is not None
        }

    def problems(self, values: Mapping[str, Any]) -> list[tuple[str, Any, str]]:
        """``(field, value, reason)`` for each value in ``values`` its column cannot hold."""
        found = []
        for field, value in values.items():
            check = self._checks.get(field)
            if check is not None and value is not None:
                reason = check(value)
                if reason is not None:
                    found.append((field, value, reason))
        return found


SQLITE_DECIMAL_DIGITS = 15
"""The digits a Decimal keeps on SQLite, where SQLAlchemy stores it as a float."""


def unserved_problem(column: Column[Any], dialect: str = "") -> str | None:
    """Why the generated routes cannot serve ``column``'s type exactly on ``dialect``, or
    None.

    ``publish`` refuses such a model, so the problem is found at start-up, not as a 500.
    """
    stored = storage_type(column.type)
    if isinstance(stored, LargeBinary):
        return (
            "bytes have no exact JSON form here; store base64 text in a str field, or leave "
            "the field out of the published model"
        )
    if (
        isinstance(stored, Numeric)
        and not isinstance(stored, Float)
        and stored.asdecimal
        and (stored.precision is None or stored.scale is None)
    ):
        return (
            "a Decimal needs max_digits and decimal_places (Field(max_digits=12, "
            "decimal_places=2)): without them MySQL keeps no decimal places and SQLite "
            "rounds to a float"
        )
    if (
        dialect == "sqlite"
        and isinstance(stored, Numeric)
        and not isinstance(stored, Float)
        and stored.asdecimal
        and (stored.precision or 0) > SQLITE_DECIMAL_DIGITS
    ):
        return (
            f"SQLite stores a Decimal as a float, exact to {SQLITE_DECIMAL_DIGITS} digits; "
            f"use max_digits={SQLITE_DECIMAL_DIGITS} or fewer, or PostgreSQL or MariaDB"
        )
    if isinstance(stored, ARRAY) and dialect != "postgresql":
        return (
            "ARRAY exists on PostgreSQL only; store a list in a JSON column "
            "(sa_type=JSON) to serve it on every database"
        )
    if not _renders(column.type, dialect):
        return f"the database ({dialect}) has no such column type; choose a type it has"
    if isinstance(stored, Time) and stored.timezone:
        return (
            "Time(timezone=True) (PostgreSQL's timetz) cannot be served alike everywhere: "
            "SQLite and MySQL store no offset, and a time of day with an offset names no "
            "instant to compare by; store a `datetime`, or a plain `time` and the time zone "
            "in a field of its own"
        )
    if (
        dialect in ("sqlite", "mysql")
        and type(column.type) is DateTime  # not SQLModel's UTCDateTime, which converts to UTC
        and column.type.timezone
    ):
        return (
            "DateTime(timezone=True) is stored without its offset here, so an aware datetime "
            "would come back as another instant; declare the field as a plain `datetime` "
            "(SQLModel stores it in UTC on every database) or use "
            "sa_type=sqlmodel.sql.sqltypes.UTCDateTime"
        )
    return None


@cache
def _dialect(name: str) -> Dialect | None:
    """A dialect of ``name`` to render types with (no driver is imported), or None."""
    try:
        return make_url(f"{name}://").get_dialect()()
    except Exception:  # an unknown dialect: its tables' DDL will say what is wrong
        return None


def _renders(type_: TypeEngine[Any], dialect: str) -> bool:
    """Whether ``type_`` has a column type on ``dialect`` (``JSONB`` has none on MySQL)."""
    target = _dialect(dialect) if dialect else None
    if target is None:
        return True
    try:
        type_.compile(dialect=target)
    except CompileError:
        return False
    return True
