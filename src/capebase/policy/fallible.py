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

So, before a user session's statement compiles, ``mark`` wraps each term that can fail in
``fallible``, and ``coverage`` renders it as ``CASE WHEN <the policy's filters of the rows in
scope> THEN term END``: CASE is the one construct whose order of evaluation every database
keeps. Terms that cannot fail stay as they are, so indexes still serve them.

In a grouped SELECT, an expression outside the aggregates is computed from the group's keys:
a key that is itself fallible, or that such an expression reads, is wrapped once and that same
term replaces it everywhere in the SELECT (GROUP BY included), so the database still sees the
selected expressions as grouped ones.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import types
from sqlalchemy.sql import elements, expression, functions, operators, selectable, visitors

from .._compat.sqlalchemy import (
    LabelReference,
    OffsetLimitParam,
    TextualLabelReference,
    returning_of,
    select_parts,
    statement_options,
    type_affinity,
    where_criteria,
)
from . import guards, sqlexpr
from .sql_functions import AGGREGATES
from .sqlexpr import NO_OPTIONS

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
    (types.Interval, _INTERVAL), (types._Binary, _BINARY), (types.JSON, _JSON),
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
        proxies = list(getattr(node, "_proxies", ()) or ())
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


# -- values tested for truth ------------------------------------------------------------------


def value_as_condition(node: Any) -> Any | None:
    """A value ``node`` tests for truth that is no condition (``WHERE body``, ``NOT body``,
    ``x AND body``, ``CASE WHEN body``), or None: the database converts it row by row, and
    MariaDB fails on a hidden row's text, quoting it."""
    for operand in _truth_operands(node):
        if not _is_condition(operand):
            return operand
    return None


def _truth_operands(node: Any) -> Iterable[Any]:
    if isinstance(node, selectable.Select):
        parts = select_parts(node)
        return (*parts.where, *parts.onclauses, *parts.having)
    if getattr(node, "is_dml", False):
        return where_criteria(node)
    if isinstance(node, selectable.Join):
        return () if node.onclause is None else (node.onclause,)
    if isinstance(node, elements.BooleanClauseList):
        return tuple(node.clauses)
    if isinstance(node, elements.AsBoolean):
        return (node.element,)
    if isinstance(node, elements.UnaryExpression) and node.operator is operators.inv:
        return (node.element,)
    if isinstance(node, elements.Case) and node.value is None:
        return tuple(condition for condition, _ in node.whens)
    if isinstance(node, elements.FunctionFilter):
        return () if node.criterion is None else (node.criterion,)
    return ()


def _is_condition(node: Any, depth: int = 0) -> bool:
    """Whether ``node``, tested for truth, converts no row's value: a condition, a number (a
    boolean column), or a term run under the read filters."""
    if depth > _MAX_DEPTH:
        return False
    if isinstance(node, elements.Label | elements.Grouping):
        return _is_condition(node.element, depth + 1)
    if isinstance(node, elements.TypeCoerce):
        return _is_condition(node.clause, depth + 1)
    if isinstance(node, (
        fallible, guards.policy_guard, guards.app_expression, *_OUR_COMPARISONS, elements.Null,
        elements.True_, elements.False_, elements.BooleanClauseList, elements.AsBoolean,
        selectable.Exists,
    )):
        return True
    if isinstance(node, elements.BinaryExpression) and (
        node.operator in _COMPARISONS or node.operator in _PATTERN_OPERATORS
    ):
        return True
    if isinstance(node, elements.UnaryExpression) and node.operator is operators.inv:
        return True  # its operand is tested in turn
    if is_statement(node) and not isinstance(node, selectable.ScalarSelect):
        return True
    return can_fail(node) or _class_of(node, None) == _NUMBER


def _reads_columns(node: Any) -> bool:
    return any(isinstance(e, elements.ColumnClause) for e in visitors.iterate(node))


# -- marking ----------------------------------------------------------------------------------


