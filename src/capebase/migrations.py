"""Alembic support: what a capebase app's ``env.py`` migrates, and with which column types.

``capebase alembic init`` writes an ``env.py`` that uses these three helpers; an existing
Alembic set-up can call them from its own ``env.py`` (docs/guides/migrations.md shows how).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import MetaData

from .changes.changelog import metadata as changelog_metadata
from .db.ddl import creating_tables

if TYPE_CHECKING:
    from .app import CapeBase


def target_metadata(cape: CapeBase) -> list[MetaData]:
    """Every ``MetaData`` whose tables the app needs, for Alembic's ``target_metadata``.

    That is capebase's own tables (``capebase.metadata``: the change log), the built-in
    auth's (``capebase.auth.builtin.metadata``) when the app uses ``auth=``, and the metadata
    of every model the app publishes, guards with a rule or subscribes to (SQLModel's shared
    ``SQLModel.metadata`` first).

    Args:
        cape: the app's ``CapeBase``, after its models are published.
    """
    found = [changelog_metadata, *cape._metadatas()]
    if cape.auth is not None:
        from .auth.builtin import metadata as auth_metadata

        found.append(auth_metadata)
    return found


def database_url(cape: CapeBase) -> str:
    """The URL of the app's database, with its driver and password, for Alembic's engine."""
    return cape.engine.url.render_as_string(hide_password=False)


@contextmanager
def capebase_column_types() -> Iterator[None]:
    """Render DDL inside the block with the column types capebase creates tables with.

    On MySQL and MariaDB ``DATETIME(6)``, ``TIME(6)``, ``DOUBLE``, ``LONGTEXT`` (and a UUID as
    ``CHAR(36)`` on MariaDB) where SQLAlchemy's defaults would drop microseconds, float digits
    or text past 64 KB; on SQLite ``INTEGER`` for ``BigInteger`` and ``SmallInteger`` (only an
    ``INTEGER`` key is assigned rowids); PostgreSQL is unchanged. Run Alembic's migrations
    inside it, so a migrated table matches the one ``create_tables=True`` would have made, and
    autogenerate compares against the same types.
    """
    with creating_tables():
        yield
