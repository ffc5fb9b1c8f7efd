"""Which statements a user session may run: an allow-list of the kinds of SQL they are built of.

A user session filters reads by adding the policy's predicate to every reference to a table
(``coverage`` checks, as the statement compiles, that each has it). That is only sound if the
table references are the only way the SQL reads rows; so every node of a statement must be of
a kind listed in ``KINDS`` below: a kind whose SQL reads rows only through the table
references it renders. Anything else (SQL text, a function that runs a query or reads a file,
a hint, a kind added by a newer SQLAlchemy or a dialect) is refused, whether or not anyone
thought of it. The walk follows every slot SQLAlchemy declares for a node, not only the
children ``get_children()`` reports (it leaves out options, prefixes and hints).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm.util import AliasedClass
from sqlalchemy.sql import (
    elements,
    selectable,
)
from sqlalchemy.sql.base import ExecutableOption

from .._compat.sqlalchemy import (
    AttributeStrategyLoad,
    ClassStrategyLoad,
    InternalTraversal,
    PathRegistry,
    ScopeOption,
    TokenStrategyLoad,
    node_kind,
    parent_entity,
    plain,
    statement_options,
    traverse_internals_of,
)
from ..errors import UnfilterableStatementError
from . import fallible, fallible_marks, guards
from .shape_kinds import (
    CANNOT_FAIL,
    KINDS,
    LEAVES,
    NODE_SLOTS,
    RAW_SQL_SLOTS,
    USE_ORM,
    VALUE_SLOTS,
    WRITES,
    kind_name,
)
from .sql_types import require_plain_type


def require_known_shape(statement: Any) -> set[Any]:
    """Raise UnfilterableStatementError unless every node of ``statement`` is of a kind in
    ``KINDS`` and passes that kind's check; return the mappers of the entities it names."""
    return known_shape(statement).mappers


@dataclass(frozen=True)
class Shape:
    """What the walk of a statement found."""

    mappers: set[Any]
    may_fail: bool
    """Whether some term can fail (``fallible.can_fail``): only then is it worth marking."""


def known_shape(statement: Any, dialect: Dialect | None = None) -> Shape:
    """``require_known_shape``, also telling whether a term of the statement can fail; with
    ``dialect``, the SQL its types write there is checked too (``sql_types``)."""
    seen: set[int] = set()
    mappers: set[Any] = set()
    may_fail = False
    todo = [statement]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        entity = parent_entity(node)
        if entity is not None:
            _require_own_table(entity)
            mappers.add(entity.mapper)
        kind = ScopeOption if isinstance(node, ScopeOption) else node_kind(node)
        if kind not in KINDS:
            raise UnfilterableStatementError(
                f"{kind_name(kind)} cannot be filtered in a user session. {USE_ORM}"
            )
        if kind in WRITES and node is not statement:
            # An INSERT, UPDATE or DELETE inside another statement (a CTE of a SELECT, on
            # PostgreSQL) would write without the checks of a write.
            raise UnfilterableStatementError(
                f"{kind.__name__.upper()} inside another statement cannot be checked in a user "
                f"session; run it as a statement of its own. {USE_ORM}"
            )
        check = KINDS[kind]
        if check is not None:
            check(node)
        if isinstance(node, elements.ColumnElement) or kind is elements.TypeClause:
            require_plain_type(node.type, dialect, written=kind in _WRITTEN_TYPES)
        if not may_fail and kind not in CANNOT_FAIL:
            may_fail = fallible.can_fail(node)
        if fallible.compares_a_subquery_across_classes(node):
            raise UnfilterableStatementError(
                "A comparison of a subquery's value with a value of another class (text with "
                "a number...) converts each row's value, hidden rows' too, and MariaDB fails "
                f"quoting one; compare values of one class (CAST the subquery's). {USE_ORM}"
            )
        truth_tested = fallible_marks.value_as_condition(node)
        if truth_tested is not None:
            what = getattr(truth_tested, "key", None) or type(truth_tested).__name__
            raise UnfilterableStatementError(
                f"A value ({what}) is tested for truth as a condition; the "
                "database converts each row's value to do that, hidden rows' too (MariaDB fails "
                "quoting one). A user session refuses it: compare the value instead "
                f"(col != '', col IS NOT NULL). {USE_ORM}"
            )
        if kind not in LEAVES and not guards.is_policy_guard(node):
            _add_children(node, todo)
    if may_fail and not isinstance(statement, ExecutableOption):
        for option in statement_options(statement):
            if known_shape(option, dialect).may_fail:
                # The ORM adds a loader's criteria (``joinedload(A.b.and_(...))``) as it
                # compiles, after the terms that can fail were wrapped (``fallible``).
                raise UnfilterableStatementError(
                    "A loader option's criteria that can fail (arithmetic, CAST, a function) "
                    "cannot be run under the read filters in a user session; compare columns "
                    f"with values there, or load the related rows with a select(). {USE_ORM}"
                )
    return Shape(mappers, may_fail)



