"""The list query grammar: ``?field__op=value``, ``order_by``, ``limit``, ``offset``, ``count``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import (
    ARRAY,
    JSON,
    Boolean,
    Column,
    ColumnElement,
    Enum,
    String,
    Table,
    Text,
    and_,
    cast,
    false,
    func,
    not_,
    or_,
)
from sqlalchemy.types import TypeEngine

from ..errors import QueryError
from ..limits import DEFAULT_MAX_FILTER_DEPTH, DEFAULT_MAX_FILTER_TERMS
from ..policy.sqlexpr import (
    binary_collated,
    codepoint_ordered,
    equals,
    one_of,
    strict_text,
)
from ..wire.values import storage_type, value_check
from .groups import Group, Term, split_params
from .related import related_term
from .values import BOOL, checked, exact_bind, parse_text, value_parser

if TYPE_CHECKING:
    from .related import RelatedFilters

RESERVED = frozenset(
    {"order_by", "limit", "offset", "count", "select", "after", "envelope", "expand"}
)
"""What a list's query string carries besides its filters."""
STREAM_PARAMETERS = frozenset({"last_event_id", "access_token", "ticket"})
"""What a stream's query string carries besides its filters."""
TEXT_OPERATORS = frozenset({"like", "ilike", "contains", "icontains", "startswith"})
OPERATORS = (
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin",
    "like", "ilike", "contains", "icontains", "startswith", "isnull",
)
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
            parse=checked(value_parser(column.type, stored), value_check(column, stored=False)),
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


def parse_filters(
    params: Iterable[tuple[str, str]],
    fields: dict[str, FilterField],
    *,
    max_in: int,
    max_terms: int = DEFAULT_MAX_FILTER_TERMS,
    max_depth: int = DEFAULT_MAX_FILTER_DEPTH,
    related: RelatedFilters | None = None,
) -> list[ColumnElement[bool]]:
    """Turn query parameters into WHERE conditions (AND-ed): ``field__op=value`` conditions
    and groups (``or=(...)``, ``not.and=(...)``..., see ``groups``); with ``related``,
    conditions on related fields too (``relation__field__op=value``, see ``related``).

    Raises:
        QueryError: 400 for an unknown field or operator, a malformed group, more than
            ``max_terms`` conditions or groups nested deeper than ``max_depth``; 422 for a
            value that does not parse.
    """
    terms, groups = split_params(
        params, reserved=RESERVED, max_terms=max_terms, max_depth=max_depth
    )
    conditions = [_term_condition(t, fields, max_in, related) for t in terms]
    conditions.extend(_group_condition(group, fields, max_in, related) for group in groups)
    return conditions


def _group_condition(
    group: Group, fields: dict[str, FilterField], max_in: int, related: RelatedFilters | None
) -> ColumnElement[bool]:
    parts = [
        _group_condition(item, fields, max_in, related) if isinstance(item, Group)
        else _term_condition(item, fields, max_in, related)
        for item in group.items
    ]
    combined = and_(*parts) if group.kind == "and" else or_(*parts)
    if not group.negated:
        return combined
    # Two-valued, as streams evaluate it: a condition on NULL is false, so NOT makes it true
    # (SQL's NOT would leave it unknown, and the row out). Not ``IS NOT TRUE``: SQLAlchemy
    # renders ``NOT (a) IS NOT 1`` for a negated term, which SQL reads as NOT (a IS NOT 1).
    return not_(func.coalesce(combined, false()))


def _term_condition(
    term: Term, fields: dict[str, FilterField], max_in: int, related: RelatedFilters | None
) -> ColumnElement[bool]:
    field = fields.get(term.name)
    if field is None and related is not None:
        found = related_term(term, related)
        if found is not None:
            name, op, field, scope = found
            _check_known(op, term.key)
            return scope(_condition(name, op, term.raw, field, max_in, term.items))
    if field is None:
        known = ", ".join(fields)
        raise QueryError(f"Unknown filter field {term.name!r}; filterable fields: {known}")
    _check_known(term.op, term.key)
    return _condition(term.name, term.op, term.raw, field, max_in, term.items)


def _check_known(op: str, key: str) -> None:
    if op not in OPERATORS:
        raise QueryError(f"Unknown filter operator {op!r} in {key!r}; use one of: "
                         + ", ".join(OPERATORS))


def _condition(
    name: str,
    op: str,
    raw: str,
    field: FilterField,
    max_in: int,
    items: tuple[str, ...] | None = None,
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
        value = _parse(name, raw, parse_text)
        if op in ("like", "ilike") and _ends_with_escape(value):
            # PostgreSQL fails on such a pattern, SQLite matches nothing, MySQL reads a "\".
            raise QueryError(
                f"Invalid value {raw!r} for {name!r}: a {op} pattern cannot end with the "
                f"escape character {LIKE_ESCAPE!r}; write {LIKE_ESCAPE * 2!r} for a literal one",
                is_invalid_value=True,
            )
        return _text_condition(column, op, value)
    if op in ("in", "nin"):
        values = list_items(name, op, raw, items, max_in)
        condition = one_of(
            column, [exact_bind(column, _parse(name, item, field.parse)) for item in values]
        )
        return condition if op == "in" else not_(condition)
    value = exact_bind(column, _parse(name, raw, field.parse))
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


def list_items(
    name: str, op: str, raw: str, items: tuple[str, ...] | None, max_in: int
) -> tuple[str, ...]:
    """The values of ``name__in`` / ``name__nin``: ``items`` (a group's list), or ``raw``
    split on commas.

    Raises:
        QueryError: 422 for none, or more than ``max_in``.
    """
    if items is None:
        items = tuple(raw.split(",")) if raw != "" else ()
    if len(items) > max_in:
        raise QueryError(f"Too many values for {name}__{op}: at most {max_in}",
                         is_invalid_value=True)
    if not items:
        raise QueryError(f"{name}__{op} needs at least one value", is_invalid_value=True)
    return items


def parse_isnull(name: str, raw: str) -> bool:
    """The value of ``?name__isnull=raw``: ``true``, ``false`` (or ``1``, ``0``, ``yes``...).

    Raises:
        QueryError: 422 for any other value.
    """
    wanted: bool = _parse(name, raw, BOOL.validate_strings)
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
