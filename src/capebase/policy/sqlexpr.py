"""SQL building blocks shared by the policy and list filters: exact text equality, row literals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Table, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import expression, visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import String


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


@compiles(exact_equals)
def _compile_exact_default(element: exact_equals, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    return compiler.process(column == value, **kw)


@compiles(exact_equals, "mysql")
def _compile_exact_mysql(element: exact_equals, compiler: SQLCompiler, **kw: Any) -> str:
    column, value = list(element.clauses)
    plain = compiler.process(column == value, **kw)
    binary = compiler.process(column, **kw)
    return f"({plain} AND CAST({binary} AS BINARY) = {compiler.process(value, **kw)})"


def equals(column: Any, value: Any) -> ColumnElement[bool]:
    """``column == value``, exact for text columns on every database."""
    if isinstance(getattr(column, "type", None), String):
        bound = literal(value, type_=column.type)
        return exact_equals(column, bound)
    result: ColumnElement[bool] = column == value
    return result


def one_of(column: Any, values: list[Any]) -> ColumnElement[bool]:
    """``column IN values``, exact for text columns on every database (see ``exact_equals``)."""
    if isinstance(getattr(column, "type", None), String):
        return or_(*(equals(column, v) for v in values))
    result: ColumnElement[bool] = column.in_(values)
    return result


def with_row_values(
    expr: ColumnElement[bool], table: Table, row: Mapping[str, Any]
) -> ColumnElement[bool]:
    """``expr`` with every column of ``table`` replaced by that column's value in ``row``.

    The database can then evaluate a predicate over a row image that is not stored (yet).
    """

    def replace(element: Any) -> Any:
        if isinstance(element, expression.ColumnClause) and getattr(element, "table", None) is table:
            return literal(row.get(element.key), type_=element.type)
        return None

    result: ColumnElement[bool] = visitors.replacement_traverse(expr, {}, replace)
    return result
