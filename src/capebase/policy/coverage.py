"""Every table a user session's statement reads is filtered where it is read: checked as the
statement compiles, reference by reference.

The policy's read predicate reaches a statement as ``with_loader_criteria`` (``statements``),
and SQLAlchemy decides where it lands: the WHERE clause of the SELECT that reads an entity, or
the ON clause of the join that brings it in. Which uses of an entity get it is SQLAlchemy's
business and has changed between releases; so instead of predicting it, each predicate is
wrapped in a ``policy_guard`` that names the FROM reference it filters (its anchors: columns of
the entity, adapted to an alias along with the predicate), and ``_check_table`` looks at each
table reference as the compiler renders it. In a user session's statement, a table reference
compiles only if

- a guard for that very reference (the table, or the alias it is rendered under) is one of the
  AND-ed conditions of the WHERE clause of the SELECT, UPDATE or DELETE that renders it, or of
  the ON clause of a join that brings it in and drops its rows when the condition fails (an
  inner join, or the right side of a LEFT OUTER JOIN; never a FULL one);
- or it is an association table no rule governs (free to read, like any plain link table);
- or it is the target of an INSERT, whose rows are checked one by one (``statements``).

An UPDATE or DELETE renders only its own table (no UPDATE ... FROM, DELETE ... USING). The
tables inside the policy's own predicates (a rule's subquery) are the rule's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Delete, Table, Update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import elements, operators, selectable
from sqlalchemy.sql.compiler import SQLCompiler

from .._compat.sqlalchemy import (
    ScopeOption,
    compiling_level,
    plain,
    statement_options,
    visit_table,
    where_criteria,
)
from ..errors import UnfilterableStatementError
from .fallible import is_statement
from .guards import POLICY, TRUSTED, is_policy_guard, policy_guard
from .shape_kinds import USE_ORM

_GUARDED = "capebase.guarded"
"""Key of the guarded references in a compiler level (computed once per level)."""


class UserStatement(ScopeOption):
    """Marks a statement of a user session; its payload is the ``(schema, name)`` of every
    table the statement may read unfiltered (association tables no rule governs)."""

    inherit_cache = True
    made_by: object | None = None


def user_statement(free: Iterable[Any]) -> UserStatement:
    """The option marking a user session's statement, given the tables it may read freely."""
    option = UserStatement(frozenset((table.schema, table.name) for table in free))
    option.made_by = POLICY
    return option


def require_covered(statement: Any, dialect: Any) -> None:
    """Compile ``statement`` (a user session's, marked) now, so that a table it reads
    unfiltered is refused before any SQL runs on its behalf (a bulk statement's change
    capture reads the rows it matches first)."""
    statement.compile(dialect=dialect)


def _user_scope(compiler: SQLCompiler) -> UserStatement | None:
    for option in statement_options(getattr(compiler, "statement", None)):
        if isinstance(option, UserStatement) and option.__dict__.get("made_by") is POLICY:
            return option
    return None


def _check_table(table: Any, compiler: SQLCompiler, **kw: Any) -> str:
    if (kw.get("asfrom") or kw.get("within_tstring")) and not kw.get(TRUSTED):
        scope = _user_scope(compiler)
        if scope is not None:
            _require_guarded(table, compiler, scope, kw)
    return visit_table(compiler, table, **kw)


compiles(Table)(_check_table)
compiles(selectable.TableClause)(_check_table)


