"""SQLAlchemy internals capebase relies on (SQLAlchemy 2.1; bounded <2.2 in pyproject.toml)."""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import LoaderCriteriaOption, UOWTransaction

# Internal classes the policy's statement checks test for (re-exported).
from sqlalchemy.orm.context import FromStatement as FromStatement
from sqlalchemy.pool import _ConnectionFairy
from sqlalchemy.sql import ColumnElement, Delete, Insert, Update
from sqlalchemy.sql.annotation import Annotated as Annotated
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

from . import missing_names

REQUIRED: list[tuple[object, str]] = [
    (ClauseElement, "_annotations"),
    (ClauseElement, "_deannotate"),
    (Insert, "_multi_values"),
    (Insert, "_post_values_clause"),
    (Insert, "_prefixes"),
    (Insert, "_values"),
    (Insert, "_returning"),
    (Update, "_values"),
    (Delete, "_returning"),
    (LoaderCriteriaOption, "_traverse_internals"),
    (LoaderCriteriaOption, "_resolve_where_criteria"),
    (ClauseElement, "_compile_w_cache"),
    (SQLCompiler, "_bind_processors"),
    (SQLCompiler, "_process_parameters_for_postcompile"),
    (SQLCompiler, "_result_columns"),
    (TypeEngine, "_cached_result_processor"),
    (_ConnectionFairy, "_checkin"),
]


def missing() -> list[str]:
    """The private names of ``REQUIRED`` that the installed SQLAlchemy lacks."""
    return missing_names("sqlalchemy", sqlalchemy.__version__, REQUIRED)


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
        dict(expanded.processors),
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