class _Marks:
    """What to wrap: id of a node -> the node whose ``fallible`` replaces it (itself, or the
    group key it equals)."""

    def __init__(self, parameters: Parameters) -> None:
        self.by_id: dict[int, Any] = {}
        self.seen: set[int] = set()
        self.parameters = parameters

    def wrap(self, node: Any) -> None:
        if isinstance(node, elements.ColumnElement):
            self.by_id[id(node)] = node


def mark(statement: Any, parameters: Parameters = None) -> Any:
    """``statement`` with every term that can fail wrapped in ``fallible`` (the statement
    itself when none can); ``parameters``: the values it runs with."""
    marks = _Marks(parameters)
    _statement(statement, marks)
    if not marks.by_id:
        return statement
    return _replace(statement, marks.by_id)


def mark_expression(value: Any, parameters: Parameters = None) -> Any:
    """An app's expression (a bulk UPDATE's SET value) as a per-row term: wrapped if it can
    fail."""
    marks = _Marks(parameters)
    _per_row(value, marks)
    if not marks.by_id:
        return value
    return _replace(value, marks.by_id)


def _replace(root: elements.ClauseElement, chosen: dict[int, Any]) -> Any:
    """``root`` with each node named in ``chosen`` replaced by ``fallible`` of its target (the
    node itself, or the group key it equals: one term for all of them)."""
    made: dict[int, Any] = {}
    inside: set[int] = set()

    def replace(element: Any, **_kw: Any) -> Any:
        target = chosen.get(id(element))
        if target is None or id(target) in inside:
            return None
        if id(target) not in made:
            inside.add(id(target))
            made[id(target)] = fallible(visitors.replacement_traverse(target, NO_OPTIONS, replace))
            inside.discard(id(target))
        return made[id(target)]

    # Options (the policy's loader criteria, on statements the ORM derives from a user
    # statement, such as a bulk UPDATE's SELECT of matched keys) are not SQL to wrap.
    return visitors.replacement_traverse(root, {"stop_on": statement_options(root)}, replace)


_WRAPPERS = (
    selectable.SelectStatementGrouping, selectable.ScalarSelect, selectable.Exists,
    selectable.AliasedReturnsRows, selectable.FromGrouping,
)
"""Kinds that hold one statement (a subquery, EXISTS, a grouping)."""


def _statement(node: Any, marks: _Marks) -> None:
    """Look at every SELECT (and UPDATE/DELETE) inside ``node``."""
    if id(node) in marks.seen:
        return
    marks.seen.add(id(node))
    if isinstance(node, selectable.Select):
        _select(node, marks)
    elif isinstance(node, selectable.CompoundSelect):
        for member in node.selects:
            _statement(member, marks)
    elif isinstance(node, _WRAPPERS):
        _statement(node.element, marks)
    elif isinstance(node, selectable.Join):
        _statement(node.left, marks)
        _statement(node.right, marks)
        _per_row(node.onclause, marks)
    elif getattr(node, "is_dml", False):
        for condition in (*where_criteria(node), *returning_of(node)):
            _per_row(condition, marks)


def _select(node: selectable.Select[Any], marks: _Marks) -> None:
    parts = select_parts(node)
    everything = (*parts.columns, *parts.where, *parts.onclauses, *parts.group_by,
                  *parts.having, *parts.order_by)
    for from_ in (*parts.froms, *_implied_froms(everything)):
        _statement(from_, marks)
    for limit in parts.limits:  # evaluated once: only the statements inside it have rows
        _inner_statements(limit, marks)
    for condition in (*parts.where, *parts.onclauses):
        _per_row(condition, marks)
    grouped = bool(parts.group_by) or any(
        _has_aggregate(e) for e in (*parts.columns, *parts.having, *parts.order_by)
    )
    if not grouped:
        for term in (*parts.columns, *parts.order_by, *parts.having):
            _per_row(term, marks)
        return
    keys = list(parts.group_by)
    needed: set[int] = set()
    for term in (*parts.columns, *parts.order_by, *parts.having):
        _grouped(term, keys, needed, marks, under_fallible=False)
    for index, key in enumerate(keys):
        if index in needed or _contains_fallible(key, marks.parameters):
            marks.wrap(key)
            for term in (*parts.columns, *parts.order_by, *parts.having):
                for same in _equal_nodes(term, key):
                    marks.by_id[id(same)] = key
        # A subquery's rows are its own: the key's wrapper guards only this level's rows.
        _inner_statements(key, marks)


