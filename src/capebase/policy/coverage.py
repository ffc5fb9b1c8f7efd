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

from sqlalchemy import Delete, Table, Update, and_, or_
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
from .fallible import fallible, is_aggregate, is_statement
from .guards import OPEN_GUARDS, POLICY, TRUSTED, is_policy_guard, policy_guard
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
    for condition in _conjuncts(where_criteria(level["selectable"])):
        if is_policy_guard(condition):
            guarded |= _filtered_by(condition)
    for join in level.get("asfrom_froms", ()):
        if not isinstance(join, selectable.Join) or join.full:
            continue
        # The ON clause drops rows of the right side (and, in an inner join, of the left):
        # of the preserved side of an outer join it drops nothing.
        reach = set(_surface(join.right))
        if not join.isouter:
            reach |= set(_surface(join.left))
        for condition in _conjuncts([join.onclause]):
            if is_policy_guard(condition):
                guarded |= _filtered_by(condition) & reach
    return guarded


def _conjuncts(conditions: Iterable[Any]) -> Iterator[Any]:
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


def _surface(from_: Any) -> Iterator[Any]:
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


def _filtered_by(condition: policy_guard) -> set[Any]:
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
        elif not isinstance(element, selectable.Selectable):
            todo.extend(element.get_children())


# -- terms that can fail (``fallible``) ---------------------------------------------------------

_CONDITIONS = "capebase.row_conditions"
"""Key of a level's (guard, condition, references) triples in a compiler level."""


@compiles(fallible)
def _compile_fallible(element: fallible, compiler: SQLCompiler, **kw: Any) -> str:
    term = compiler.process(element.term, **kw)
    if kw.get(TRUSTED):
        return f"({term})"
    # Also outside a user statement: change capture reads a bulk statement's rows with its
    # WHERE clause, guards and all.
    conditions = _row_conditions(compiler, element.term, kw.get(OPEN_GUARDS, frozenset()))
    if not conditions:
        return f"({term})"
    quiet = {k: v for k, v in kw.items() if k not in _RESULT_KEYWORDS}
    condition = compiler.process(and_(*conditions), **quiet)
    if compiler.dialect.name == "sqlite":
        # SQLite propagates a WHERE clause's ``column = constant`` into its other terms,
        # CASE conditions included: the condition would become true and the term run on any
        # row. It does not propagate into a subquery.
        condition = f"(SELECT {condition})"
    return f"CASE WHEN {condition} THEN {term} END"


_RESULT_KEYWORDS = frozenset({
    "add_to_result_map", "within_columns_clause", "within_label_clause",
    "render_label_as_label", "result_map_targets",
})
"""Compiler keywords of a SELECT-list column: the conditions are no column of the result."""


def _row_conditions(compiler: SQLCompiler, term: Any, open_guards: frozenset[int]) -> list[Any]:
    """The policy's filters of the rows ``term`` may meet: every guard of the level rendering
    it (a term can run before any of them, and its running at all may depend on another's
    row), and those of outer levels' references it reads (a correlated subquery)."""
    levels: list[Any] = compiler.stack
    if not levels:
        return []
    current = levels[-1]
    chosen = {id(g): c for g, c, _refs in _conditions_of(current) if id(g) not in open_guards}
    own = set(_references_of(current))
    for column in _term_columns(term):
        reference = plain(column.table)
        _require_filtered_origin(reference, column)
        if reference in own:
            continue
        for level in reversed(levels[:-1]):
            found = [(g, c) for g, c, refs in _conditions_of(level) if reference in refs]
            if found:
                chosen.update((id(g), c) for g, c in found if id(g) not in open_guards)
                break
    return list(chosen.values())


def _conditions_of(level: dict[str, Any]) -> list[tuple[Any, Any, set[Any]]]:
    """The guards filtering a level's rows, each with the condition a row of the level meets
    when the guard passes it (on the side an outer join may leave empty, also a row of NULLs)
    and the references it filters."""
    if _CONDITIONS not in level:
        found: list[tuple[Any, Any, set[Any]]] = []
        for condition in _conjuncts(where_criteria(level["selectable"])):
            if is_policy_guard(condition):
                found.append((condition, condition, _filtered_by(condition)))
        for from_ in level.get("asfrom_froms", ()):
            _join_conditions(from_, nullable=False, found=found)
        level[_CONDITIONS] = found
    conditions: list[tuple[Any, Any, set[Any]]] = level[_CONDITIONS]
    return conditions


