"""SQLAlchemy internals capebase relies on (SQLAlchemy 2.1; bounded <2.2 in pyproject.toml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import LoaderCriteriaOption, UOWTransaction
from sqlalchemy.orm.context import FromStatement as FromStatement
from sqlalchemy.orm.interfaces import CompileStateOption
from sqlalchemy.orm.path_registry import PathRegistry as PathRegistry
from sqlalchemy.orm.strategy_options import (
    _AttributeStrategyLoad,
    _ClassStrategyLoad,
    _TokenStrategyLoad,
)
from sqlalchemy.orm.util import _ORMJoin
from sqlalchemy.pool import _ConnectionFairy
from sqlalchemy.sql import ColumnElement, Delete, Insert, Select, Update
from sqlalchemy.sql.annotation import Annotated as Annotated
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import (
    ClauseElement,
    ColumnClause,
    _label_reference,
    _textual_label_reference,
)
from sqlalchemy.sql.selectable import _MemoizedSelectEntities, _OffsetLimitParam
from sqlalchemy.sql.visitors import InternalTraversal as InternalTraversal
from sqlalchemy.types import TypeEngine

from . import missing_names

# Internal classes a user statement can hold (``policy.shapes`` lists them), by public names:
# the ORM's join, loader strategy options, ``with_only_columns`` memo, a LIMIT/OFFSET value,
# and references to a label by name (``order_by("name")``).
ORMJoin: type[Any] = _ORMJoin
AttributeStrategyLoad: type[Any] = _AttributeStrategyLoad
ClassStrategyLoad: type[Any] = _ClassStrategyLoad
TokenStrategyLoad: type[Any] = _TokenStrategyLoad
MemoizedSelectEntities: type[Any] = _MemoizedSelectEntities
OffsetLimitParam: type[Any] = _OffsetLimitParam
LabelReference: type[Any] = _label_reference
TextualLabelReference: type[Any] = _textual_label_reference
BinaryType: type[Any] = sqlalchemy.types._Binary
"""The common base of LargeBinary and the dialects' binary types."""

REQUIRED: list[tuple[object, str]] = [
    (ClauseElement, "_annotations"),
    (ClauseElement, "_deannotate"),
    (sqlalchemy.sql.functions, "_registry"),
    (Insert, "_multi_values"),
    (Insert, "_post_values_clause"),
    (Insert, "_prefixes"),
    (Insert, "_values"),
    (Insert, "_returning"),
    (Update, "_values"),
    (Delete, "_returning"),
    (Select, "_traverse_internals"),
    (Select, "_where_criteria"),
    (Update, "_where_criteria"),
    (Delete, "_where_criteria"),
    (Select, "_with_options"),
    (LoaderCriteriaOption, "_traverse_internals"),
    (LoaderCriteriaOption, "_resolve_where_criteria"),
    (ClauseElement, "_compile_w_cache"),
    (SQLCompiler, "_bind_processors"),
    (SQLCompiler, "_process_parameters_for_postcompile"),
    (SQLCompiler, "_result_columns"),
    (TypeEngine, "_cached_result_processor"),
    (_ConnectionFairy, "_checkin"),
    (sqlalchemy.types, "_Binary"),
    (ColumnClause, "_proxies"),
]


def missing() -> list[str]:
    """The private names of ``REQUIRED`` that the installed SQLAlchemy lacks."""
    return missing_names("sqlalchemy", sqlalchemy.__version__, REQUIRED)


def column_proxies(column: Any) -> list[Any]:
    """What a subquery's (or a UNION's) column stands for: the column of each member it was
    made from; empty for a table's own column."""
    return list(getattr(column, "_proxies", ()) or ())


def node_kind(element: Any) -> type[Any]:
    """The class of ``element`` as written, not the Annotated subclass the ORM wraps it in."""
    return type(plain(element))


def with_traversed(cls: type[Any], *slots: tuple[str, InternalTraversal]) -> list[Any]:
    """``cls``'s declared slots plus ``slots``: what a subclass that adds state to a SQL
    element declares, so that the state is in its cache key."""
    return [*cls._traverse_internals, *slots]