def _per_row(node: Any, marks: _Marks) -> None:
    """Wrap the outermost terms of ``node`` that can fail; look into the statements inside."""
    if node is None or guards.is_policy_guard(node):
        return  # the policy's own predicate (an app's SET value inside it is marked already)
    if is_statement(node):
        if isinstance(node, selectable.ScalarSelect):
            marks.wrap(node)
        _statement(node, marks)
        return
    if can_fail(node, marks.parameters):
        marks.wrap(node)
        _inner_statements(node, marks)
        return
    if isinstance(node, elements.BinaryExpression) and node.operator in (
        operators.in_op, operators.not_in_op,
    ) and isinstance(node.right, selectable.ScalarSelect):
        # IN (SELECT ...) is no scalar subquery: any number of rows is fine.
        _per_row(node.left, marks)
        _statement(node.right.element, marks)
        return
    for child in node.get_children():
        _per_row(child, marks)


def _grouped(
    node: Any, keys: list[Any], needed: set[int], marks: _Marks, *, under_fallible: bool
) -> None:
    """Outside the aggregates of a grouped SELECT: note the keys a term that can fail reads,
    wrap what can fail inside aggregates."""
    for index, key in enumerate(keys):
        if node is key or (type(node) is type(key) and node.compare(key)):
            if under_fallible:
                needed.add(index)
            return
    if isinstance(node, elements.Over):
        # A window runs after the grouping: its function's arguments, its partition and its
        # order are computed from the groups, like the SELECT's other columns.
        for child in node.get_children():
            parts = child.get_children() if is_aggregate(child) else [child]
            for part in parts:
                _grouped(part, keys, needed, marks, under_fallible=under_fallible)
        return
    if is_aggregate(node) or isinstance(node, elements.FunctionFilter):
        for child in node.get_children():
            _per_row(child, marks)
        return
    if is_statement(node):
        _statement(node, marks)
        return
    under = under_fallible or can_fail(node, marks.parameters)
    for child in node.get_children():
        _grouped(child, keys, needed, marks, under_fallible=under)


def _implied_froms(terms: Iterable[Any]) -> Iterator[Any]:
    """The subqueries a SELECT reads through their columns only (``select(sub.c.x)``)."""
    for term in terms:
        for element in _same_level(term):
            table = getattr(element, "table", None)
            if isinstance(element, elements.ColumnClause) and is_statement(table):
                yield table


def _has_aggregate(node: Any) -> bool:
    """Whether ``node`` aggregates rows (a window function does not: it keeps them)."""
    todo = [node]
    while todo:
        element = todo.pop()
        if is_statement(element) or isinstance(element, elements.Over):
            continue
        if is_aggregate(element):
            return True
        todo.extend(element.get_children())
    return False


def _contains_fallible(node: Any, parameters: Parameters) -> bool:
    return any(can_fail(e, parameters) for e in _same_level(node))


def _inner_statements(node: Any, marks: _Marks) -> None:
    for element in _same_level(node, include_statements=True):
        if is_statement(element) and element is not node:
            _statement(element, marks)


def _equal_nodes(node: Any, key: Any) -> Iterator[Any]:
    for element in _same_level(node):
        if element is not key and type(element) is type(key) and element.compare(key):
            yield element


def _same_level(node: Any, *, include_statements: bool = False) -> Iterable[Any]:
    """``node`` and what it holds, down to (not into) the statements inside it."""
    todo = [node]
    while todo:
        element = todo.pop()
        if is_statement(element):
            if include_statements:
                yield element
            continue
        yield element
        todo.extend(element.get_children())
