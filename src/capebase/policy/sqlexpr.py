"""SQL building blocks shared by the policy and list filters: exact text comparisons, row
literals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Enum, Table, and_, case, func, literal, not_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import elements, expression, operators, sqltypes, visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import String, TypeDecorator, TypeEngine

from .._compat.sqlalchemy import plain
from .like import (
    CASE_FOLDING_OPERATORS,
    DEFAULT_ESCAPE,
    PATTERN_OPERATORS,
    closed_value,
    escaped,
    is_literal_value,
)
from .sql_functions import OF_ARGUMENTS_ONLY

NO_OPTIONS: dict[str, Any] = {}
"""Empty options for ``visitors.replacement_traverse``."""


class exact_equals(expression.FunctionElement[bool]):
    """``column = value`` compared byte for byte on every database.

    MySQL and MariaDB compare text with the column's collation, which is usually
    case-insensitive: ``'Alice' = 'alice'`` is true there. A permission that matched that way
    would let one user read another's rows, so on MySQL this renders
    ``(col = :v AND CAST(col AS BINARY) = :v)``; the first term keeps the index usable.
    """

    type = Boolean()
    inherit_cache = True
    name = "exact_equals"
    # A comparison, not a boolean value: without this, MySQL and SQLite would get
    # ``(col = :v) = 1``, which no index can serve.
    _is_implicitly_boolean = True


@compiles(exact_equals)
def _compile_exact_default(element: exact_equals, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    # Parenthesised so that NOT exact_equals(...) negates the whole comparison.
    return f"({compiler.process(column == value, **kw)})"


@compiles(exact_equals, "mysql")
def _compile_exact_mysql(element: exact_equals, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    plain = compiler.process(column == value, **kw)
    binary = compiler.process(column, **kw)
    return f"({plain} AND CAST({binary} AS BINARY) = {compiler.process(value, **kw)})"


class binary_collated(expression.FunctionElement[str]):
    """A text column compared character by character, case and accents included.

    On MySQL/MariaDB this renders ``CONVERT(col USING utf8mb4) COLLATE utf8mb4_bin``: the default
    collations there make ``LIKE 'a%'`` match ``'Apple'`` and ``'%e'`` match ``'Café'``. Elsewhere
    it is the column itself.
    """

    type = String()
    inherit_cache = True
    name = "binary_collated"


@compiles(binary_collated)
def _compile_collated_default(element: binary_collated, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    return compiler.process(column, **kw)


@compiles(binary_collated, "mysql")
def _compile_collated_mysql(element: binary_collated, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = list(element.clauses)
    return f"CONVERT({compiler.process(column, **kw)} USING utf8mb4) COLLATE utf8mb4_bin"


class strict_text(expression.FunctionElement[bool]):
    """``strict_text(plain, strict)``: ``plain`` where text comparison is exact already, and
    ``(plain AND strict)`` on MySQL, where ``strict`` is the same test on ``binary_collated``
    text; ``plain`` keeps an index usable for prefix matches."""

    type = Boolean()
    inherit_cache = True
    name = "strict_text"
    # Already a condition: SQLite and MySQL must not render it as ``(...) = 1``.
    _is_implicitly_boolean = True


@compiles(strict_text)
def _compile_strict_default(element: strict_text, compiler: SQLCompiler, **kw: Any) -> str:
    plain, _strict = list(element.clauses)
    return f"({compiler.process(plain, **kw)})"


@compiles(strict_text, "mysql")
def _compile_strict_mysql(element: strict_text, compiler: SQLCompiler, **kw: Any) -> str:
    plain, strict = list(element.clauses)
    return f"({compiler.process(plain, **kw)} AND {compiler.process(strict, **kw)})"


class codepoint_ordered(expression.FunctionElement[str]):
    """Text ordered by code point, as Python orders ``str``: ``CAST(x AS BINARY)`` on MySQL
    (UTF-8 bytes; its collations fold case and accents and pad trailing spaces),
    ``x COLLATE "C"`` on PostgreSQL (whose database collation may follow a language), and
    ``x COLLATE BINARY`` on SQLite."""

    type = String()
    inherit_cache = True
    name = "codepoint_ordered"


@compiles(codepoint_ordered)
def _compile_codepoint_default(
    element: codepoint_ordered, compiler: SQLCompiler, **kw: Any
) -> str:
    (text,) = list(element.clauses)
    return compiler.process(text, **kw)


@compiles(codepoint_ordered, "sqlite")
def _compile_codepoint_sqlite(element: codepoint_ordered, compiler: SQLCompiler, **kw: Any) -> str:
    (text,) = list(element.clauses)
    # The default already, unless the column declares another (COLLATE NOCASE).
    return f"({compiler.process(text, **kw)}) COLLATE BINARY"


@compiles(codepoint_ordered, "postgresql")
def _compile_codepoint_postgresql(
    element: codepoint_ordered, compiler: SQLCompiler, **kw: Any
) -> str:
    (text,) = list(element.clauses)
    return f'({compiler.process(text, **kw)}) COLLATE "C"'


@compiles(codepoint_ordered, "mysql")
def _compile_codepoint_mysql(element: codepoint_ordered, compiler: SQLCompiler, **kw: Any) -> str:
    (text,) = list(element.clauses)
    return f"CAST({compiler.process(text, **kw)} AS BINARY)"


NATIVE_ENUM_DIALECTS = frozenset({"postgresql", "mysql", "mariadb"})
"""Databases whose native ENUM sorts by the members' declaration order."""


