"""Which statements a user session may run: an allow-list of the kinds of SQL they are built of.

A user session filters reads by adding the policy's predicate to every reference to a table
(``coverage`` checks, as the statement compiles, that each has it). That is only sound if the
table references are the only way the SQL reads rows; so every node of a statement must be of
a kind listed in ``_KINDS`` below: a kind whose SQL reads rows only through the table
references it renders. Anything else (SQL text, a function that runs a query or reads a file,
a hint, a kind added by a newer SQLAlchemy or a dialect) is refused, whether or not anyone
thought of it. The walk follows every slot SQLAlchemy declares for a node, not only the
children ``get_children()`` reports (it leaves out options, prefixes and hints).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import LoaderCriteriaOption, UserDefinedOption
from sqlalchemy.orm.path_registry import PathRegistry
from sqlalchemy.orm.strategy_options import Load
from sqlalchemy.orm.util import AliasedClass
from sqlalchemy.sql import (
    Delete,
    Insert,
    Select,
    Update,
    elements,
    functions,
    operators,
    selectable,
)
from sqlalchemy.sql.base import ExecutableOption
from sqlalchemy.types import TypeDecorator
from sqlmodel.sql.expression import Select as SQLModelSelect
from sqlmodel.sql.expression import SelectOfScalar

from .._compat.sqlalchemy import (
    AliasAdaptingCriteria,
    AttributeStrategyLoad,
    ClassStrategyLoad,
    InternalTraversal,
    LabelReference,
    MemoizedSelectEntities,
    OffsetLimitParam,
    ORMJoin,
    ScopeOption,
    TextualLabelReference,
    TokenStrategyLoad,
    generic_functions,
    node_kind,
    parent_entity,
    plain,
    traverse_internals_of,
)
from ..errors import UnfilterableStatementError
from . import guards, sqlexpr
from .sql_functions import SAFE_FUNCTIONS

USE_ORM = (
    "Use ORM statements on mapped classes (select(Model), update(Model), ...), or "
    "`async with cape.get_privileged_session()` for SQL the policy cannot see into."
)

_SAFE_OPERATOR = re.compile(r"[-+*/%<>=!~@#^&|?]{1,3}")
"""A custom operator (``column.op("@>")``) is rendered as written: punctuation only."""
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAR_OR_NUMBER = re.compile(r"\*|[0-9]+")
_OPERATOR_MODULES = frozenset({"sqlalchemy.sql.operators", "_operator", "operator"})


def require_known_shape(statement: Any) -> set[Any]:
    """Raise UnfilterableStatementError unless every node of ``statement`` is of a kind in
    ``_KINDS`` and passes that kind's check; return the mappers of the entities it names."""
    seen: set[int] = set()
    mappers: set[Any] = set()
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
        if kind not in _KINDS:
            raise UnfilterableStatementError(
                f"{_name(kind)} cannot be filtered in a user session. {USE_ORM}"
            )
        if kind in _WRITES and node is not statement:
            # An INSERT, UPDATE or DELETE inside another statement (a CTE of a SELECT, on
            # PostgreSQL) would write without the checks of a write.
            raise UnfilterableStatementError(
                f"{kind.__name__.upper()} inside another statement cannot be checked in a user "
                f"session; run it as a statement of its own. {USE_ORM}"
            )
        check = _KINDS[kind]
        if check is not None:
            check(node)
        if kind not in _LEAVES and not guards.is_policy_guard(node):
            _add_children(node, todo)
    return mappers


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
                f"{_name(node_kind(node))} with {name.strip('_')} cannot be checked in a "
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


_NODES = (elements.ClauseElement, ExecutableOption)
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
            elif slot in _RAW_SQL_SLOTS or slot not in _NODE_SLOTS | _VALUE_SLOTS:
                steps.append((name, _EMPTY))
            elif slot in _NODE_SLOTS:
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


