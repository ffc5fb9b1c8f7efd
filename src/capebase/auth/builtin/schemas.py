"""Request and response bodies of the built-in auth routes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .models import as_utc

MAX_PASSWORD_LENGTH = 1024
"""Longer passwords are refused before hashing (hashing cost grows with length)."""

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,63}$")


def normalize_email(value: str) -> str:
    """``value`` as stored: stripped, lower-case, and shaped like an email address.

    Raises:
        ValueError: not an email address.
    """
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValueError("not a valid email address")
    return email


def normalize_username(value: str) -> str:
    """``value`` as stored: lower-case, 3-64 of ``a-z 0-9 _ . -`` (never an ``@``).

    Raises:
        ValueError: not a valid username.
    """
    username = value.strip().lower()
    if not _USERNAME.match(username):
        raise ValueError("must be 3-64 characters of a-z, 0-9, '_', '.', '-'")
    return username


class SignupRequest(BaseModel):
    """``POST /auth/signup``: a new account. The password's minimum length is configurable."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    username: str | None = Field(default=None, max_length=64)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return normalize_email(value)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        return None if value is None else normalize_username(value)


class UserRead(BaseModel):
    """A user as the API shows it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    username: str | None
    role: str | None
    is_active: bool
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class TokenResponse(BaseModel):
    """The answer of ``POST /auth/token`` and ``POST /auth/refresh`` (RFC 6749 shape)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    refresh_token: str


class RefreshRequest(BaseModel):
    """``POST /auth/refresh``: the refresh token to exchange (it is revoked by the exchange)."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(BaseModel):
    """``POST /auth/logout``: the refresh token of the sign-in to end.

    Without it, the sign-in of the request's bearer token is ended.
    """

    model_config = ConfigDict(extra="forbid")

    refresh_token: str | None = Field(default=None, min_length=1, max_length=512)
