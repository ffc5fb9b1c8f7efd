"""Terms that can fail run only on rows the caller may read.

A database evaluates a statement's conditions in the order it likes, and may merge a
subquery's into its outer query's: an app's term can meet a row before the policy's filter
drops it. A term that cannot fail (a column compared with a value, IS NULL, IN a list, AND, OR)
tells nothing by meeting it; a term that can (arithmetic that overflows, a CAST, a function,
a scalar subquery of several rows) would fail, or warn, because of a hidden row, and the error
(which often quotes the value) answers a question about that row.

A comparison (``=``, ``<``, IN, BETWEEN...) cannot fail only when both sides hold values of one
class (text, number, date and time...): MariaDB converts a text column compared with a number
row by row, and in an UPDATE or DELETE fails on the first text that is not one, quoting it. So
each side's class is read from what the database gets: a column's type (through
``type_coerce``, labels and subqueries, which only rename it), the Python value of a bound
parameter (SQLAlchemy types ``body == 5`` as the column's type; the driver sends a number), a
CAST only when it keeps the class; a side whose class is not known makes the comparison one that
can fail. A value tested for truth (``WHERE body``, ``NOT body``, ``CASE WHEN body``) is
converted the same way: unless it is a condition, a number or a term run under the read filters,
``value_as_condition`` names it and a user session refuses the statement.

So, before a user session's statement compiles, ``fallible_marks.mark`` wraps each term that
can fail in ``fallible``, and ``coverage`` renders it as ``CASE WHEN <the policy's filters of
the rows in scope> THEN term END``: CASE is the one construct whose order of evaluation every
database keeps. Terms that cannot fail stay as they are, so indexes still serve them.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import types
from sqlalchemy.sql import elements, expression, functions, operators, selectable, visitors

from .._compat.sqlalchemy import (
    BinaryType,
    LabelReference,
    OffsetLimitParam,
    TextualLabelReference,
    column_proxies,
    select_parts,
    type_affinity,
)
from . import guards, sqlexpr
from .sql_functions import AGGREGATES

_SAFE_OPERATORS = frozenset({
    operators.eq, operators.ne, operators.lt, operators.le, operators.gt, operators.ge,
    operators.is_, operators.is_not, operators.is_distinct_from, operators.is_not_distinct_from,
    operators.in_op, operators.not_in_op, operators.between_op, operators.not_between_op,
    operators.and_, operators.or_, operators.comma_op, operators.inv, operators.exists,
    operators.asc_op, operators.desc_op, operators.nulls_first_op, operators.nulls_last_op,
    operators.distinct_op, operators.is_true, operators.is_false, operators.collate,
})
"""Operators that cannot fail on their operands' values."""

_COMPARISONS = frozenset({
    operators.eq, operators.ne, operators.lt, operators.le, operators.gt, operators.ge,
    operators.in_op, operators.not_in_op, operators.between_op, operators.not_between_op,
    operators.is_distinct_from, operators.is_not_distinct_from, operators.is_, operators.is_not,
})
"""Operators that compare two values: they cannot fail only on values of one class."""

_ARITHMETIC = frozenset({
    operators.add, operators.sub, operators.mul, operators.truediv, operators.floordiv,
    operators.mod,
})

_PATTERN_OPERATORS = frozenset({
    operators.like_op, operators.not_like_op, operators.ilike_op, operators.not_ilike_op,
    operators.startswith_op, operators.not_startswith_op, operators.endswith_op,
    operators.not_endswith_op, operators.contains_op, operators.not_contains_op,
    operators.istartswith_op, operators.not_istartswith_op, operators.iendswith_op,
    operators.not_iendswith_op, operators.icontains_op, operators.not_icontains_op,
})
"""Pattern matches: they fail on a bad pattern, so only a pattern the app gives is safe."""

_CONTAINERS = (
    elements.ColumnClause, elements.BindParameter, elements.Null, elements.True_,
    elements.False_, elements.Label, elements.Grouping, elements.Tuple, elements.TypeCoerce,
    elements.ClauseList, elements.Case, elements.Over, elements.WithinGroup,
    elements.FunctionFilter, elements.CollationClause, elements.TypeClause,
    selectable.Exists, selectable.SelectBase, selectable.FromClause, LabelReference,
    TextualLabelReference, OffsetLimitParam,
)
"""Kinds that cannot fail themselves (what they hold is looked at in turn)."""

_OUR_COMPARISONS = (
    sqlexpr.exact_equals, sqlexpr.binary_collated, sqlexpr.strict_text, sqlexpr.codepoint_ordered,
)
"""capebase's exact text comparisons: a comparison and a CAST to bytes, which cannot fail."""


class fallible(expression.FunctionElement[Any]):
    """An app's term that can fail: rendered (``coverage``) so that it runs only on rows the
    caller may read."""

    inherit_cache = True
    name = "fallible"

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.type = value.type
        # A condition stays one: SQLite and MySQL must not compare it with 1.
        self._is_implicitly_boolean = bool(getattr(value, "_is_implicitly_boolean", False))

    @property
    def term(self) -> Any:
        """The wrapped term."""
        (value,) = list(self.clauses)
        return value


