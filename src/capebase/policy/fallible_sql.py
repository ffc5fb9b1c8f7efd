"""How a term that can fail (``fallible``) renders: ``CASE WHEN <the policy's filters of the
rows it may meet> THEN term END``, the filters found, like ``coverage`` finds them, in the
statement as it compiles (see ``fallible`` for why)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Delete, Update, and_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import elements, selectable
from sqlalchemy.sql.compiler import SQLCompiler

from .._compat.sqlalchemy import plain, where_criteria
from ..errors import UnfilterableStatementError
from .coverage import conjuncts, filtered_by, surface
from .fallible import fallible, is_aggregate, is_statement
from .guards import OPEN_GUARDS, TRUSTED, is_policy_guard
from .shape_kinds import USE_ORM

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
        for condition in conjuncts(where_criteria(level["selectable"])):
            if is_policy_guard(condition):
                found.append((condition, condition, filtered_by(condition)))
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
    right = set(surface(from_.right))
    for condition in conjuncts([from_.onclause]):
        if not is_policy_guard(condition):
            continue
        references = filtered_by(condition)
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
        yield from surface(from_)


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
    base = _unaliased(reference)
    if base is None:
        return
    for origin in _origins(base, column):
        while isinstance(origin, elements.Label):
            origin = origin.element
        if origin is None or is_aggregate(origin) or isinstance(origin, _FILTERED_ORIGINS):
            continue
        if isinstance(origin, elements.ColumnClause):
            table = getattr(origin, "table", None)
            if table is None or isinstance(_base_from(table), selectable.Values):
                continue  # a literal column, a VALUES list: no row of a table
            if _unaliased(plain(table)) is not None:
                _require_filtered_origin(plain(table), origin)
                continue
        raise UnfilterableStatementError(
            f"An expression that can fail (arithmetic, CAST, a function) reads {column.key} "
            "of a subquery, which the database may compute on rows the caller cannot read; "
            f"compute it inside the subquery. {USE_ORM}"
        )


_FILTERED_ORIGINS = (fallible, elements.BindParameter, elements.Null, elements.Over)
"""What a subquery's column may be for an outer term that can fail to read it."""


def _unaliased(reference: Any) -> Any:
    """The SELECT a derived table (subquery, CTE, alias of either) selects from, or None for
    anything else (a table, an alias of one, a recursive CTE)."""
    base = reference
    while isinstance(base, selectable.AliasedReturnsRows | selectable.FromGrouping):
        if getattr(base, "recursive", False):
            return None
        base = plain(base.element)
    return base if isinstance(base, selectable.SelectBase) else None


def _base_from(from_: Any) -> Any:
    base = plain(from_)
    while isinstance(base, selectable.AliasedReturnsRows | selectable.FromGrouping):
        base = plain(base.element)
    return base


def _origins(statement: Any, column: Any) -> Iterator[Any]:
    """The expressions a derived table's ``column`` is made of: one per member of a UNION."""
    members = _members(statement)
    first = list(members[0].selected_columns)
    keys = [getattr(c, "key", None) for c in first]
    if column.key not in keys:
        yield None
        return
    position = keys.index(column.key)
    for member in members:
        yield list(member.selected_columns)[position]


def _members(statement: Any) -> list[Any]:
    if isinstance(statement, selectable.CompoundSelect):
        return [member for part in statement.selects for member in _members(part)]
    if isinstance(statement, selectable.SelectStatementGrouping):
        return _members(statement.element)
    return [statement]
