"""What ``CapeBase`` checks and normalises as it is built and started: the auth provider, its
arguments of 0.1 (``db_path``, ``timeout``) and the database's schema."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from .auth.provider import AuthProvider, anonymous
from .changes.changelog import changes, missing_columns
from .changes.changelog import metadata as changelog_metadata
from .errors import ConfigurationError
from .realtime.config import RealtimeConfig

if TYPE_CHECKING:
    from .auth.builtin import PasswordAuth


async def require_schema(
    engine: AsyncEngine, served_models: Sequence[type[Any]], *, own_tables: bool
) -> None:
    """Say clearly what the database lacks, in one look at it: capebase's own tables and
    columns (``own_tables``: with ``create_tables=False`` they are the user's to migrate),
    and every table capebase serves with every column of its model (tables are created
    when missing, never altered, so a model that gained a field would otherwise fail each
    request with a database error)."""

    def missing(connection: Any) -> tuple[list[str], list[str]]:
        inspector = inspect(connection)
        names = set(inspector.get_table_names())
        own: list[str] = []
        if own_tables:
            own = [t for t in changelog_metadata.tables if t not in names]
            if changes.name in names:
                own += [f"{changes.name}.{c}" for c in missing_columns(connection)]
        served: list[str] = []
        for model in dict.fromkeys(served_models):
            table = model.__table__
            if table.name not in names:
                served.append(f"table {table.name} (model {model.__name__})")
                continue
            present = {column["name"] for column in inspector.get_columns(table.name)}
            served += [
                f"column {table.name}.{column.name} (model {model.__name__})"
                for column in table.c
                if column.name not in present
            ]
        return own, served

    async with engine.connect() as connection:
        own, served = await connection.run_sync(missing)
    if own:
        raise ConfigurationError(
            f"capebase's tables or columns {', '.join(own)} do not exist and "
            "create_tables=False. Add capebase.metadata to your Alembic target_metadata "
            "(e.g. target_metadata=[SQLModel.metadata, capebase.metadata]) and migrate, or "
            "use CapeBase(create_tables=True)."
        )
    if served:
        raise ConfigurationError(
            f"The database lacks {', '.join(served)}. capebase creates missing tables, but "
            "never changes a table that exists: migrate the schema (Alembic: see "
            "`capebase alembic init`), or in development delete the database and start again."
        )


def chosen_provider(
    get_auth_context: AuthProvider | None,
    auth_provider: AuthProvider | None,
    auth: PasswordAuth | None,
) -> AuthProvider:
    """The auth provider of the three ways to give one (``anonymous`` without any)."""
    if get_auth_context is not None and auth_provider is not None:
        raise ConfigurationError("Pass get_auth_context or auth_provider, not both")
    if auth is not None and (get_auth_context is not None or auth_provider is not None):
        raise ConfigurationError(
            "Pass auth= (the built-in auth, which is then the provider) or "
            "get_auth_context=, not both"
        )
    provider = auth.provider if auth is not None else get_auth_context or auth_provider
    return provider or anonymous


def database_url(db_url: str | None, db_path: str | None) -> str:
    """``db_url``, or ``db_path`` (its 0.1 name, the seed README's, kept without a warning:
    the README's code is the contract); the default SQLite file without either."""
    if db_path is None:
        return db_url or "sqlite+aiosqlite:///capebase.db"
    if db_url is not None:
        raise TypeError("CapeBase() takes db_url or db_path (another name for it), not both")
    return db_path


def with_shutdown_grace(config: RealtimeConfig, timeout: float | None) -> RealtimeConfig:
    """``config`` with ``timeout=`` (0.1's keyword) as its shutdown grace."""
    if timeout is None:
        return config
    default = next(f.default for f in dataclasses.fields(config) if f.name == "shutdown_grace")
    if config.shutdown_grace not in (default, timeout):
        raise ConfigurationError(
            "timeout= is RealtimeConfig.shutdown_grace; pass one of them, not both"
        )
    return dataclasses.replace(config, shutdown_grace=timeout)