def traverse_internals_of(cls: type[Any]) -> list[tuple[str, InternalTraversal]]:
    """The slots SQLAlchemy declares for instances of ``cls`` (name, kind): every part of one
    that can reach the SQL it compiles to, which ``get_children()`` only partly reports (it
    leaves out options, hints and prefixes)."""
    return list(getattr(cls, "_traverse_internals", None) or ())


def generic_functions() -> list[type[Any]]:
    """The ``GenericFunction`` classes registered with ``func`` (``func.count`` builds one);
    SQLAlchemy keeps them in a private registry."""
    registry = sqlalchemy.sql.functions._registry["_default"]
    generic = sqlalchemy.sql.functions.GenericFunction
    return [cls for cls in registry.values() if issubclass(cls, generic)]


def statement_options(statement: Any) -> tuple[Any, ...]:
    """The options given to a statement with ``.options(...)``."""
    return tuple(getattr(statement, "_with_options", ()) or ())


def where_criteria(statement: Any) -> tuple[Any, ...]:
    """The WHERE conditions of a SELECT, UPDATE or DELETE (ANDed)."""
    return tuple(getattr(statement, "_where_criteria", ()) or ())


@dataclass(frozen=True)
class SelectParts:
    """The clauses of a SELECT as the app wrote them (before the ORM compiles it)."""

    columns: tuple[Any, ...]
    froms: tuple[Any, ...]
    onclauses: tuple[Any, ...]
    where: tuple[Any, ...]
    group_by: tuple[Any, ...]
    having: tuple[Any, ...]
    order_by: tuple[Any, ...]
    limits: tuple[Any, ...]
    """LIMIT and OFFSET when they are expressions (a scalar subquery), not plain numbers."""


def select_parts(statement: Any) -> SelectParts:
    """The clauses of ``statement`` (a Select); the public accessors give them only as
    compiled (``selected_columns``, ``whereclause``), not as written."""
    joins = tuple(getattr(statement, "_setup_joins", ()) or ())
    return SelectParts(
        columns=tuple(statement._raw_columns),
        froms=tuple(statement._from_obj) + tuple(j[0] for j in joins),
        onclauses=tuple(j[1] for j in joins if j[1] is not None and not _is_attribute(j[1])),
        where=tuple(statement._where_criteria),
        group_by=tuple(statement._group_by_clauses),
        having=tuple(statement._having_criteria),
        order_by=tuple(statement._order_by_clauses),
        limits=tuple(
            clause for clause in (statement._limit_clause, statement._offset_clause)
            if clause is not None
        ),
    )


def returning_of(statement: Any) -> tuple[Any, ...]:
    """The RETURNING columns of an INSERT, UPDATE or DELETE."""
    return tuple(getattr(statement, "_returning", ()) or ())


def _is_attribute(onclause: Any) -> bool:
    """A relationship attribute given as a join's ON clause (``join(Note.team)``)."""
    return not isinstance(onclause, ColumnElement) or hasattr(onclause, "property")


def for_update(statement: Any) -> Any:
    """A SELECT's ``with_for_update()`` arguments (``nowait``, ``skip_locked``...), or None."""
    return getattr(statement, "_for_update_arg", None)


def type_adds_sql(type_: Any) -> bool:
    """Whether ``type_`` wraps what it reads or binds in SQL of its own (it overrides
    ``column_expression`` or ``bind_expression``; SQLAlchemy records that privately)."""
    return bool(
        getattr(type_, "_has_column_expression", False)
        or getattr(type_, "_has_bind_expression", False)
    )


def type_affinity(type_: Any) -> Any:
    """The generic type a column type compares as (``String`` for ``VARCHAR(40)``)."""
    return getattr(type_, "_type_affinity", None)


def visit_table(compiler: SQLCompiler, table: Any, **kw: Any) -> str:
    """The compiler's own rendering of ``table`` (what ``@compiles(Table)`` replaces)."""
    result: str = compiler.visit_table(table, **kw)  # type: ignore[no-untyped-call]
    return result