def is_statement(node: Any) -> bool:
    """Whether ``node`` is a SELECT, a subquery or another FROM (a level of its own); a SQL
    function is a FROM too in SQLAlchemy, but here a term."""
    return isinstance(node, selectable.SelectBase | selectable.Exists) or (
        isinstance(node, selectable.FromClause)
        and not isinstance(node, functions.FunctionElement)
    )


def is_aggregate(node: Any) -> bool:
    """Whether ``node`` is an aggregate or window function call (its arguments are per row)."""
    return isinstance(node, functions.FunctionElement) and str(
        getattr(node, "name", "")
    ).lower() in AGGREGATES


Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
"""A statement's execution parameters (the values of its named bind parameters)."""


def can_fail(node: Any, parameters: Parameters = None) -> bool:
    """Whether evaluating ``node`` itself (its operands given) can raise or warn;
    ``parameters``: the values the statement runs with (else a bind parameter without a value
    of its own is of no known class)."""
    if isinstance(node, (fallible, guards.policy_guard, guards.app_expression, *_OUR_COMPARISONS)):
        return False
    if isinstance(node, selectable.ScalarSelect):
        return True  # more than one row is an error
    if isinstance(node, elements.BinaryExpression):
        if node.operator in _PATTERN_OPERATORS:
            return _reads_columns(node.right)
        if node.operator in _COMPARISONS:
            return not _same_class(node.left, node.right, parameters)
        return node.operator not in _SAFE_OPERATORS
    if isinstance(node, elements.Case) and node.value is not None:
        # CASE value WHEN key ...: value = key, for each key
        return not all(_same_class(node.value, key, parameters) for key, _ in node.whens)
    if isinstance(node, elements.UnaryExpression | elements.AsBoolean):
        return any(
            op is not None and op not in _SAFE_OPERATORS
            for op in (getattr(node, "operator", None), getattr(node, "modifier", None))
        )
    if isinstance(node, elements.BooleanClauseList | elements.ExpressionClauseList):
        return node.operator not in _SAFE_OPERATORS
    if isinstance(node, functions.FunctionElement):
        return not is_aggregate(node)
    return not isinstance(node, _CONTAINERS)


# -- the classes of values a comparison meets --------------------------------------------------

_ANY = "any"
"""NULL: compared with anything, nothing is converted."""
_NUMBER, _TEXT, _TEMPORAL, _INTERVAL, _BINARY, _JSON, _UUID = (
    "number", "text", "date/time", "interval", "binary", "json", "uuid",
)

_TYPE_CLASSES: tuple[tuple[type[Any], str], ...] = (
    (types.String, _TEXT),  # Enum, Text, Unicode, SQLModel's AutoString
    (types.Integer, _NUMBER), (types.Numeric, _NUMBER), (types.Boolean, _NUMBER),
    (types.DateTime, _TEMPORAL), (types.Date, _TEMPORAL), (types.Time, _TEMPORAL),
    (types.Interval, _INTERVAL), (BinaryType, _BINARY), (types.JSON, _JSON),
    (types.Uuid, _UUID),
)
"""The class of the values of a column type (by the generic type it compares as)."""

_PYTHON_CLASSES: tuple[tuple[type[Any] | tuple[type[Any], ...], str], ...] = (
    ((bool, int, float, decimal.Decimal), _NUMBER),
    (str, _TEXT),
    ((datetime.datetime, datetime.date, datetime.time), _TEMPORAL),
    (datetime.timedelta, _INTERVAL),
    ((bytes, bytearray, memoryview), _BINARY),
    (uuid.UUID, _UUID),
)
"""The class of a bound Python value (what the driver sends)."""

_MAX_DEPTH = 32


def _same_class(left: Any, right: Any, parameters: Parameters) -> bool:
    """Whether comparing ``left`` with ``right`` converts neither (their classes are known and
    the same, or one is NULL)."""
    classes = {_class_of(left, parameters), _class_of(right, parameters)}
    classes.discard(_ANY)
    return len(classes) <= 1 and None not in classes


