"""The field annotations each column type serves exactly, and the column types that change
values whatever the annotation: what ``publish`` accepts.

An annotation is what a body may carry and a response holds; a column type is what the database
stores and gives back. Where the two disagree a value changes on the way (a ``datetime`` in a
``Date`` loses its time of day, a ``float`` in a ``Numeric(6, 2)`` is rounded to the cent) or a
driver fails on it (an ``int`` sent to PostgreSQL's ``VARCHAR``). capebase serves the pairs
listed here, on every database, and ``publish`` refuses any other, naming the field, its
annotation and its column type: an allow-list, so that a column type nobody checked is refused
rather than served wrongly. A user's create or update schema is held to the same pairs, and may
narrow the model's field (constraints of its own, a ``Literal``) but not change its type.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, EmailStr, NaiveDatetime
from sqlalchemy import (
    ARRAY,
    CHAR,
    FLOAT,
    JSON,
    NCHAR,
    REAL,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    Interval,
    Numeric,
    String,
    Time,
    Uuid,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import INTERVAL
from sqlalchemy.types import TypeEngine

from .values import storage_type

MICROSECOND_DIGITS = 6
"""The fractional-second digits a column must keep: Python's, which every body may carry."""

_DATETIMES = (dt.datetime, AwareDatetime, NaiveDatetime)


@dataclass(frozen=True)
class _Rule:
    """The annotations a column type serves exactly, and how to say which."""

    accepts: Callable[[Any], bool]
    serves: str


def annotation_problem(annotation: Any, type_: TypeEngine[Any]) -> str | None:
    """Why a field annotated ``annotation`` is not served exactly from a column of ``type_``
    (as declared), or None. ``X | None`` and ``Annotated`` constraints are read as ``X``."""
    rule = _rule(type_)
    if rule is None:
        return (
            f"capebase cannot serve the column type {type_!r}: it is none of the types served "
            "exactly on every database (see the column types of the REST reference); use one "
            "of those, or leave the field out of the published model"
        )
    bare = _bare(annotation)
    if rule.accepts(bare):
        return None
    return (
        f"it is annotated {_name(bare)}, and this column type serves {rule.serves}; change "
        "the annotation or the column type (sa_type=...)"
    )


def schema_field_problem(annotation: Any, field_annotation: Any) -> str | None:
    """Why a user's schema may not declare a column's field as ``annotation`` when the
    model's field is ``field_annotation``, or None: a schema may narrow the field, not change
    it (a ``float`` for a Decimal column would be rounded, a ``str`` for a UUID one fail)."""
    if _narrows(_bare(annotation), _bare(field_annotation)):
        return None
    return (
        f"it is annotated {_name(_bare(annotation))} where the model's field is "
        f"{_name(_bare(field_annotation))}; a schema may narrow a field (constraints such as "
        "max_length or ge, a Literal of its values) but not change its type"
    )


def declaration_problem(type_: TypeEngine[Any]) -> str | None:
    """Why some database gives back another value than the one stored in a column of
    ``type_``, whatever the field's annotation, or None."""
    if isinstance(type_, Interval | INTERVAL):
        fields = getattr(type_, "fields", None)
        digits = getattr(type_, "second_precision", getattr(type_, "precision", None))
        if fields is not None or (digits is not None and digits < MICROSECOND_DIGITS):
            return (
                "PostgreSQL rounds such an interval (to its fields or its second_precision): "
                "PT1.5S would come back as PT2S; declare a plain Interval()"
            )
        return None
    stored = storage_type(type_)
    if isinstance(stored, Float) and stored.asdecimal:
        return (
            "asdecimal=True gives back a Decimal for a float; leave it out "
            "and annotate float, or use Numeric(precision, scale) for a Decimal"
        )
    if isinstance(stored, Numeric) and not isinstance(stored, Float) and not stored.asdecimal:
        return (
            "asdecimal=False gives back a float, rounded to the column's scale (1.005 as "
            "1.0); leave it out and annotate Decimal, whose digits capebase enforces"
        )
    if isinstance(stored, Uuid) and not stored.as_uuid:
        return (
            "as_uuid=False gives back text, and a value that is no UUID fails in the database; "
            "leave it out and annotate uuid.UUID"
        )
    if isinstance(stored, Float) and _is_single_precision(stored):
        return (
            "a single-precision float: PostgreSQL (and MySQL) would give 0.1 back as "
            "0.10000000149011612; declare Float() or Double(), which hold a Python float"
        )
    if isinstance(stored, CHAR | NCHAR):
        return (
            "CHAR has a fixed length: PostgreSQL pads a shorter value with spaces and MySQL "
            "strips trailing ones, so 'ab' would come back as 'ab   ' or 'ab ' as 'ab'; declare "
            "String(n) (VARCHAR) instead"
        )
    if isinstance(stored, DateTime | Time):
        digits = getattr(stored, "precision", getattr(stored, "fsp", None))
        if isinstance(digits, int) and digits < MICROSECOND_DIGITS:
            return (
                f"the column keeps {digits} fractional-second digits and the database would "
                "round a value's microseconds; leave out the precision (capebase creates it "
                "with microseconds)"
            )
    return None


def _is_single_precision(stored: Float[Any]) -> bool:
    """PostgreSQL's ``REAL`` and ``FLOAT(p)`` for p up to 24, and MySQL's ``FLOAT``, are 4-byte
    floats; a generic ``Float()`` is created as a double everywhere (``db.ddl``)."""
    if isinstance(stored, REAL):
        return True
    if stored.precision is not None:
        return stored.precision <= 24
    return isinstance(stored, FLOAT | mysql.FLOAT)


def _rule(type_: TypeEngine[Any]) -> _Rule | None:
    """What a column of ``type_`` serves, or None for a type capebase does not serve."""
    if isinstance(type_, Interval | INTERVAL):  # Interval is a TypeDecorator over DateTime
        return _Rule(lambda a: a is dt.timedelta, "timedelta")
    stored = storage_type(type_)
    if isinstance(stored, JSON):
        return _Rule(_is_json, "what JSON holds: dict[str, ...], list[...], str, int, float, "
                     "bool or Any")
    if isinstance(stored, ARRAY):
        return _Rule(lambda a: _is_array(a, stored), "a list[...] of its item type, nested "
                     "as many times as its dimensions")
    if isinstance(stored, Boolean):
        return _Rule(lambda a: a is bool, "bool")
    if isinstance(stored, Integer):
        return _Rule(lambda a: a is int or _is_literal(a, int), "int (or a Literal of ints)")
    if isinstance(stored, Float):  # asdecimal=True: refused (``declaration_problem``)
        return _Rule(lambda a: a is float, "float")
    if isinstance(stored, Numeric):  # asdecimal=False: refused (``declaration_problem``)
        return _Rule(lambda a: a is Decimal, "Decimal (with max_digits and decimal_places)")
    if isinstance(stored, Enum):
        return _enum_rule(stored)
    if isinstance(stored, String):
        return _Rule(lambda a: a is str or a is EmailStr or _is_literal(a, str),
                     "str (or EmailStr, or a Literal of strings)")
    if isinstance(stored, DateTime):
        return _datetime_rule(stored)
    if isinstance(stored, Date):
        return _Rule(lambda a: a is dt.date, "date")
    if isinstance(stored, Time):
        return _Rule(lambda a: a is dt.time, "time")
    if isinstance(stored, Uuid):  # as_uuid=False: refused (``declaration_problem``)
        return _Rule(lambda a: a is uuid.UUID, "uuid.UUID")
    return None