def _require_guarded(table: Any, compiler: SQLCompiler, scope: UserStatement, kw: Any) -> None:
    alias = kw.get("enclosing_alias")
    reference = plain(alias if alias is not None and alias.element is table else table)
    level = compiling_level(compiler)
    if level is None:
        raise UnfilterableStatementError(f"A bare table cannot be run in a user session. {USE_ORM}")
    statement = level["selectable"]
    if isinstance(statement, Update | Delete):
        if reference is plain(statement.table) and _guarded_in(level, reference):
            return
        raise UnfilterableStatementError(
            f"An UPDATE or DELETE in a user session may read only its own table "
            f"({getattr(table, 'name', table)} is another FROM, which the policy's filter "
            f"does not reach); put other entities in a select(...) subquery. {USE_ORM}"
        )
    if kw.get("iscrud") and getattr(statement, "is_insert", False):
        return  # the INSERT's target: each row it adds is checked
    if (table.schema, table.name) in scope.payload:
        return
    if _guarded_in(level, reference):
        return
    raise UnfilterableStatementError(
        f"Table {getattr(table, 'name', table)} is read without the permission filter at this "
        "place in the statement (it is a Core table, or an entity the policy's criteria do "
        f"not reach here); a user session cannot run it. {USE_ORM}"
    )


def _guarded_in(level: dict[str, Any], reference: Any) -> bool:
    """Whether a guard for ``reference`` filters the rows of the level rendering it."""
    if _GUARDED not in level:
        level[_GUARDED] = _guarded_references(level)
    guarded: set[Any] = level[_GUARDED]
    return reference in guarded



def _guarded_references(level: dict[str, Any]) -> set[Any]:
    guarded: set[Any] = set()
    for condition in conjuncts(where_criteria(level["selectable"])):
        if is_policy_guard(condition):
            guarded |= filtered_by(condition)
    for join in level.get("asfrom_froms", ()):
        if not isinstance(join, selectable.Join) or join.full:
            continue
        # The ON clause drops rows of the right side (and, in an inner join, of the left):
        # of the preserved side of an outer join it drops nothing.
        reach = set(surface(join.right))
        if not join.isouter:
            reach |= set(surface(join.left))
        for condition in conjuncts([join.onclause]):
            if is_policy_guard(condition):
                guarded |= filtered_by(condition) & reach
    return guarded


def conjuncts(conditions: Iterable[Any]) -> Iterator[Any]:
    """The conditions AND-ed together at the top of ``conditions``: parentheses, AND lists
    and ``IS true`` (which SQLAlchemy wraps a function condition in) are opened."""
    todo = [c for c in conditions if c is not None]
    while todo:
        condition = todo.pop()
        if isinstance(condition, elements.Grouping) or (
            isinstance(condition, elements.AsBoolean) and condition.operator is operators.is_true
        ):
            todo.append(condition.element)
        elif (
            isinstance(condition, elements.BooleanClauseList)
            and condition.operator is operators.and_
        ):
            todo.extend(condition.clauses)
        else:
            yield condition


def surface(from_: Any) -> Iterator[Any]:
    """The tables and aliases a FROM element renders at its own level (through joins)."""
    todo = [from_]
    while todo:
        element = todo.pop()
        if isinstance(element, selectable.Join):
            todo.extend((element.left, element.right))
        elif isinstance(element, selectable.FromGrouping):
            todo.append(element.element)
        else:
            yield plain(element)


def filtered_by(condition: policy_guard) -> set[Any]:
    """The references a guard filters: its anchors' tables (or aliases), provided that its
    predicate was adapted along with them. A predicate that still reads the entity's own
    table where the anchors moved to an alias (a rule written with Core columns, which
    SQLAlchemy does not adapt) filters the wrong rows, so it covers nothing."""
    *anchors, predicate = list(condition.clauses)
    references = {plain(anchor.table) for anchor in anchors}
    bases = {_base(reference) for reference in references}
    for column in _surface_columns(predicate):
        table = plain(getattr(column, "table", None))
        if table is not None and _base(table) in bases and table not in references:
            return set()
    return references


def _base(reference: Any) -> Any:
    while isinstance(reference, selectable.FromClauseAlias):
        reference = plain(reference.element)
    return reference


def _surface_columns(predicate: Any) -> Iterator[Any]:
    todo = [predicate]
    while todo:
        element = todo.pop()
        if isinstance(element, elements.ColumnClause):
            yield element
        elif not is_statement(element):  # a SQL function's arguments too
            todo.extend(element.get_children())