def _class_of(node: Any, parameters: Parameters, depth: int = 0) -> str | None:
    """The class of the values ``node`` gives the database (None: not known)."""
    if depth > _MAX_DEPTH:
        return None
    deeper = depth + 1
    if isinstance(node, elements.Null):
        return _ANY
    if isinstance(node, elements.True_ | elements.False_):
        return _NUMBER
    if isinstance(node, fallible):
        return _class_of(node.term, parameters, deeper)
    if isinstance(node, elements.Label | elements.Grouping):
        return _class_of(node.element, parameters, deeper)
    if isinstance(node, elements.TypeCoerce):  # a type for SQLAlchemy; the SQL is the inner's
        return _class_of(node.clause, parameters, deeper)
    if isinstance(node, elements.BindParameter):
        return _bind_class(node, parameters)
    if isinstance(node, selectable.ScalarSelect):
        return _selected_class(node.element, parameters, deeper)
    if isinstance(node, elements.Cast):
        # A CAST a database does not have (MariaDB skips one to ENUM) leaves the value as is.
        inner = _class_of(node.clause, parameters, deeper)
        return inner if inner == _type_class(node.type) else None
    if isinstance(node, elements.ColumnClause):
        proxies = column_proxies(node)
        if proxies:  # a subquery's column: what it selects (each member of a UNION)
            return _agreed(_class_of(p, parameters, deeper) for p in proxies)
        return None if node.is_literal else _type_class(node.type)
    if isinstance(node, elements.ClauseList | elements.ExpressionClauseList | elements.Tuple):
        return _agreed(_class_of(c, parameters, deeper) for c in node.clauses)
    if isinstance(node, elements.BinaryExpression):
        if node.operator in _ARITHMETIC:
            sides = {_class_of(node.left, parameters, deeper),
                     _class_of(node.right, parameters, deeper)}
            return _NUMBER if sides == {_NUMBER} else None
        if node.operator in _COMPARISONS or node.operator in _PATTERN_OPERATORS:
            return _NUMBER  # a truth value
        return None
    if isinstance(node, elements.UnaryExpression) and node.operator is operators.neg:
        return _NUMBER if _class_of(node.element, parameters, deeper) == _NUMBER else None
    if isinstance(node, elements.BooleanClauseList | selectable.Exists | elements.AsBoolean):
        return _NUMBER
    if isinstance(node, functions.FunctionElement):
        name = str(getattr(node, "name", "")).lower()
        arguments = list(node.clauses)
        if name == "count":
            return _NUMBER
        if name in ("max", "min") and len(arguments) == 1:
            return _class_of(arguments[0], parameters, deeper)
    return None


def compares_a_subquery_across_classes(node: Any) -> bool:
    """Whether ``node`` compares a scalar subquery with a value of another class. The CASE
    that guards a comparison does not hold on MariaDB there: planning an UPDATE that finds a
    row by a constant key, it compares that row's value with the subquery's, guard or not,
    and fails quoting it."""
    if not (isinstance(node, elements.BinaryExpression) and node.operator in _COMPARISONS):
        return False
    sides = [_unwrapped(node.left), _unwrapped(node.right)]
    if not any(isinstance(side, selectable.ScalarSelect) for side in sides):
        return False
    classes = {_class_of(side, None) for side in sides}
    return len(classes) > 1 and _ANY not in classes


def _unwrapped(node: Any) -> Any:
    while isinstance(node, elements.Label | elements.Grouping | elements.TypeCoerce | fallible):
        node = node.term if isinstance(node, fallible) else getattr(
            node, "clause", getattr(node, "element", None)
        )
    return node


def _agreed(classes: Iterable[str | None]) -> str | None:
    found = set(classes)
    if len(found) > 1:
        found.discard(_ANY)
    return found.pop() if len(found) == 1 else None


def _selected_class(statement: Any, parameters: Parameters, depth: int) -> str | None:
    """The class of the one column a scalar (or IN) subquery selects."""
    if isinstance(statement, selectable.CompoundSelect):
        return _agreed(_selected_class(s, parameters, depth + 1) for s in statement.selects)
    if isinstance(statement, selectable.SelectStatementGrouping):
        return _selected_class(statement.element, parameters, depth + 1)
    if isinstance(statement, selectable.Select):
        columns = select_parts(statement).columns
        if len(columns) == 1:
            return _class_of(columns[0], parameters, depth + 1)
    return None


def _type_class(type_: Any) -> str | None:
    affinity = type_affinity(type_)
    if isinstance(affinity, type):
        for generic, name in _TYPE_CLASSES:
            if issubclass(affinity, generic):
                return name
    return None


def _bind_class(bind: elements.BindParameter[Any], parameters: Parameters) -> str | None:
    """The class of what a bound parameter sends: its Python value's (the execution's value
    under its name, else its own); None when no value is known yet."""
    given = [parameters] if isinstance(parameters, Mapping) else list(parameters or ())
    named = [p[bind.key] for p in given if isinstance(p, Mapping) and bind.key in p]
    if named:
        values = named
    elif bind.callable is not None or (bind.value is None and bind.required):
        return None
    else:
        values = [bind.value]
    if bind.expanding:  # IN: a list of values
        if not all(isinstance(v, list | tuple) for v in values):
            return None
        values = [item for v in values for item in v]
        if not values:
            return _ANY  # IN (): rendered as a test of no value
    return _agreed(_python_class(v, bind.type) for v in values)


def _python_class(value: Any, type_: Any) -> str | None:
    if value is None:
        return _ANY
    if isinstance(value, enum.Enum) and isinstance(type_, types.Enum):
        return _TEXT  # the member's name
    if isinstance(value, dict | list) and _type_class(type_) == _JSON:
        return _JSON
    for python, name in _PYTHON_CLASSES:
        if isinstance(value, python):
            return name
    return None


def _reads_columns(node: Any) -> bool:
    return any(isinstance(e, elements.ColumnClause) for e in visitors.iterate(node))