def _enum_rule(stored: Enum) -> _Rule:
    members = stored.enum_class
    if members is not None:
        return _Rule(lambda a: a is members, f"{members.__name__}, its enum class")
    names = frozenset(stored.enums)
    return _Rule(
        lambda a: a is str or (_is_literal(a, str) and set(get_args(a)) <= names),
        "str, or a Literal of its members",
    )


def _datetime_rule(stored: DateTime) -> _Rule:
    if stored.timezone:
        return _Rule(lambda a: a in (dt.datetime, AwareDatetime), "datetime or AwareDatetime")
    return _Rule(lambda a: a in (dt.datetime, NaiveDatetime), "datetime or NaiveDatetime")


def _is_literal(annotation: Any, kind: type[Any]) -> bool:
    """Whether ``annotation`` is a ``Literal`` of values of exactly ``kind`` (no bools for
    ``int``, no enum members for ``str``)."""
    return get_origin(annotation) is Literal and all(type(v) is kind for v in get_args(annotation))


_JSON_SCALARS: tuple[Any, ...] = (str, int, float, bool, NoneType)


def _is_json(annotation: Any) -> bool:
    """Whether every value of ``annotation`` is stored in a JSON column as itself: objects
    with string keys, arrays and scalars (a ``datetime`` or a model inside would not be)."""
    annotation = _unannotated(annotation)
    if annotation is Any or annotation in (dict, list) or annotation in _JSON_SCALARS:
        return True
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType, list):
        return all(_is_json(member) for member in args)
    if origin is dict:
        return _unannotated(args[0]) in (str, Any) and _is_json(args[1])
    if origin is Literal:
        return all(type(v) in _JSON_SCALARS for v in args)
    return False


def _is_array(annotation: Any, stored: ARRAY[Any]) -> bool:
    """Whether ``annotation`` is a list nested as deep as ``stored``'s dimensions, of items
    its item type serves."""
    for _ in range(stored.dimensions or 1):
        if get_origin(annotation) is not list:
            return False
        annotation = _bare(get_args(annotation)[0])
    rule = _rule(stored.item_type)
    return rule is not None and rule.accepts(annotation)


def _narrows(narrow: Any, wide: Any) -> bool:
    """Whether every value of ``narrow`` is one of ``wide``, in the same Python type."""
    narrow, wide = _plain(_unannotated(narrow)), _plain(_unannotated(wide))
    if wide is Any or narrow == wide:
        return True
    if narrow in _DATETIMES and wide in _DATETIMES:
        return True  # the column chooses the grammar (``wire``); the pair is checked apart
    narrow_origin, wide_origin = get_origin(narrow), get_origin(wide)
    if narrow_origin in (Union, UnionType):
        return all(_narrows(member, wide) for member in get_args(narrow))
    if wide_origin in (Union, UnionType):
        return any(_narrows(narrow, member) for member in get_args(wide))
    if narrow_origin is Literal:
        if wide_origin is Literal:
            return set(get_args(narrow)) <= set(get_args(wide))
        return isinstance(wide, type) and all(type(v) is wide for v in get_args(narrow))
    if narrow_origin is not None and narrow_origin is wide_origin:
        pairs = list(zip(get_args(narrow), get_args(wide), strict=False))
        return len(get_args(narrow)) == len(get_args(wide)) and all(
            _narrows(n, w) for n, w in pairs
        )
    return False


def _plain(annotation: Any) -> Any:
    """A bare ``dict`` or ``list`` as what a JSON column gives back for it."""
    if annotation is dict:
        return dict[str, Any]
    if annotation is list:
        return list[Any]
    return annotation


def _unannotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _bare(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and without ``| None``."""
    while True:
        annotation = _unannotated(annotation)
        args = get_args(annotation)
        if get_origin(annotation) not in (Union, UnionType) or NoneType not in args:
            return annotation
        members = [member for member in args if member is not NoneType]
        if len(members) != 1:
            return annotation
        annotation = members[0]


def _name(annotation: Any) -> str:
    if annotation is uuid.UUID:
        return "uuid.UUID"
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")

