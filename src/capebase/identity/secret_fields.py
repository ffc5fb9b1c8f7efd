"""Secret fields: columns kept out of the change log, the audit trail, streams and read routes.

Mark one with ``secret_field(...)`` in place of ``Field(...)``, or with the column info key
yourself: ``Field(sa_column_kwargs={"info": {"capebase_secret": True}})``.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import Column, Table
from sqlmodel import Field

SECRET = "capebase_secret"
"""The ``Column.info`` key that marks a column secret."""

_cache: weakref.WeakKeyDictionary[Table, frozenset[str]] = weakref.WeakKeyDictionary()


def secret_field(default: Any = PydanticUndefined, **field_options: Any) -> Any:
    """A ``sqlmodel.Field`` whose value is never written to the change log (so never shown in
    the audit trail, streams or handlers' ``old``/``new``) nor returned by generated routes.

    It can still be set on create and update. A read rule may read one, but change events do
    not hold it: a stream under such a rule re-reads each changed row from the database (a
    query per change and caller), never replays, and cannot tell a former reader of a row
    that was deleted or hidden by a change to the field (see the streams reference). A plain
    field that says what the rule needs (``is_protected``) keeps streams cheap and complete.

    Example::

        class User(SQLModel, table=True):
            id: int | None = Field(default=None, primary_key=True)
            email: str
            password_hash: str = secret_field()

    Args:
        default: as for ``Field``.
        field_options: any other ``Field`` argument.
    """
    column = field_options.get("sa_column")
    if isinstance(column, Column):
        column.info[SECRET] = True
    else:
        column_options = dict(field_options.pop("sa_column_kwargs", None) or {})
        column_options["info"] = {**(column_options.get("info") or {}), SECRET: True}
        field_options["sa_column_kwargs"] = column_options
    return Field(default, **field_options)


def is_secret(column: Any) -> bool:
    """Whether ``column`` is marked secret."""
    info = getattr(column, "info", None)
    return bool(info and info.get(SECRET))


def secret_keys(table: Table) -> frozenset[str]:
    """The keys (and names) of ``table``'s secret columns."""
    found = _cache.get(table)
    if found is None:
        found = _cache[table] = frozenset(
            name for column in table.c if is_secret(column) for name in (column.key, column.name)
        )
    return found


def without_secrets(table: Table, image: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``image`` without ``table``'s secret columns (``image`` itself when it has none)."""
    hidden = secret_keys(table)
    if image is None or not hidden:
        return image
    return {key: value for key, value in image.items() if key not in hidden}
