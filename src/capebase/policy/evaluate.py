"""Evaluate a SQLAlchemy boolean expression over a row image in Python, with SQL's NULL logic."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.sql import elements, operators

from .sqlexpr import exact_equals


class NotEvaluable(Exception):
    """The expression uses something Python cannot evaluate exactly like the database."""


_COMPARISONS: dict[Any, Callable[[Any, Any], Any]] = {
    operators.eq: operator.eq,
    operators.ne: operator.ne,
    operators.lt: operator.lt,
    operators.le: operator.le,
    operators.gt: operator.gt,
    operators.ge: operator.ge,
}


def evaluate(expr: Any, row: Mapping[str, Any]) -> Any:
    """Value of ``expr`` for ``row`` (keys are column keys); ``None`` stands for SQL NULL.

    Raises:
        NotEvaluable: for any construct not modelled here, so callers fall back to the database.
    """
    if isinstance(expr, elements.Grouping):
        return evaluate(expr.element, row)
    if isinstance(expr, elements.True_):
        return True
    if isinstance(expr, elements.False_):
        return False
    if isinstance(expr, elements.Null):
        return None
    if isinstance(expr, elements.BindParameter):
        return expr.effective_value
    if isinstance(expr, elements.ColumnClause) and not isinstance(expr, elements.TextClause):
        if expr.key not in row:
            raise NotEvaluable(f"column {expr.key!r} is not in the row image")
        return row[expr.key]
    if isinstance(expr, elements.BooleanClauseList):
        return _evaluate_boolean_list(expr, row)
    if isinstance(expr, elements.UnaryExpression) and expr.operator is operators.inv:
        value = evaluate(expr.element, row)
        return None if value is None else not value
    if isinstance(expr, exact_equals):
        left, right = list(expr.clauses)
        return _compare(operator.eq, evaluate(left, row), evaluate(right, row))
    if isinstance(expr, elements.BinaryExpression):
        return _evaluate_binary(expr, row)
    raise NotEvaluable(f"cannot evaluate {type(expr).__name__} in Python")


def _evaluate_boolean_list(expr: elements.BooleanClauseList, row: Mapping[str, Any]) -> Any:
    values = [evaluate(clause, row) for clause in expr.clauses]
    if expr.operator is operators.and_:
        if any(v is not None and not v for v in values):
            return False
        return None if any(v is None for v in values) else True
    if expr.operator is operators.or_:
        if any(v is not None and v for v in values):
            return True
        return None if any(v is None for v in values) else False
    raise NotEvaluable(f"cannot evaluate clause list with {expr.operator}")


def _evaluate_binary(expr: elements.BinaryExpression[Any], row: Mapping[str, Any]) -> Any:
    op = expr.operator
    left = evaluate(expr.left, row)
    if op in (operators.in_op, operators.not_in_op):
        right = evaluate(expr.right, row)
        if left is None:
            return None
        values = list(right or [])
        hit = any(v == left for v in values if v is not None)
        has_null = any(v is None for v in values)
        if op is operators.in_op:
            return True if hit else (None if has_null else False)
        return False if hit else (None if has_null else True)
    right = evaluate(expr.right, row)
    if op is operators.is_:
        return left is right if right is None else left == right
    if op is operators.is_not:
        return left is not right if right is None else left != right
    compare = _COMPARISONS.get(op)
    if compare is None:
        raise NotEvaluable(f"cannot evaluate operator {getattr(op, '__name__', op)!r} in Python")
    return _compare(compare, left, right)


def _compare(compare: Callable[[Any, Any], Any], left: Any, right: Any) -> Any:
    if left is None or right is None:
        return None
    if isinstance(left, bool) != isinstance(right, bool) or (
        isinstance(left, str) != isinstance(right, str)
    ):
        # The database would coerce one side; Python would not. Let the database decide.
        raise NotEvaluable("comparison between different types")
    try:
        return bool(compare(left, right))
    except TypeError as exc:
        raise NotEvaluable(str(exc)) from exc