_WRITTEN_TYPES = frozenset({elements.Cast, elements.TypeClause})
"""Kinds whose type is written into the SQL (a CAST's target)."""


def _add_children(node: Any, todo: list[Any]) -> None:
    """Add what ``node`` holds in its declared slots to ``todo``. A slot whose kind renders
    its content as raw SQL must be empty; a slot of an unknown kind too."""
    for name, action in _plan(type(node)):
        value: Any = getattr(node, name, None)
        if name == "dialect_options":
            # Only the options given: the mapping fills in each dialect's defaults as that
            # dialect's compiler reads them (MySQL's, once a statement compiled there).
            value = node.dialect_kwargs
        if action is _WALK:
            _add_nodes(value, todo)
        elif value is None or (not isinstance(value, elements.ClauseElement) and not value):
            continue
        elif action is _ORM_FUNCTIONS and _from_the_orm(value):
            continue  # the ORM's own loaders (a lazy load's reverse, a relationship's order)
        else:
            raise UnfilterableStatementError(
                f"{kind_name(node_kind(node))} with {name.strip('_')} cannot be checked in a "
                f"user session (SQL text the policy cannot see into). {USE_ORM}"
            )


def _from_the_orm(compile_functions: Any) -> bool:
    """Whether compile-state functions are all the ORM's own."""
    return all(
        str(getattr(fn, "__module__", "")).startswith("sqlalchemy.orm.")
        for fn, _key in compile_functions
    )


def _add_nodes(value: Any, todo: list[Any]) -> None:
    """Add the SQL elements and options in a slot's value (a node, or lists, tuples and dicts
    of them) to ``todo``; mapped classes and aliases are checked where they stand."""
    if value is None:
        return
    if isinstance(value, _NODES):
        todo.append(value)
    elif isinstance(value, _COLLECTIONS):
        for item in value:
            _add_nodes(item, todo)
    elif isinstance(value, dict):
        for key, item in value.items():
            _add_nodes(key, todo)
            _add_nodes(item, todo)
    elif isinstance(value, PathRegistry):
        # A loader option's path (``joinedload(A.b.of_type(alias))``): it ends in an entity.
        _require_own_table(getattr(value, "entity", None))
    elif getattr(value, "is_aliased_class", False) or isinstance(value, AliasedClass):
        _require_own_table(sa_inspect(value))


_NODES = (
    elements.ClauseElement, ExecutableOption,
    # what a loader option holds: each relationship's strategy, with its criteria
    # (``joinedload(A.b.and_(...))``), which the ORM renders into the statement
    AttributeStrategyLoad, ClassStrategyLoad, TokenStrategyLoad,
)
_COLLECTIONS = (list, tuple, set, frozenset)


_WALK, _EMPTY, _ORM_FUNCTIONS = "walk", "must be empty", "ORM functions only"
_PLANS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def _plan(cls: type[Any]) -> tuple[tuple[str, str], ...]:
    """What to do with each declared slot of ``cls`` (slots of plain values: nothing)."""
    plan = _PLANS.get(cls)
    if plan is None:
        steps = []
        for name, slot in traverse_internals_of(cls):
            if slot is InternalTraversal.dp_compile_state_funcs:
                steps.append((name, _ORM_FUNCTIONS))
            elif slot in RAW_SQL_SLOTS or slot not in NODE_SLOTS | VALUE_SLOTS:
                steps.append((name, _EMPTY))
            elif slot in NODE_SLOTS:
                steps.append((name, _WALK))
        plan = _PLANS[cls] = tuple(steps)
    return plan


def _require_own_table(entity: Any) -> None:
    """Refuse ``aliased(Model, other_table)``: the model's rules would judge another model's
    rows (``adapt_on_names`` maps any table with matching column names)."""
    if not getattr(entity, "is_aliased_class", False):
        return
    base = plain(entity.selectable)
    while isinstance(base, selectable.Alias):
        base = plain(base.element)
    if isinstance(base, selectable.TableClause) and base not in entity.mapper.tables:
        raise UnfilterableStatementError(
            f"aliased({entity.mapper.class_.__name__}, {base.name}) reads another table "
            f"under {entity.mapper.class_.__name__}'s rules. {USE_ORM}"
        )
