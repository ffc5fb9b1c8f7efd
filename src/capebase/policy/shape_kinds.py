"""The kinds of SQL a user session's statement may be built of (``shapes`` walks it), each
with the check its instances must pass, and the kinds no term of which can fail."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.orm import LoaderCriteriaOption, UserDefinedOption
from sqlalchemy.orm.strategy_options import Load
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
)
from ..errors import UnfilterableStatementError
from . import fallible, guards, sqlexpr
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


def kind_name(kind: type[Any]) -> str:
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
                f"{kind_name(node_kind(node))} {value!r} cannot be checked in a user session. "
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

KINDS: dict[type[Any], Callable[[Any], None] | None] = {
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
    fallible.fallible: None,  # an app's term, walked; wrapping it only adds the policy's filters
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

WRITES = frozenset({Insert, Update, Delete})
"""Kinds that write: only as the statement itself (``statements`` checks what they write)."""

CANNOT_FAIL = frozenset({
    Select, SQLModelSelect, SelectOfScalar, Table, selectable.TableClause, Column,
    elements.ColumnClause, elements.BindParameter, OffsetLimitParam, elements.Null,
    elements.True_, elements.False_, elements.Label, elements.Grouping, Update, Delete, Insert,
    Load, AttributeStrategyLoad, ClassStrategyLoad, TokenStrategyLoad, LoaderCriteriaOption,
    AliasAdaptingCriteria, ScopeOption, UserDefinedOption, MemoizedSelectEntities,
})
"""Kinds no term of which can fail, skipped by the cheap look for one (``Shape.may_fail``)."""

LEAVES = frozenset({Table, selectable.TableClause, ScopeOption, UserDefinedOption})
"""Kinds whose content is not walked: a table's columns, markers without SQL."""

def _slots(*names: str) -> frozenset[InternalTraversal]:
    return frozenset(getattr(InternalTraversal, f"dp_{name}") for name in names)


NODE_SLOTS = _slots(
    "clauseelement", "clauseelement_list", "clauseelement_tuple", "clauseelement_tuples",
    "fromclause_ordered_set", "setup_join_tuple", "memoized_select_entities",
    "executable_options", "has_cache_key", "has_cache_key_list", "has_cache_key_tuples",
    "multi", "multi_list", "inspectable", "plain_dict", "string_clauseelement_dict",
    "dml_values", "dml_ordered_values", "dml_multi_values",
)
"""Slots that hold SQL elements (or options, or entities), walked in turn."""

VALUE_SLOTS = _slots(
    "string", "string_list", "string_multi_dict", "anon_name", "boolean", "operator", "type",
    "plain_obj", "annotations_key", "propagate_attrs", "params", "ignore",
    "fromclause_canonical_column_collection",
)
"""Slots of plain values: names SQLAlchemy quotes, flags, types, operators (checked by kind),
bound parameter values, a loader's options (``innerjoin``, ``recursion_depth``), and a table's
own columns."""

RAW_SQL_SLOTS = _slots(
    "prefix_sequence", "table_hint_list", "statement_hint_list", "compile_state_funcs",
    "dialect_options", "unknown_structure",
)
"""Slots that put text into the SQL as written (prefixes, suffixes, hints), change how the
statement compiles, or are of no known structure: they must be empty."""
