"""SQL a model's mapping adds to a statement as it compiles: its columns' types,
``column_property`` and ``deferred`` expressions, each relationship's ``primaryjoin``,
``secondaryjoin`` and ``order_by``, and ``polymorphic_on``.

The shape walk sees the statement an app builds; the ORM renders these into it later (the
columns of every entity, an eager load's join and order). So a user session checks, once per
model and database, every model its statement can load, with the walk it gives statements: a
mapping with SQL text, a function off the list or a type that writes SQL is refused, naming
the attribute.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import Column
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper

from ..errors import UnfilterableStatementError
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
            return f"{mapper.class_.__name__}.{name} cannot be loaded in a user session: {refused}"
    return None


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