def _join_conditions(from_: Any, *, nullable: bool, found: list[Any]) -> None:
    if isinstance(from_, selectable.FromGrouping):
        _join_conditions(from_.element, nullable=nullable, found=found)
    if not isinstance(from_, selectable.Join):
        return
    _join_conditions(from_.left, nullable=nullable or from_.full, found=found)
    right_nullable = nullable or from_.isouter or from_.full
    _join_conditions(from_.right, nullable=right_nullable, found=found)
    right = set(_surface(from_.right))
    for condition in _conjuncts([from_.onclause]):
        if not is_policy_guard(condition):
            continue
        references = _filtered_by(condition)
        empty_side = references & right if right_nullable else set()
        if nullable:
            empty_side = references
        found.append((condition, _or_missing(condition, empty_side), references))


def _or_missing(guard: Any, references: set[Any]) -> Any:
    """``guard``, or else the row of an outer join's empty side (its primary key NULL)."""
    for reference in references:
        key = list(getattr(reference, "primary_key", ()))
        if key:
            return or_(guard, key[0].is_(None))
    return guard


def _references_of(level: dict[str, Any]) -> Iterator[Any]:
    statement = level["selectable"]
    if isinstance(statement, Update | Delete):
        yield plain(statement.table)
    for from_ in level.get("asfrom_froms", ()):
        yield from _surface(from_)


def _term_columns(term: Any) -> Iterator[Any]:
    """The columns ``term`` reads at its own level (not inside its subqueries)."""
    todo = [term]
    while todo:
        element = todo.pop()
        if isinstance(element, elements.ColumnClause):
            if getattr(element, "table", None) is not None:
                yield element
        elif not is_statement(element):
            todo.extend(element.get_children())


def _require_filtered_origin(reference: Any, column: Any) -> None:
    """A term that can fail may read a subquery's column only if the subquery computed it
    where its own filter applies (a term it wrapped itself, an aggregate, a value): a bare
    column of a subquery is the bare column of a table once the database merges the subquery
    into the outer query, and the outer term would meet that table's hidden rows. A recursive
    CTE is never merged: its rows are computed, filtered, first."""
    base = reference
    while isinstance(base, selectable.AliasedReturnsRows | selectable.FromGrouping):
        if getattr(base, "recursive", False):
            return
        base = plain(base.element)
    if not isinstance(base, selectable.SelectBase):
        return
    origin = _origin(base, column.key)
    while isinstance(origin, elements.Label):
        origin = origin.element
    if isinstance(origin, fallible | elements.BindParameter | elements.Null | elements.Over):
        return
    if is_aggregate(origin) or (
        isinstance(origin, elements.ColumnClause)
        and not isinstance(plain(getattr(origin, "table", None)), Table)
        and getattr(origin, "table", None) is not None
        and not _is_derived(origin.table)
    ):
        return
    if isinstance(origin, elements.ColumnClause) and _is_derived(origin.table):
        _require_filtered_origin(plain(origin.table), origin)
        return
    raise UnfilterableStatementError(
        f"An expression that can fail (arithmetic, CAST, a function) reads {column.key} of a "
        "subquery, which the database may compute on rows the caller cannot read; compute it "
        f"inside the subquery. {USE_ORM}"
    )


def _is_derived(from_: Any) -> bool:
    base = plain(from_)
    while isinstance(base, selectable.AliasedReturnsRows | selectable.FromGrouping):
        base = plain(base.element)
    return isinstance(base, selectable.SelectBase)


def _origin(statement: Any, key: str) -> Any:
    while isinstance(statement, selectable.CompoundSelect):
        statement = statement.selects[0]
    while isinstance(statement, selectable.SelectStatementGrouping):
        statement = statement.element
    columns = statement.selected_columns
    return columns.get(key)
