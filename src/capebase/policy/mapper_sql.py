"""SQL a model's mapping adds to a statement as it compiles: its columns' types,
``column_property`` and ``deferred`` expressions, each relationship's ``primaryjoin``,
``secondaryjoin`` and ``order_by``, ``polymorphic_on``, and the columns' ``default`` and
``onupdate`` given as SQL (written into a flush's or a bulk statement's INSERT and UPDATE).

The shape walk sees the statement an app builds; the ORM renders these into it later (the
columns of every entity, an eager load's join and order, a default's SQL in the VALUES or SET).
So a user session checks, once per model and database, every model its statement can load
(and every model a flush writes), with the walk it gives statements: a mapping with SQL text,
a function off the list or a type that writes SQL is refused, naming the attribute; so is a
default or onupdate that reads a table (a subquery: nothing filters what it reads there).
``func.now()`` and other functions of no table pass.

``server_default`` and ``server_onupdate`` are not looked at: they are DDL, the schema's own,
which the database runs whoever writes the row (as it runs triggers); the app wrote them into
its schema, no statement of a user session carries them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Column
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper
from sqlalchemy.sql import elements, visitors

from ..errors import UnfilterableStatementError
from .fallible import is_statement
from .shapes import known_shape
from .sql_types import require_plain_type

_CHECKED: dict[tuple[int, str, int], str | None] = {}
"""A mapper's problem, or None, by identity, database and number of attributes (an attribute
added later is checked then)."""


def require_plain_mappings(models: Iterable[type[Any]], dialect: Dialect) -> None:
    """Refuse a user session's statement if one of ``models`` (the models it can load) has a
    mapping that writes SQL the policy cannot see into."""
    for model in models:
        mapper: Mapper[Any] = model.__mapper__
        key = (id(mapper), dialect.name, len(mapper.attrs))
        if key not in _CHECKED:
            if len(_CHECKED) > 4096:
                _CHECKED.clear()
            _CHECKED[key] = _problem(mapper, dialect)
        problem = _CHECKED[key]
        if problem is not None:
            raise UnfilterableStatementError(problem)


def _problem(mapper: Mapper[Any], dialect: Dialect) -> str | None:
    for name, expression in _expressions(mapper):
        try:
            if isinstance(expression, Column):
                require_plain_type(expression.type, dialect, written=False)
            else:
                known_shape(expression, dialect)
        except UnfilterableStatementError as refused:
            return (
                f"{mapper.class_.__name__}.{name} cannot be loaded or written in a user "
                f"session: {refused}"
            )
    for name, expression, table in _written(mapper):
        try:
            known_shape(expression, dialect)
            if _reads_a_table(expression, table):
                raise UnfilterableStatementError(
                    "it reads a table, which nothing filters there; give a value, a function "
                    "of the row's own columns or of none (func.now()), a server_default, or "
                    "write it in a privileged session"
                )
        except UnfilterableStatementError as refused:
            return (
                f"{mapper.class_.__name__}.{name} cannot be written in a user session: its SQL "
                f"is written into the INSERT or UPDATE as is: {refused}"
            )
    return None


def _written(mapper: Mapper[Any]) -> Iterator[tuple[str, Any, Any]]:
    """The SQL of the columns' ``default`` and ``onupdate`` (what SQLAlchemy writes into an
    INSERT's VALUES or an UPDATE's SET for a column not given a value)."""
    for prop in mapper.column_attrs:
        for column in prop.columns:
            for which in ("default", "onupdate"):
                generator: Any = getattr(column, which, None)
                if getattr(generator, "is_clause_element", False):
                    yield f"{prop.key} ({which})", generator.arg, column.table


def _reads_a_table(expression: Any, own: Any) -> bool:
    """Whether ``expression`` (a default or onupdate of a column of the table ``own``) reads
    a table: a SELECT, a subquery, or a column of another table. Its own table's columns are
    the row being written (``revision = revision + 1``), which the caller writes anyway."""
    return any(
        is_statement(element)  # a SELECT, a table, a subquery (a SQL function is none)
        or (
            isinstance(element, elements.ColumnClause)
            and element.table is not None
            and element.table is not own
        )
        for element in visitors.iterate(expression)
    )


def _expressions(mapper: Mapper[Any]) -> Iterator[tuple[str, Any]]:
    # First, so that a refusal names it: SQLAlchemy maps an expression as the private column
    # property ``_sa_polymorphic_on`` too.
    if mapper.polymorphic_on is not None:
        yield "polymorphic_on", mapper.polymorphic_on
    for prop in mapper.column_attrs:
        for column in prop.columns:
            yield prop.key, column
    for relationship in mapper.relationships:
        order_by = relationship.order_by or ()
        for expression in (relationship.primaryjoin, relationship.secondaryjoin, *order_by):
            if expression is not None:
                yield relationship.key, expression
