"""The built-in auth's tables: ``capebase_users`` and ``capebase_refresh_tokens``.

They live in a registry (and MetaData) of their own, so that importing capebase never adds them
to ``SQLModel.metadata``: only an app that uses ``PasswordAuth`` creates them. Their credential
columns (``password_hash``, ``token_hash``) are secret fields: a change written through a
capebase session never carries them to the change log, the audit trail, handlers, streams or
generated routes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Column, ForeignKey, MetaData, String
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import UTCDateTime

from ...identity.secret_fields import secret_field


def utc_now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite and MySQL hand back naive UTC values)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id() -> str:
    """A new random id, as text."""
    return str(uuid.uuid4())


class AuthTable(SQLModel, registry=registry()):
    """The base of the built-in auth's tables: its own registry, so its own MetaData."""


metadata: MetaData = AuthTable.metadata


class User(AuthTable, table=True):
    """A user of the built-in auth. ``email`` and ``username`` are stored lower-case."""

    __tablename__ = "capebase_users"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    email: str = Field(max_length=254, unique=True)
    username: str | None = Field(default=None, max_length=64, unique=True)
    password_hash: str = secret_field(max_length=255)
    role: str | None = Field(default=None, max_length=64)
    is_active: bool = True
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )


class RefreshToken(AuthTable, table=True):
    """One refresh token, stored as its SHA-256 digest.

    Tokens of one sign-in share a ``family_id`` (the ``sid`` claim of its access tokens):
    refreshing revokes the presented token and issues the next one in the family; logging out,
    or presenting a token that was already rotated (a stolen copy), revokes the whole family.
    """

    __tablename__ = "capebase_refresh_tokens"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    user_id: str = Field(
        sa_column=Column(
            String(36),
            ForeignKey("capebase_users.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    family_id: str = Field(max_length=36, index=True)
    token_hash: str = secret_field(max_length=64, unique=True)
    created_at: datetime = Field(
        default_factory=utc_now, sa_column=Column(UTCDateTime(), nullable=False)
    )
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )
