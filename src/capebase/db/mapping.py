"""What a table model's mapping must look like for capebase to serve it.

capebase speaks of a row by its field names everywhere: bodies, filters, rules, row images,
the change log, stream and handler payloads. They are the table's column keys, which equal the
model's attribute names unless a field renames its database column
(``sa_column=Column("display_name", ...)`` or ``sa_column_kwargs={"name": ...}``). Such a
model is refused where it is first handed to capebase, rather than answering 500 later.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table, inspect

from ..errors import ConfigurationError, NotATableError


def renamed_columns(model: type[Any]) -> list[tuple[str, str]]:
    """``(attribute, column name)`` for each field of ``model`` stored under another name."""
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        return []
    renamed = []
    for prop in inspect(model).column_attrs:
        for column in prop.columns:
            if isinstance(column, Column) and column.table is table and column.key != prop.key:
                renamed.append((prop.key, column.key))
    return renamed


def require_table(model: Any, refusal: str) -> Table:
    """``model``'s table; a model that has none (not ``table=True``) is refused, ``refusal``
    (with ``{name}``) saying what could not be done.

    Raises:
        NotATableError: naming the model and how to declare a table.
    """
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        name = getattr(model, "__name__", model)
        raise NotATableError(
            f"{refusal.format(name=repr(name))} (declare it with `class X(SQLModel, table=True)`)"
        )
    return table


def require_plain_columns(model: type[Any], use: str) -> None:
    """Refuse ``model`` for ``use`` ("publish", "permission_required", "subscribe") when a
    field's database column has another name.

    Raises:
        ConfigurationError: naming each such field and its column.
    """
    renamed = renamed_columns(model)
    if renamed:
        pairs = ", ".join(f"{attr!r} (column {column!r})" for attr, column in renamed)
        raise ConfigurationError(
            f"Cannot {use} {model.__name__}: capebase names a row's values by field, and these "
            f"fields are stored under another column name: {pairs}. Name each field like its "
            "column (or the column like its field, with a migration)"
        )