def _name(kind: type[Any]) -> str:
    if issubclass(kind, elements.TextClause):
        return "text() SQL"
    if issubclass(kind, elements.ColumnClause):
        return "literal_column() SQL"
    if kind.__name__ == "FromStatement":
        return "select(...).from_statement(...)"
    if issubclass(kind, Insert) and kind is not Insert:  # a dialect's, with ON CONFLICT...
        return "INSERT ... ON CONFLICT / ON DUPLICATE KEY"
    return kind.__name__.lstrip("_")


# -- checks of single kinds --------------------------------------------------------------------


def _refuse(why: str) -> Callable[[Any], None]:
    def check(node: Any) -> None:
        raise UnfilterableStatementError(f"{why} cannot be filtered in a user session. {USE_ORM}")

    return check


def _column(node: Any) -> None:
    # ``*`` and a number, as SQLAlchemy writes EXISTS (SELECT 1 ...) for has() and any().
    if node.is_literal and not _STAR_OR_NUMBER.fullmatch(str(node.name)):
        _refuse("literal_column() SQL")(node)


def _function(node: Any) -> None:
    name = str(node.name).lower()
    if name not in SAFE_FUNCTIONS or getattr(node, "packagenames", None):
        raise UnfilterableStatementError(
            f"The SQL function {node.name}() is not on capebase's list of functions a user "
            f"session may call (policy.sql_functions.SAFE_FUNCTIONS). {USE_ORM}"
        )


def _operator(node: Any) -> None:
    for op in (getattr(node, "operator", None), getattr(node, "modifier", None)):
        if op is None:
            continue
        if isinstance(op, operators.custom_op):
            if not _SAFE_OPERATOR.fullmatch(op.opstring):
                raise UnfilterableStatementError(
                    f"The custom operator {op.opstring!r} is SQL text a user session cannot "
                    f"check. {USE_ORM}"
                )
        elif getattr(op, "__module__", None) not in _OPERATOR_MODULES:
            raise UnfilterableStatementError(f"Unknown SQL operator {op!r}. {USE_ORM}")


def _word(attribute: str) -> Callable[[Any], None]:
    """A string ``attribute`` rendered as written (EXTRACT's field, a collation): one word."""

    def check(node: Any) -> None:
        value = getattr(node, attribute, "")
        if not (isinstance(value, str) and _WORD.fullmatch(value)):
            raise UnfilterableStatementError(
                f"{_name(node_kind(node))} {value!r} cannot be checked in a user session. "
                f"{USE_ORM}"
            )

    return check


def _sqlalchemy_type(node: Any) -> None:
    """A type written into the SQL (a CAST's target): SQLAlchemy's own, which render as
    type names; a user-defined type renders whatever text its ``get_col_spec`` returns."""
    type_ = node.type
    while isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    if not type(type_).__module__.startswith("sqlalchemy."):
        raise UnfilterableStatementError(
            f"CAST to {type(type_).__name__}, a user-defined type, cannot be checked in a user "
            f"session. {USE_ORM}"
        )


def _loader_criteria(node: Any) -> None:
    if node.deferred_where_criteria:
        _refuse("with_loader_criteria() given a lambda")(node)


# -- the allow-list -----------------------------------------------------------------------------