def compiling_level(compiler: SQLCompiler) -> dict[str, Any] | None:
    """The compiler's entry for the SELECT (or UPDATE/DELETE/INSERT) being rendered: its
    ``selectable`` is the statement as rendered (after the ORM's changes, loader criteria
    included) and ``asfrom_froms`` the FROM objects it renders, joins included."""
    stack: list[Any] = compiler.stack
    return stack[-1] if stack else None


class ScopeOption(CompileStateOption):
    """An option with no effect on the ORM's compilation, part of the statement's cache key.

    A subclass marks the statements of user sessions for ``policy.coverage``; ``payload`` (any
    hashable value) is in the cache key, so two payloads never share a compiled statement.
    """

    _traverse_internals = [("payload", InternalTraversal.dp_plain_obj)]  # noqa: RUF012
    # What subclasses (``inherit_cache = True``) build their cache keys from.
    _cache_key_traversal = _traverse_internals

    def __init__(self, payload: Any) -> None:
        self.payload = payload

    def process_compile_state(self, compile_state: Any) -> None:
        return None


def plain(element: Any) -> Any:
    """``element`` without its annotations (ORM attributes annotate their table); the public
    API has no deannotate, and annotated copies compare unequal to the plain table."""
    deannotate = getattr(element, "_deannotate", None)
    return deannotate() if deannotate is not None else element


def parent_entity(element: Any) -> Any:
    """The mapped entity (class or alias) an ORM-annotated element came from, or None.
    SQLAlchemy records it in the private ``_annotations`` mapping."""
    annotations = getattr(element, "_annotations", None)
    return None if annotations is None else annotations.get("parententity")


def statement_values(statement: Insert | Update) -> dict[Any, Any]:
    """The ``.values(...)`` given to an INSERT or UPDATE (column or key -> value or clause)."""
    return dict(statement._values or {})


def has_multi_values(statement: Insert) -> bool:
    """Whether an INSERT got ``.values([...])`` with a list of literal rows."""
    return bool(statement._multi_values)


def multi_values(statement: Insert) -> list[list[Any]]:
    """The literal row lists given to ``insert().values([...])`` (one list per call)."""
    return [list(rows) for rows in statement._multi_values]


def has_post_values_clause(statement: Insert) -> bool:
    """Whether an INSERT carries ON CONFLICT / ON DUPLICATE KEY (a dialect's post clause)."""
    return getattr(statement, "_post_values_clause", None) is not None


def has_prefixes(statement: Insert) -> bool:
    """Whether an INSERT got ``prefix_with(...)`` (``OR IGNORE``, ``IGNORE``...)."""
    return bool(statement._prefixes)


def has_returning(statement: Any) -> bool:
    """Whether a DML statement already has a ``returning(...)``."""
    return bool(getattr(statement, "_returning", ()))


def flush_writes(flush: UOWTransaction, obj: Any) -> bool:
    """Whether ``flush`` writes ``obj`` itself. ``Session.flush(objects)`` writes only some of
    the session's pending changes; the unit of work's ``states`` (state -> (is delete, list
    only)) names those it writes, "list only" ones being there for relationship bookkeeping."""
    entry = flush.states.get(inspect(obj))
    return entry is not None and not entry[1]


def issued_by_mapper(execution_options: Any, model: type[Any]) -> bool:
    """Whether a flush statement comes from ``model``'s mapper persisting its objects (which
    fires the mapper's before_insert/update/delete events), not from a relationship writing
    an association table directly. The persistence code runs its statements with the base
    mapper's own compiled cache; the many-to-many dependency processor runs them plain."""
    cache = getattr(inspect(model).base_mapper, "_compiled_cache", None)
    return cache is not None and execution_options.get("compiled_cache") is cache


