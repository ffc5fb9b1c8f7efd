"""The relations of a published model that its routes may expand, filter and sort on.

A relation is found in the model's SQLModel ``Relationship`` attributes (named like them), or,
where no Relationship covers it, in the foreign keys:

- a foreign key column ``project_id`` of this table is the many-to-one relation ``project``
  (the column's name without ``_id``);
- a published table ``comment`` with one foreign key to this table is the one-to-many
  relation ``comment`` (its table's name).

Only a relation whose related model is published with a read route (``list`` or ``get``) can
be used: the rows it reaches are served like that model's own rows, under its read rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Table, UniqueConstraint, inspect
from sqlalchemy.exc import NoReferencedTableError, SQLAlchemyError
from sqlalchemy.orm import MANYTOMANY, MANYTOONE

from ..errors import QueryError
from .published import PublishedModel

READ_ROUTES = frozenset({"list", "get"})
"""The routes that make a published model's rows readable, so reachable by a relation."""


@dataclass(frozen=True, slots=True)
class Relation:
    """One way from a row of a table to rows of another (or the same) table."""

    name: str
    is_many: bool
    """One-to-many (a list of rows per row) rather than many-to-one (one row or null)."""
    local: Column[Any] | None
    """This table's column: the foreign key (many-to-one) or the key it references."""
    remote: Column[Any] | None
    """The related table's column, equal to ``local`` on related rows."""
    target: Any
    """The related model (a class) or table."""
    problem: str | None = None
    """Why the relation cannot be used (many-to-many, a composite key...)."""


@dataclass(frozen=True, slots=True)
class Related:
    """A usable relation and the related model as published."""

    relation: Relation
    published: PublishedModel

    @property
    def name(self) -> str:
        """The relation's name, as requests write it."""
        return self.relation.name

    @property
    def is_many(self) -> bool:
        """Whether each row has a list of related rows (one-to-many)."""
        return self.relation.is_many

    @property
    def local(self) -> Column[Any]:
        """This table's column the relation joins on."""
        assert self.relation.local is not None  # a relation with a problem is never resolved
        return self.relation.local

    @property
    def remote(self) -> Column[Any]:
        """The related table's column the relation joins on."""
        assert self.relation.remote is not None
        return self.relation.remote


class Relations:
    """The relations of one published model, looked up by name at each request (the
    published models, which the one-to-many foreign keys come from, may change)."""

    def __init__(self, published: PublishedModel, registry: Mapping[Any, PublishedModel]) -> None:
        self.published = published
        self.registry = registry
        self._declared: dict[str, Relation] | None = None
        self._found: tuple[tuple[int, ...], dict[str, Relation]] | None = None

    def all(self) -> dict[str, Relation]:
        """Every relation, by name (usable or not)."""
        if self._declared is None:
            self._declared = _declared(self.published.model)
        version = tuple(map(id, self.registry.values()))
        if self._found is None or self._found[0] != version:
            found = dict(self._declared)
            table = self.published.table
            for relation in _foreign_keys(table, self.registry.values()):
                covered = any(
                    r.local is relation.local and r.remote is relation.remote
                    for r in self._declared.values()
                )
                if relation.name not in found and relation.name not in table.c and not covered:
                    found[relation.name] = relation
            self._found = (version, found)
        return self._found[1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.all()

    def get(self, name: str, use: str) -> Related:
        """The relation ``name`` and its related model, ``use`` ("expand", "filter on",
        "sort on") saying what the request does with it.

        Raises:
            QueryError: 400 naming the relation: unknown, unusable (many-to-many...), or
                leading to a model that is not published with a read route.
        """
        relations = self.all()
        relation = relations.get(name)
        if relation is None:
            known = ", ".join(relations) or "none"
            raise QueryError(
                f"Unknown relation {name!r} to {use}; relations of {self.published.name}: {known}"
            )
        if relation.problem is not None:
            raise QueryError(f"Cannot {use} {name!r}: {relation.problem}")
        target = self._published(relation.target)
        if target is None or not (target.routes & READ_ROUTES):
            what = getattr(relation.target, "__name__", None) or relation.target.name
            raise QueryError(
                f"Cannot {use} {name!r}: its model {what} is not published with a list or get "
                "route, and only such models' rows can be reached through a relation"
            )
        if not relation.is_many and not _is_unique(relation.remote):
            raise QueryError(
                f"Cannot {use} {name!r}: the column it references, {relation.remote}, is "
                "neither the primary key of its table nor unique"
            )
        return Related(relation, target)

    def _published(self, target: Any) -> PublishedModel | None:
        if isinstance(target, Table):
            return next((p for p in self.registry.values() if p.table is target), None)
        found = self.registry.get(target)
        return found if found is not None and found.model is target else None


def _declared(model: type[Any]) -> dict[str, Relation]:
    """The relations of ``model``'s Relationship attributes."""
    try:
        properties = list(inspect(model).relationships)
    except SQLAlchemyError:  # mappers that cannot be configured: no relation to offer
        return {}
    table = model.__table__
    found = {}
    for prop in properties:
        name, target = prop.key, prop.mapper.class_
        pairs = list(prop.local_remote_pairs or ())
        if prop.secondary is not None or prop.direction is MANYTOMANY:
            found[name] = Relation(
                name, True, None, None, target,
                "many-to-many relations (through a link table) are not supported",
            )
            continue
        local, remote = pairs[0] if len(pairs) == 1 else (None, None)
        if not (
            isinstance(local, Column) and local.table is table
            and isinstance(remote, Column) and remote.table is prop.mapper.local_table
        ):
            found[name] = Relation(
                name, prop.direction is not MANYTOONE, None, None, target,
                "only relations over one column of each table can be used",
            )
            continue
        found[name] = Relation(name, prop.direction is not MANYTOONE, local, remote, target)
    return found


def _foreign_keys(table: Table, published: Iterable[PublishedModel]) -> Iterable[Relation]:
    """The relations of ``table``'s foreign keys (many-to-one) and of the published tables'
    foreign keys to it (one-to-many)."""
    for column, referenced in _single_keys(table):
        if column.key.endswith("_id") and len(column.key) > 3:
            yield Relation(column.key[:-3], False, column, referenced, referenced.table)
    for other in published:
        into = [(c, r) for c, r in _single_keys(other.table) if r.table is table]
        if len(into) == 1:
            column, referenced = into[0]
            yield Relation(other.table.name, True, referenced, column, other.model)
        elif into:
            yield Relation(other.table.name, True, None, None, other.model,
                           f"{other.table.name} has several foreign keys to {table.name}; "
                           "declare a Relationship for each to name them")


def _single_keys(table: Table) -> list[tuple[Column[Any], Column[Any]]]:
    """``(column, referenced column)`` of each one-column foreign key of ``table``."""
    keys = []
    for constraint in table.foreign_key_constraints:
        if len(constraint.elements) != 1:
            continue
        element = constraint.elements[0]
        try:
            referenced = element.column
        except (NoReferencedTableError, SQLAlchemyError):
            continue  # a table outside the metadata: nothing published to reach
        keys.append((element.parent, referenced))
    return keys


def _is_unique(column: Column[Any] | None) -> bool:
    """Whether no two rows can hold the same value in ``column`` (alone)."""
    if column is None or not isinstance(column.table, Table):
        return False
    table = column.table
    if list(table.primary_key.columns) == [column] or column.unique:
        return True
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and list(constraint.columns) == [column]:
            return True
    return any(index.unique and list(index.columns) == [column] for index in table.indexes)
