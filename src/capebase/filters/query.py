"""The list query grammar: ``?field__op=value``, ``order_by``, ``limit``, ``offset``, ``count``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Enum,
    Interval,
    String,
    Table,
    Text,
    cast,
    not_,
    or_,
)
from sqlalchemy.types import TypeEngine

from ..errors import QueryError
from ..policy.sqlexpr import (
    binary_collated,
    codepoint_ordered,
    declaration_ordered,
    equals,
    one_of,
    strict_text,
)
from ..wire.values import (
    ValueCheck,
    enum_values,
    exact_decimal,
    integer_range,
    interval_problem,
    storage_type,
    text_problem,
    utc_problem,
    value_check,
)

RESERVED = frozenset({"order_by", "limit", "offset", "count"})
STREAM_PARAMETERS = frozenset({"last_event_id", "access_token", "ticket"})
"""What a stream's query string carries besides its filters."""
TEXT_OPERATORS = frozenset({"like", "ilike", "contains", "icontains", "startswith"})
OPERATORS = (
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin",
    "like", "ilike", "contains", "icontains", "startswith", "isnull",
)
_BOOL = TypeAdapter(bool)
LIKE_ESCAPE = "\\"
_ALL_OPERATORS = frozenset(OPERATORS)
_EQUALITY_OPERATORS = frozenset({"eq", "ne", "in", "nin", "isnull"})


@dataclass(frozen=True, slots=True)
class FilterField:
    """A column that lists may filter and sort on, with the parser for its values."""

    column: Column[Any]
    parse: Callable[[str], Any]
    is_text: bool
    operators: frozenset[str] = _ALL_OPERATORS - TEXT_OPERATORS
    """The operators that apply to the column's type."""
    kind: str = "value"
    """What the column holds, named in messages ("boolean", "JSON"...)."""

    @property
    def is_sortable(self) -> bool:
        """Whether ``order_by`` may name the column (JSON has no order on PostgreSQL)."""
        return self.kind != "JSON"


def filter_fields(table: Table) -> dict[str, FilterField]:
    """The filterable columns of ``table``, built once per published model."""
    fields = {}
    for column in table.c:
        stored = storage_type(column.type)
        # LIKE on a native ENUM fails on PostgreSQL; enums take eq/ne/in/nin only.
        is_text = isinstance(stored, String) and not isinstance(stored, Enum)
        operators, kind = _operators(stored, is_text)
        fields[column.key] = FilterField(
            column=column,
            parse=_checked(_value_parser(column.type, stored), value_check(column, stored=False)),
            is_text=is_text,
            operators=operators,
            kind=kind,
        )
    return fields


def _operators(stored: TypeEngine[Any], is_text: bool) -> tuple[frozenset[str], str]:
    """The operators that compare values of a column the same way on every database, and
    the name of its kind for messages."""
    if isinstance(stored, JSON):
        # PostgreSQL's json has neither equality nor order; a JSON null is not SQL NULL.
        return frozenset({"isnull"}), "JSON"
    if isinstance(stored, ARRAY):  # a query string has no grammar for an array
        return frozenset({"isnull"}), "array"
    if isinstance(stored, Boolean):
        return _EQUALITY_OPERATORS, "boolean"
    if isinstance(stored, Enum):
        # PostgreSQL and MariaDB order enums by declaration, SQLite by name.
        return _EQUALITY_OPERATORS, "enum"
    if is_text:
        return _ALL_OPERATORS, "text"
    return _ALL_OPERATORS - TEXT_OPERATORS, "value"


def check_operator(name: str, op: str, field: FilterField) -> None:
    """Refuse an operator that does not apply to ``field``'s type (400).

    Raises:
        QueryError: the operator does not apply.
    """
    if op in field.operators:
        return
    if op in TEXT_OPERATORS and field.kind not in ("JSON", "array", "boolean", "enum"):
        raise QueryError(f"Operator {op!r} applies to text fields only; {name!r} is not text")
    raise QueryError(
        f"Operator {op!r} does not apply to {name!r} ({field.kind}); use one of: "
        + ", ".join(o for o in OPERATORS if o in field.operators)
    )


def _value_parser(declared: TypeEngine[Any], stored: TypeEngine[Any]) -> Callable[[str], Any]:
    """The function turning one query-string value into a value of the column's type.

    It raises ``ValueError`` (pydantic's ValidationError is one) for a value the column could
    not hold, so the database never sees it (see ``values``).
    """
    if isinstance(declared, Interval):  # a TypeDecorator over DateTime where not native
        return _interval
    if isinstance(stored, Boolean):
        return _BOOL.validate_strings
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
        return _text
    if python_type is Decimal:
        return _decimal
    return TypeAdapter(python_type).validate_strings


_DECIMAL = TypeAdapter(Decimal)


def _decimal(raw: str) -> Decimal:
    return exact_decimal(_DECIMAL.validate_strings(raw))


def _checked(parse: Callable[[str], Any], check: ValueCheck | None) -> Callable[[str], Any]:
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


