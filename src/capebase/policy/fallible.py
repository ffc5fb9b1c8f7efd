"""Terms that can fail run only on rows the caller may read.

A database evaluates a statement's conditions in the order it likes, and may merge a
subquery's into its outer query's: an app's term can meet a row before the policy's filter
drops it. A term that cannot fail (a column compared with a value, IS NULL, IN a list, AND, OR)
tells nothing by meeting it; a term that can (arithmetic that overflows, a CAST, a function,
a scalar subquery of several rows) would fail, or warn, because of a hidden row, and the error
(which often quotes the value) answers a question about that row.

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

from collections.abc import Iterable, Iterator
from typing import Any

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


def can_fail(node: Any) -> bool:
    """Whether evaluating ``node`` itself (its operands given) can raise or warn."""
    if isinstance(node, (fallible, guards.policy_guard, guards.app_expression, *_OUR_COMPARISONS)):
        return False
    if isinstance(node, selectable.ScalarSelect):
        return True  # more than one row is an error
    if isinstance(node, elements.BinaryExpression):
        if node.operator in _PATTERN_OPERATORS:
            return _reads_columns(node.right)
        return node.operator not in _SAFE_OPERATORS or _mixes_types(node)
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


def _mixes_types(node: elements.BinaryExpression[Any]) -> bool:
    """A comparison of a text column with a number column: MySQL converts and warns, quoting
    the text."""
    affinities = {
        type_affinity(side.type)
        for side in (node.left, node.right)
        if isinstance(side, elements.ColumnClause)
    }
    return len(affinities) > 1


def _reads_columns(node: Any) -> bool:
    return any(isinstance(e, elements.ColumnClause) for e in visitors.iterate(node))


# -- marking ----------------------------------------------------------------------------------


class _Marks:
    """What to wrap: id of a node -> the node whose ``fallible`` replaces it (itself, or the
    group key it equals)."""

    def __init__(self) -> None:
        self.by_id: dict[int, Any] = {}
        self.seen: set[int] = set()

    def wrap(self, node: Any) -> None:
        if isinstance(node, elements.ColumnElement):
            self.by_id[id(node)] = node


def mark(statement: Any) -> Any:
    """``statement`` with every term that can fail wrapped in ``fallible`` (the statement
    itself when none can)."""
    marks = _Marks()
    _statement(statement, marks)
    if not marks.by_id:
        return statement
    return _replace(statement, marks.by_id)


def mark_expression(value: Any) -> Any:
    """An app's expression (a bulk UPDATE's SET value) as a per-row term: wrapped if it can
    fail."""
    marks = _Marks()
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
        if index in needed or _contains_fallible(key):
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
    if can_fail(node):
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
    under = under_fallible or can_fail(node)
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


def _contains_fallible(node: Any) -> bool:
    return any(can_fail(e) for e in _same_level(node))


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
