"""SQL building blocks shared by the policy and list filters: exact text equality, row literals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Table, literal, not_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import elements, expression, operators, visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import String, TypeDecorator, TypeEngine

from .._compat.sqlalchemy import plain

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
    """``expr`` with every text ``=``, ``!=``, ``IN`` and ``NOT IN`` made exact (``exact_equals``).

    Applied to ``where=`` expressions, so that ``Doc.owner == ctx.id`` means on MySQL what it
    means in Python and on the other databases.
    """

    def replace(element: Any, **_kw: Any) -> Any:
        if not isinstance(element, elements.BinaryExpression):
            return None
        left, right, op = element.left, element.right, element.operator
        if not (is_text(getattr(left, "type", None)) or is_text(getattr(right, "type", None))):
            return None
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


def _is_value_list(element: Any) -> bool:
    return (
        isinstance(element, elements.BindParameter)
        and element.expanding
        and isinstance(element.effective_value, list | tuple)
    )


def with_row_values(
    expr: ColumnElement[bool], table: Table, row: Mapping[str, Any]
) -> ColumnElement[bool]:
    """``expr`` with every column of ``table`` replaced by that column's value in ``row``.

    The database can then evaluate a predicate over a row image that is not stored (yet).
    """

    def replace(element: Any, **_kw: Any) -> Any:
        if isinstance(element, expression.ColumnClause) and plain(element.table) is table:
            return literal(row.get(element.key), type_=element.type)
        return None

    result: ColumnElement[bool] = visitors.replacement_traverse(expr, NO_OPTIONS, replace)
    return result

