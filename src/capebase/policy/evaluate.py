"""Evaluate a SQLAlchemy boolean expression over a row image in Python, with SQL's NULL logic.

Only what Python can decide exactly as all three databases do is evaluated; anything else raises
``NotEvaluable`` so that the caller asks the database instead of guessing. Text is compared as
``sqlexpr.exact_text`` makes the SQL form compare it: equality character for character,
ordering by code point, ``LIKE`` and its case-sensitive kin with the pattern rules of ``like``.
Case-insensitive matching (``ilike``, ``lower()``) is left to the database.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Table
from sqlalchemy.sql import elements, operators

from .._compat.sqlalchemy import plain
from .like import (
    DEFAULT_ESCAPE,
    NEGATED,
    PATTERN_OPERATORS,
    closed_value,
    escaped,
    is_literal_value,
    like_matches,
    pattern_for,
)
from .sqlexpr import exact_equals


class NotEvaluable(Exception):
    """The expression uses something Python cannot evaluate exactly like the database."""


_EQUALITY: dict[Any, Callable[[Any, Any], Any]] = {
    operators.eq: operator.eq,
    operators.ne: operator.ne,
}
_ORDERING: dict[Any, Callable[[Any, Any], Any]] = {
    operators.lt: operator.lt,
    operators.le: operator.le,
    operators.gt: operator.gt,
    operators.ge: operator.ge,
}


def evaluate(expr: Any, row: Mapping[str, Any], table: Table | None = None) -> Any:
    """Value of ``expr`` for ``row`` (keys are column keys); ``None`` stands for SQL NULL.

    Args:
        expr: a SQLAlchemy expression.
        row: the row image, by column key.
        table: the table ``row`` belongs to; a column of any other table (or alias) is not
            evaluable. ``None`` accepts any column whose key is in ``row``.

    Raises:
        NotEvaluable: for any construct not modelled here, so callers fall back to the database.
    """
    if isinstance(expr, elements.Grouping):
        return evaluate(expr.element, row, table)
    if isinstance(expr, elements.True_):
        return True
    if isinstance(expr, elements.False_):
        return False
    if isinstance(expr, elements.Null):
        return None
    if isinstance(expr, elements.BindParameter):
        return expr.effective_value
    if isinstance(expr, elements.ColumnClause):
        return _column_value(expr, row, table)
    if isinstance(expr, elements.BooleanClauseList):
        return _evaluate_boolean_list(expr, row, table)
    if isinstance(expr, elements.AsBoolean):
        return _evaluate_as_boolean(expr, row, table)
    if isinstance(expr, elements.UnaryExpression) and expr.operator is operators.inv:
        value = evaluate(expr.element, row, table)
        return None if value is None else not _truth(value)
    if isinstance(expr, exact_equals):
        left, right = list(expr.clauses)
        return _compare(operator.eq, evaluate(left, row, table), evaluate(right, row, table))
    if isinstance(expr, elements.BinaryExpression):
        return _evaluate_binary(expr, row, table)
    raise NotEvaluable(f"cannot evaluate {type(expr).__name__} in Python")


def _column_value(
    expr: elements.ColumnClause[Any], row: Mapping[str, Any], table: Table | None
) -> Any:
    if expr.is_literal:
        raise NotEvaluable(f"literal SQL {expr.name!r}")
    if table is not None and plain(getattr(expr, "table", None)) is not table:
        raise NotEvaluable(f"column {expr.key!r} is not a column of {table.name}")
    if expr.key not in row:
        raise NotEvaluable(f"column {expr.key!r} is not in the row image")
    return row[expr.key]



def _truth(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return value != 0
    raise NotEvaluable(f"{type(value).__name__} value used as a boolean")


def _evaluate_boolean_list(
    expr: elements.BooleanClauseList, row: Mapping[str, Any], table: Table | None
) -> Any:
    values = [evaluate(clause, row, table) for clause in expr.clauses]
    truths = [None if v is None else _truth(v) for v in values]
    if expr.operator is operators.and_:
        if any(t is False for t in truths):
            return False
        return None if any(t is None for t in truths) else True
    if expr.operator is operators.or_:
        if any(t is True for t in truths):
            return True
        return None if any(t is None for t in truths) else False
    raise NotEvaluable(f"cannot evaluate clause list with {expr.operator}")


def _evaluate_as_boolean(
    expr: elements.AsBoolean, row: Mapping[str, Any], table: Table | None
) -> Any:
    # ``~Model.flag`` on a Boolean column is ``flag IS false``-like: NULL stays NULL.
    value = evaluate(expr.element, row, table)
    if value is None:
        return None
    if expr.operator is operators.is_true:
        return _truth(value)
    if expr.operator is operators.is_false:
        return not _truth(value)
    raise NotEvaluable(f"cannot evaluate {expr.operator}")


def _evaluate_binary(
    expr: elements.BinaryExpression[Any], row: Mapping[str, Any], table: Table | None
) -> Any:
    op = expr.operator
    if op in (operators.in_op, operators.not_in_op):
        return _evaluate_in(expr, row, table)
    left = evaluate(expr.left, row, table)
    right = evaluate(expr.right, row, table)
    if op in PATTERN_OPERATORS:
        return _evaluate_pattern(expr, left, right)
    if op in (operators.is_, operators.is_not):
        if right is None:
            matched = left is None
        elif isinstance(right, bool) and (left is None or isinstance(left, bool)):
            matched = left is right
        else:
            raise NotEvaluable("IS with a value other than NULL, true or false")
        return matched if op is operators.is_ else not matched
    compare = _EQUALITY.get(op) or _ORDERING.get(op)
    if compare is None:
        raise NotEvaluable(f"cannot evaluate operator {getattr(op, '__name__', op)!r} in Python")
    return _compare(compare, left, right)


def _evaluate_pattern(expr: elements.BinaryExpression[Any], left: Any, right: Any) -> Any:
    if left is None or right is None:
        return None
    if not (isinstance(left, str) and isinstance(right, str)):
        raise NotEvaluable("LIKE over something other than text")
    escape = expr.modifiers.get("escape") or DEFAULT_ESCAPE
    if is_literal_value(expr.operator, expr.modifiers):
        right = escaped(right, escape)  # text to find, as ``sqlexpr.exact_text`` sends it
    elif not isinstance(expr.right, elements.BindParameter) and closed_value(
        right, escape
    ) != right:
        # Only a pattern value is closed (``sqlexpr.exact_text``); the databases disagree on
        # a computed pattern ending with a lone escape character.
        raise NotEvaluable("a computed LIKE pattern ending with its escape character")
    matched = like_matches(left, pattern_for(expr.operator, right, escape), escape)
    return not matched if expr.operator in NEGATED else matched


def _evaluate_in(
    expr: elements.BinaryExpression[Any], row: Mapping[str, Any], table: Table | None
) -> Any:
    right = expr.right
    if not (isinstance(right, elements.BindParameter) and right.expanding):
        raise NotEvaluable("IN over something other than a list of values")
    values = list(right.effective_value or [])
    is_in = expr.operator is operators.in_op
    if not values:
        return is_in is False  # SQL: x IN () is false and x NOT IN () is true, even for NULL
    left = evaluate(expr.left, row, table)
    if left is None:
        return None
    for value in values:
        if value is not None:
            _check_comparable(left, value)
    hit = any(value == left for value in values if value is not None)
    if hit:
        return is_in
    if any(value is None for value in values):
        return None
    return not is_in


def _check_comparable(left: Any, right: Any) -> None:
    """Raise NotEvaluable unless SQL would compare ``left`` and ``right`` as Python does."""
    numbers = (int, float, Decimal)
    if isinstance(left, bool) or isinstance(right, bool):
        if not (isinstance(left, bool) and isinstance(right, bool)):
            raise NotEvaluable("comparison of a boolean with another type")
        return
    if isinstance(left, numbers) and isinstance(right, numbers):
        return
    if type(left) is not type(right):
        # The database would coerce one side; Python would not. Let the database decide.
        raise NotEvaluable(
            f"comparison between {type(left).__name__} and {type(right).__name__}"
        )


def _compare(compare: Callable[[Any, Any], Any], left: Any, right: Any) -> Any:
    if left is None or right is None:
        return None
    _check_comparable(left, right)
    try:
        return bool(compare(left, right))
    except TypeError as exc:
        raise NotEvaluable(str(exc)) from exc