class AliasAdaptingCriteria(LoaderCriteriaOption):
    """``with_loader_criteria`` whose predicate is also adapted to aliases of the model.

    SQLAlchemy adapts a plain (non-lambda) criteria expression to the aliases eager loaders
    create, but not to a user's ``aliased(Model)``; without this a self-join would filter the
    base table twice and the alias not at all. A lambda would adapt, but its cache key ignores
    the values it closes over, which here differ per caller. Relies on the private
    ``_resolve_where_criteria`` hook and the aliased class's ``_adapter``.
    """

    # Cache keys come from these (the predicate, with its values as bind parameters) and the
    # class; SQLAlchemy wants them declared on the class itself.
    _traverse_internals = LoaderCriteriaOption._traverse_internals

    def _resolve_where_criteria(self, ext_info: Any) -> ColumnElement[bool]:
        criteria = super()._resolve_where_criteria(ext_info)
        if ext_info.is_aliased_class:
            adapted: ColumnElement[bool] = ext_info._adapter.traverse(criteria)
            return adapted
        return criteria


# -- running compiled statements on the driver connection (capebase.db.direct) ----------------


def compile_cached(
    statement: ClauseElement, dialect: Dialect, cache: dict[Any, Any]
) -> tuple[SQLCompiler, Any, Any]:
    """``statement`` compiled through SQLAlchemy's compiled cache and cache key, as Core's
    execute does: the compiled form, the values extracted from this statement's literals and
    the collected parameters (both needed by ``construct_params``)."""
    compiled, extracted, collected, _hit = statement._compile_w_cache(
        dialect, compiled_cache=cache, column_keys=[]
    )
    return cast_compiler(compiled), extracted, collected


def cast_compiler(compiled: Any) -> SQLCompiler:
    """``compiled`` typed as the SQL compiler it is (DML and SELECT compile to one)."""
    result: SQLCompiler = compiled
    return result


def construct_params(
    compiled: SQLCompiler,
    params: Any,
    extracted: Any,
    collected: Any,
    *,
    check: bool = True,
) -> dict[str, Any]:
    """The statement's parameter values, as Core's execute builds them (expanding IN lists is
    left to ``expand_postcompile``)."""
    return dict(
        compiled.construct_params(
            params,
            extracted_parameters=extracted,
            escape_names=False,
            _collected_params=collected,
            _no_postcompile=True,
            _check=check,
        )
    )


def bind_processors(compiled: SQLCompiler) -> dict[str, Any]:
    """Parameter name -> the type's bind processor, for the parameters that have one."""
    return dict(compiled._bind_processors)


def expand_postcompile(
    compiled: SQLCompiler, parameters: dict[str, Any]
) -> tuple[str, list[str], dict[str, Any], dict[str, Any]]:
    """SQL, parameter order, bind processors and values with IN lists and literal-execute
    parameters expanded, as Core does at execution time."""
    expanded = compiled._process_parameters_for_postcompile(parameters)
    return (
        expanded.statement,
        list(expanded.positiontup or ()),
        # The expanded state holds the processors of the expanded values only; the other
        # parameters keep the compiled ones (Core merges them the same way).
        {**compiled._bind_processors, **expanded.processors},
        dict(expanded.parameters),
    )


def result_types(compiled: SQLCompiler) -> list[Any]:
    """The SQLAlchemy type of each result column of ``compiled`` (empty if it returns none)."""
    columns = getattr(compiled, "_result_columns", None) or ()
    return [column[3] for column in columns]


def result_processor(type_: Any, dialect: Dialect, coltype: Any) -> Any:
    """The dialect's result processor for ``type_`` (cached on the type, as Core caches it);
    ``coltype`` is the driver's type code of the column, which some types consult."""
    return type_._cached_result_processor(dialect, coltype)


def checkin_without_reset(raw: Any) -> None:
    """Return a pooled connection known to be outside a transaction without the pool's reset
    (a round trip, or on SQLite a thread hop, per statement)."""
    raw._checkin(transaction_was_reset=True)


def raise_as_dbapi_error(raw: Any, error: Exception) -> None:
    """Let the connection's DBAPI adapter turn a driver error into its DBAPI form (it raises
    the translated error; returns when it has no translation)."""
    raw.dbapi_connection._handle_exception(error)