def declaration_ordered(column: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """The sort key of ``column``: an ``Enum`` in its members' declaration order on every
    database (where its native type does not already sort so, as on SQLite, the members are
    stored as text and would sort by name); any other column as it is."""
    type_: TypeEngine[Any] = column.type
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    if not isinstance(type_, Enum) or (type_.native_enum and dialect in NATIVE_ENUM_DIALECTS):
        return column
    members = list(type_.enums)
    order = {member: index for index, member in enumerate(members)}
    return case(order, value=column, else_=len(members))


def is_text(type_: TypeEngine[Any] | None) -> bool:
    """Whether ``type_`` stores text, including TypeDecorators over text such as SQLModel's
    ``AutoString`` (the type of every ``str`` field)."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    return isinstance(type_, String)


def equals(column: Any, value: Any) -> ColumnElement[bool]:
    """``column == value``, exact for text columns on every database (``value`` may be a
    ``bindparam``)."""
    if is_text(getattr(column, "type", None)):
        bound = value if isinstance(value, elements.BindParameter) else literal(
            value, type_=column.type
        )
        return exact_equals(column, bound)
    result: ColumnElement[bool] = column == value
    return result


def one_of(column: Any, values: list[Any]) -> ColumnElement[bool]:
    """``column IN values``, exact for text columns on every database (see ``exact_equals``)."""
    if is_text(getattr(column, "type", None)) and values:
        return or_(*(equals(column, v) for v in values))
    result: ColumnElement[bool] = column.in_(values)
    return result


def exact_text(expr: ColumnElement[bool]) -> ColumnElement[bool]:
    """``expr`` with every text comparison made exact, the same on every database: ``=``,
    ``!=``, ``IN``, ``NOT IN`` (``exact_equals``), ``IS [NOT] DISTINCT FROM``, ordering
    (``codepoint_ordered``), ``LIKE`` and its kin, ``REGEXP`` (``binary_collated``, with the
    pattern rules of ``like``).

    Applied to ``where=`` expressions, so that ``Doc.owner == ctx.id`` or
    ``Doc.title.startswith("pub")`` means on MySQL what it means in Python and on the other
    databases: case, accents and trailing spaces count.
    """

    def replace(element: Any, **_kw: Any) -> Any:
        if not isinstance(element, elements.BinaryExpression):
            return None
        left, right, op = element.left, element.right, element.operator
        if not (is_text(getattr(left, "type", None)) or is_text(getattr(right, "type", None))):
            return None
        if op in PATTERN_OPERATORS or op in CASE_FOLDING_OPERATORS:
            return _exact_pattern(element)
        if op in (operators.regexp_match_op, operators.not_regexp_match_op):
            return _rebuilt(element, binary_collated(exact_text(left)), right)
        if op in _ORDERING:
            return _rebuilt(
                element, codepoint_ordered(exact_text(left)), codepoint_ordered(exact_text(right))
            )
        if op in (operators.between_op, operators.not_between_op):
            return _exact_between(element)
        if op in (operators.is_distinct_from, operators.is_not_distinct_from):
            same = _same_or_both_null(exact_text(left), exact_text(right))
            return same if op is operators.is_not_distinct_from else not_(same)
        if op is operators.eq:
            return exact_equals(exact_text(left), exact_text(right))
        if op is operators.ne:
            return not_(exact_equals(exact_text(left), exact_text(right)))
        if op in (operators.in_op, operators.not_in_op) and _is_value_list(right):
            values = list(right.effective_value)
            if not values:
                return None  # the database's empty-set IN, which is exact already
            matched = or_(*(exact_equals(exact_text(left), literal(v, type_=left.type))
                            for v in values))
            return matched if op is operators.in_op else not_(matched)
        return None

    result: ColumnElement[bool] = visitors.replacement_traverse(expr, NO_OPTIONS, replace)
    return result


_ORDERING = (operators.lt, operators.le, operators.gt, operators.ge)


def _rebuilt(
    element: elements.BinaryExpression[Any],
    left: Any,
    right: Any,
    modifiers: dict[str, Any] | None = None,
) -> elements.BinaryExpression[Any]:
    """``element`` with other operands (and modifiers)."""
    return elements.BinaryExpression(
        left,
        right,
        element.operator,
        type_=element.type,
        negate=element.negate,
        modifiers=element.modifiers if modifiers is None else modifiers,
    )


def _exact_pattern(element: elements.BinaryExpression[Any]) -> Any:
    """A LIKE-style comparison on ``binary_collated`` text, with a backslash for escape
    character where none is named; the value of ``startswith`` and its kin escaped (it is
    text, not a pattern: see ``like``), a pattern value's trailing lone escape closed."""
    modifiers = dict(element.modifiers)
    literal_value = is_literal_value(element.operator, modifiers)
    escape = modifiers.get("escape") or DEFAULT_ESCAPE
    modifiers["escape"] = escape
    right: Any = exact_text(element.right)
    is_value = isinstance(right, elements.BindParameter) and isinstance(
        right.effective_value, str
    )
    if literal_value and is_value:
        right = literal(escaped(right.effective_value, escape), type_=right.type)
    elif literal_value:
        # A computed value (another column, a function): escaped by the database.
        for char in (escape, "%", "_"):
            right = func.replace(right, literal(char), literal(escape + char))
    elif is_value:
        closed = closed_value(right.effective_value, escape)
        if closed != right.effective_value:
            right = literal(closed, type_=right.type)
    return _rebuilt(element, binary_collated(exact_text(element.left)), right, modifiers)


def _exact_between(element: elements.BinaryExpression[Any]) -> Any:
    bounds = list(getattr(element.right, "clauses", ()))
    if len(bounds) != 2 or element.modifiers.get("symmetric"):
        return None
    value = codepoint_ordered(exact_text(element.left))
    low, high = (codepoint_ordered(exact_text(b)) for b in bounds)
    within = and_(value >= low, value <= high)
    return within if element.operator is operators.between_op else not_(within)


def _same_or_both_null(left: Any, right: Any) -> ColumnElement[bool]:
    """``left IS NOT DISTINCT FROM right`` with ``exact_equals``: never NULL."""
    return or_(
        and_(left.is_(None), right.is_(None)),
        and_(left.is_not(None), right.is_not(None), exact_equals(left, right)),
    )


def _is_value_list(element: Any) -> bool:
    return (
        isinstance(element, elements.BindParameter)
        and element.expanding
        and isinstance(element.effective_value, list | tuple)
    )


_OF_ARGUMENTS = (exact_equals, binary_collated, strict_text, codepoint_ordered)
"""This module's comparison forms: functions of their arguments alone."""


def reads_only_the_row(expr: ColumnElement[bool], table: Table) -> bool:
    """Whether ``expr`` is a function of ``table``'s row alone: it reads no other table, no
    other row (a subquery), no clock and no SQL text, so a past image of a row gets the answer
    it got when it was the row. Where unsure, no."""
    for element in visitors.iterate(expr):
        if isinstance(element, expression.FunctionElement):  # a FROM clause too: first
            if not isinstance(element, _OF_ARGUMENTS) and (
                bool(getattr(element, "packagenames", None))  # a schema's: the app's own
                or element.name.lower() not in OF_ARGUMENTS_ONLY
            ):
                return False
        elif isinstance(element, (expression.TextClause, expression.Selectable)):
            return False
        elif isinstance(element, expression.ColumnClause) and (
            element.table is None or plain(element.table) is not table
        ):
            return False  # another table's column, or literal_column() text
        elif isinstance(element, (elements.Cast, elements.TypeCoerce)) and isinstance(
            element.type, _TEMPORAL
        ):
            return False  # PostgreSQL reads CAST('now' AS timestamp) as the clock
        elif isinstance(element, elements.BindParameter) and (
            element.callable is not None
            or (isinstance(element.value, str) and element.value.strip().lower() in _CLOCK_WORDS)
        ):
            return False  # a value computed when the statement runs, or a clock's name
    return True


_TEMPORAL = (sqltypes.Date, sqltypes.DateTime, sqltypes.Time, sqltypes.Interval)
_CLOCK_WORDS = frozenset({"now", "today", "tomorrow", "yesterday", "current_timestamp"})
"""Text PostgreSQL reads as a time that moves when it becomes a date or time."""


def columns_read(expr: ColumnElement[bool], table: Table) -> frozenset[str]:
    """The keys of ``table``'s columns that ``expr`` reads."""
    return frozenset(
        element.key
        for element in visitors.iterate(expr)
        if isinstance(element, expression.ColumnClause) and plain(element.table) is table
    )


def with_row_values(
    expr: ColumnElement[bool], table: Table, row: Mapping[str, Any], *, only_held: bool = False
) -> ColumnElement[bool]:
    """``expr`` with every column of ``table`` replaced by that column's value in ``row``.

    The database can then evaluate a predicate over a row image that is not stored (yet).
    A column ``row`` lacks is NULL, or with ``only_held`` stays the column (to be read from
    the stored row).
    """

    def replace(element: Any, **_kw: Any) -> Any:
        if isinstance(element, expression.ColumnClause) and plain(element.table) is table:
            if only_held and element.key not in row:
                return None
            return literal(row.get(element.key), type_=element.type)
        return None

    result: ColumnElement[bool] = visitors.replacement_traverse(expr, NO_OPTIONS, replace)
    return result
