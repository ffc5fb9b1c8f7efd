"""Marking the terms of a statement that can fail (``fallible.can_fail``), before it compiles.

``mark`` wraps each in ``fallible``, which renders as ``CASE WHEN <the read filters> THEN term
END``; a value tested for truth that is no condition is named by ``value_as_condition``.

In a grouped SELECT, an expression outside the aggregates is computed from the group's keys:
a key that is itself fallible, or that such an expression reads, is wrapped once and that same
term replaces it everywhere in the SELECT (GROUP BY included), so the database still sees the
selected expressions as grouped ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy.sql import elements, operators, selectable, visitors

from .._compat.sqlalchemy import (
    returning_of,
    select_parts,
    statement_options,
    where_criteria,
)
from . import guards
from .fallible import (
    _COMPARISONS,
    _MAX_DEPTH,
    _NUMBER,
    _OUR_COMPARISONS,
    _PATTERN_OPERATORS,
    Parameters,
    _class_of,
    can_fail,
    fallible,
    is_aggregate,
    is_statement,
)
from .sqlexpr import NO_OPTIONS

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