def _text(raw: str) -> str:
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
        name, separator, op = key.partition("__")
        if not separator:
            op = "eq"
        field = fields.get(name)
        if field is None:
            known = ", ".join(fields)
            raise QueryError(f"Unknown filter field {name!r}; filterable fields: {known}")
        if op not in OPERATORS:
            raise QueryError(f"Unknown filter operator {op!r} in {key!r}; use one of: "
                             + ", ".join(OPERATORS))
        conditions.append(_condition(name, op, raw, field, max_in))
    return conditions


def _condition(
    name: str, op: str, raw: str, field: FilterField, max_in: int
) -> ColumnElement[bool]:
    column = field.column
    check_operator(name, op, field)
    if op == "isnull":
        wanted = parse_isnull(name, raw)
        if field.kind == "JSON":
            # A JSON null (what None stores, as the ORM does) reads back as null like SQL NULL.
            is_null = or_(column.is_(None), cast(column, Text) == "null")
            return is_null if wanted else not_(is_null)
        return column.is_(None) if wanted else column.is_not(None)
    if op in TEXT_OPERATORS:
        value = _parse(name, raw, _text)
        if op in ("like", "ilike") and _ends_with_escape(value):
            # PostgreSQL fails on such a pattern, SQLite matches nothing, MySQL reads a "\".
            raise QueryError(
                f"Invalid value {raw!r} for {name!r}: a {op} pattern cannot end with the "
                f"escape character {LIKE_ESCAPE!r}; write {LIKE_ESCAPE * 2!r} for a literal one",
                is_invalid_value=True,
            )
        return _text_condition(column, op, value)
    if op in ("in", "nin"):
        items = [item for item in raw.split(",")] if raw != "" else []
        if len(items) > max_in:
            raise QueryError(
                f"Too many values for {name}__{op}: at most {max_in}", is_invalid_value=True
            )
        values = [_parse(name, item, field.parse) for item in items]
        if not values:
            raise QueryError(f"{name}__{op} needs at least one value", is_invalid_value=True)
        condition = one_of(column, values)
        return condition if op == "in" else not_(condition)
    value = _parse(name, raw, field.parse)
    if op == "eq":
        return equals(column, value)
    if op == "ne":
        return not_(equals(column, value))
    # Text compares by code point on MySQL too, as in Python (stream filters) and SQLite.
    left: ColumnElement[Any] = codepoint_ordered(column) if field.is_text else column
    comparisons: dict[str, ColumnElement[bool]] = {
        "gt": left > value, "gte": left >= value, "lt": left < value, "lte": left <= value
    }
    return comparisons[op]


def parse_isnull(name: str, raw: str) -> bool:
    """The value of ``?name__isnull=raw``: ``true``, ``false`` (or ``1``, ``0``, ``yes``...).

    Raises:
        QueryError: 422 for any other value.
    """
    wanted: bool = _parse(name, raw, _BOOL.validate_strings)
    return wanted


def _ends_with_escape(pattern: str) -> bool:
    """Whether the pattern's last character is an unescaped escape character."""
    return (len(pattern) - len(pattern.rstrip(LIKE_ESCAPE))) % 2 == 1


def _text_condition(column: Column[Any], op: str, raw: str) -> ColumnElement[bool]:
    return strict_text(_match(column, op, raw), _match(binary_collated(column), op, raw))


def _match(column: ColumnElement[Any], op: str, raw: str) -> ColumnElement[bool]:
    # ``like``/``ilike`` patterns escape with a backslash on every database, as PostgreSQL and
    # MySQL do by default and SQLite does not.
    if op == "like":
        return column.like(raw, escape=LIKE_ESCAPE)
    if op == "ilike":
        return column.ilike(raw, escape=LIKE_ESCAPE)
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
        message = f"Invalid value {raw!r} for {name!r}: {reason}"
        raise QueryError(message, is_invalid_value=True) from exc
    except ValueError as exc:
        message = f"Invalid value {raw!r} for {name!r}: {exc}"
        raise QueryError(message, is_invalid_value=True) from exc


def parse_order_by(
    raw: str | None, fields: dict[str, FilterField], pk: list[Column[Any]], dialect: str = ""
) -> list[Any]:
    """``order_by=-inserted_at,id`` → ORDER BY clauses; the primary key breaks ties. NULL
    sorts after every value ascending and before every value descending, on every
    ``dialect`` (PostgreSQL's default: NULL is the largest value).

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
            raise QueryError(
                "Unknown order_by field {!r}; sortable fields: {}".format(
                    name, ", ".join(k for k, f in fields.items() if f.is_sortable)
                )
            )
        if not field.is_sortable:
            raise QueryError(f"Cannot sort on {name!r}: {field.kind} values have no order")
        used.add(name)
        key: ColumnElement[Any] = declaration_ordered(field.column, dialect)
        if field.is_text:
            key = codepoint_ordered(key)
        if field.column.nullable and dialect != "postgresql":
            # SQLite and MySQL put NULL first ascending; MySQL has no NULLS LAST.
            is_null = field.column.is_(None)
            clauses.append(is_null.desc() if descending else is_null.asc())
        clauses.append(key.desc() if descending else key.asc())
    clauses.extend(column.asc() for column in pk if column.key not in used)
    return clauses
