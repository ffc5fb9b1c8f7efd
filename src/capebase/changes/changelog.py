"""The change-log table: one row per committed row change, written in the changing transaction.

Its id is the event id streams send and resume from; it doubles as the audit trail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection

metadata = MetaData()
"""capebase's own tables; add it to Alembic's target_metadata when create_tables=False."""

# MySQL/MariaDB DATETIME keeps whole seconds unless asked for microseconds.
_TIMESTAMP = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

PK_INDEXED = 255
"""The longest key text the indexed ``pk`` column holds (see ``pk_fields``)."""

changes = Table(
    "capebase_changes",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("table_name", String(128), nullable=False),
    Column("op", String(6), nullable=False),
    Column("pk", String(PK_INDEXED), nullable=False),  # see pk_fields
    Column("pk_long", Text, nullable=True),
    Column("old", Text, nullable=True),
    Column("new", Text, nullable=True),
    Column("actor_id", Text, nullable=True),
    Column("actor_role", Text, nullable=True),
    Column("created_at", _TIMESTAMP, nullable=False),
    Column("handlers_pending", Boolean, nullable=False, default=False),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", _TIMESTAMP, nullable=True),
    Column("request_id", String(64), nullable=True),  # the server's id of the request
    Column("client_request_id", String(64), nullable=True),  # the X-Request-ID a client sent
    Index("ix_capebase_changes_table_id", "table_name", "id"),
    Index("ix_capebase_changes_table_pk", "table_name", "pk"),  # audit history of one row
    Index("ix_capebase_changes_pending", "handlers_pending", "id"),
    # Without AUTOINCREMENT SQLite reuses the ids of deleted rows: after pruning the newest
    # changes, the next change would get an id the hub has already passed.
    sqlite_autoincrement=True,
)

meta = Table(
    "capebase_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(255), nullable=False),
)
"""Small key/value state; ``pruned_through`` is the highest change id retention removed."""


def missing_columns(connection: Connection) -> list[str]:
    """The columns of ``changes`` its stored table lacks: it was created by an older release."""
    present = {column["name"] for column in inspect(connection).get_columns(changes.name)}
    return [column.key for column in changes.c if column.key not in present]


def add_missing_columns(connection: Connection) -> list[str]:
    """Add the nullable columns a ``changes`` table created by an older release lacks (such
    as ``client_request_id``); the names added."""
    preparer = connection.dialect.identifier_preparer
    added = []
    for name in missing_columns(connection):
        column = changes.c[name]
        if not column.nullable:
            continue  # none so far; CapeBase._check_schema names it
        kind = column.type.compile(dialect=connection.dialect)
        connection.execute(text(
            f"ALTER TABLE {preparer.format_table(changes)} "
            f"ADD COLUMN {preparer.format_column(column)} {kind}"
        ))
        added.append(name)
    return added


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    """One change-log row, decoded. Images hold JSON values (datetimes as ISO text)."""

    id: int
    table: str
    op: str
    pk: Any
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    actor_id: str | None
    actor_role: str | None
    created_at: datetime
    handlers_pending: bool

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ChangeRecord:
        """Decode a row of ``changes``."""
        created = row["created_at"]
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return cls(
            id=row["id"],
            table=row["table_name"],
            op=row["op"],
            pk=decode_pk(row),
            old=json.loads(row["old"]) if row["old"] is not None else None,
            new=json.loads(row["new"]) if row["new"] is not None else None,
            actor_id=row["actor_id"],
            actor_role=row["actor_role"],
            created_at=created,
            handlers_pending=bool(row["handlers_pending"]),
        )


def encode_image(image: Mapping[str, Any] | None) -> str | None:
    """A row image as JSON text (datetimes, UUIDs and decimals become JSON values)."""
    if image is None:
        return None
    return to_json(dict(image)).decode()


def encode_pk(value: Any) -> str:
    """A primary-key value as JSON text."""
    return to_json(value).decode()


def indexed_pk(encoded: str) -> str:
    """What the indexed ``pk`` column holds for a key encoded as ``encoded``: the JSON text
    itself, or for a longer one its SHA-256 (``sha256:<hex>``, which no JSON text reads as)."""
    if len(encoded) <= PK_INDEXED:
        return encoded
    return "sha256:" + hashlib.sha256(encoded.encode()).hexdigest()


def pk_fields(value: Any) -> dict[str, str | None]:
    """The ``pk`` and ``pk_long`` columns of a change to the row keyed ``value``.

    A text key may be longer than an index can hold (MariaDB keys stop at 3,072 bytes,
    PostgreSQL's at about 2,700), so ``pk`` holds ``indexed_pk`` of it and ``pk_long`` the
    whole key when that differs.
    """
    encoded = encode_pk(value)
    indexed = indexed_pk(encoded)
    return {"pk": indexed, "pk_long": encoded if indexed != encoded else None}


def decode_pk(row: Mapping[Any, Any]) -> Any:
    """The primary key of a change-log row (see ``pk_fields``)."""
    return json.loads(row["pk_long"] if row["pk_long"] is not None else row["pk"])


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)