_KINDS: dict[type[Any], Callable[[Any], None] | None] = {
    # statements and what they read from; every table reference is checked by ``coverage``
    Select: None,
    SQLModelSelect: None,  # sqlmodel.select(): SQLAlchemy's, typed
    SelectOfScalar: None,
    selectable.CompoundSelect: None,
    selectable.SelectStatementGrouping: None,
    selectable.ScalarSelect: None,
    selectable.Exists: _operator,
    selectable.Subquery: None,
    selectable.Alias: None,
    selectable.CTE: None,
    selectable.Lateral: None,
    selectable.TableSample: None,
    selectable.Join: None,
    ORMJoin: None,
    selectable.FromGrouping: None,
    selectable.Values: None,
    selectable.ScalarValues: None,
    selectable.ForUpdateArg: None,
    MemoizedSelectEntities: None,
    Table: None,
    selectable.TableClause: None,
    Update: None,
    Delete: None,
    Insert: None,
    # column expressions
    Column: None,
    elements.ColumnClause: _column,
    elements.BindParameter: None,
    OffsetLimitParam: None,
    elements.Null: None,
    elements.True_: None,
    elements.False_: None,
    elements.Label: None,
    elements.Grouping: None,
    elements.Tuple: None,
    elements.ClauseList: _operator,
    elements.BooleanClauseList: _operator,
    elements.ExpressionClauseList: _operator,
    elements.BinaryExpression: _operator,
    elements.UnaryExpression: _operator,
    elements.CollectionAggregate: _operator,
    elements.AsBoolean: _operator,
    elements.Cast: _sqlalchemy_type,
    elements.TypeCoerce: None,  # a Python-side type: no SQL
    elements.TypeClause: _sqlalchemy_type,
    elements.Case: None,
    elements.Extract: _word("field"),
    elements.CollationClause: _word("collation"),
    elements.Over: None,
    elements.FrameClause: None,
    elements.WithinGroup: None,
    elements.AggregateOrderBy: None,
    elements.FunctionFilter: None,
    elements.Slice: None,
    LabelReference: None,
    TextualLabelReference: _word("element"),
    # functions: only those named in SAFE_FUNCTIONS
    functions.Function: _function,
    **dict.fromkeys(generic_functions(), _function),
    # capebase's own comparisons (sqlexpr), which policy predicates are built of
    sqlexpr.exact_equals: None,
    sqlexpr.binary_collated: None,
    sqlexpr.strict_text: None,
    sqlexpr.codepoint_ordered: None,
    # the policy's own predicates, as statements it rewrote carry them (not walked: the
    # tables a rule reads are the rule's; a look-alike is walked), and the app's expressions
    # inside them (walked)
    guards.policy_guard: None,
    guards.app_expression: None,
    # options: loader strategies (what they hold is walked), with_loader_criteria (ANDed to
    # the policy's; its criteria walked), capebase's markers, and user-defined options,
    # which no SQL sees
    Load: None,
    AttributeStrategyLoad: None,
    ClassStrategyLoad: None,
    TokenStrategyLoad: None,
    LoaderCriteriaOption: _loader_criteria,
    AliasAdaptingCriteria: None,
    ScopeOption: None,
    UserDefinedOption: None,
}
"""Every kind of node a user statement may hold, with the check its instances must pass."""

_WRITES = frozenset({Insert, Update, Delete})
"""Kinds that write: only as the statement itself (``statements`` checks what they write)."""

_LEAVES = frozenset({Table, selectable.TableClause, ScopeOption, UserDefinedOption})
"""Kinds whose content is not walked: a table's columns, markers without SQL."""

def _slots(*names: str) -> frozenset[InternalTraversal]:
    return frozenset(getattr(InternalTraversal, f"dp_{name}") for name in names)


_NODE_SLOTS = _slots(
    "clauseelement", "clauseelement_list", "clauseelement_tuple", "clauseelement_tuples",
    "fromclause_ordered_set", "setup_join_tuple", "memoized_select_entities",
    "executable_options", "has_cache_key", "has_cache_key_list", "has_cache_key_tuples",
    "multi", "multi_list", "inspectable", "plain_dict", "string_clauseelement_dict",
    "dml_values", "dml_ordered_values", "dml_multi_values",
)
"""Slots that hold SQL elements (or options, or entities), walked in turn."""

_VALUE_SLOTS = _slots(
    "string", "string_list", "anon_name", "boolean", "operator", "type", "plain_obj",
    "annotations_key", "propagate_attrs", "params", "ignore",
    "fromclause_canonical_column_collection",
)
"""Slots of plain values: names SQLAlchemy quotes, flags, types, operators (checked by kind),
bound parameter values, and a table's own columns."""

_RAW_SQL_SLOTS = _slots(
    "prefix_sequence", "table_hint_list", "statement_hint_list", "compile_state_funcs",
    "dialect_options", "unknown_structure",
)
"""Slots that put text into the SQL as written (prefixes, suffixes, hints), change how the
statement compiles, or are of no known structure: they must be empty."""
