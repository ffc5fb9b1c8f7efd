"""PasswordAuth's settings are validated once, and it plugs into CapeBase one way only."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

import capebase
from capebase import AuthContext, CapeBase, ConfigurationError, PasswordAuth
from capebase.auth import PasswordAuth as PasswordAuthFromAuth
from capebase.auth.builtin import PasswordAuthConfig
from tests.auth._support import FAST_HASH, SECRET, login, running, signup


def test_password_auth_is_public() -> None:
    assert "PasswordAuth" in capebase.__all__
    assert PasswordAuthFromAuth is PasswordAuth
    assert "PasswordAuth" in capebase.auth.__all__


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"secret": "too short"}, "at least 32 bytes"),
        ({"secret": SECRET, "algorithm": "HS512"}, "at least 64 bytes"),
        ({"secret": SECRET, "algorithm": "none"}, "algorithm must be one of"),
        ({"secret": SECRET, "algorithm": "RS256"}, "algorithm must be one of"),
        ({"secret": SECRET, "previous_secrets": ["short"]}, "previous_secrets must be"),
        ({"secret": SECRET, "access_token_lifetime": timedelta(0)}, "positive"),
        ({"secret": SECRET, "refresh_token_lifetime": timedelta(seconds=-1)}, "positive"),
        ({"secret": SECRET, "lockout_time": timedelta(0)}, "positive"),
        (
            {"secret": SECRET, "access_token_lifetime": timedelta(days=31)},
            "shorter than refresh_token_lifetime",
        ),
        ({"secret": SECRET, "prefix": "auth"}, "prefix"),
        ({"secret": SECRET, "prefix": "/auth/"}, "prefix"),
        ({"secret": SECRET, "issuer": ""}, "issuer"),
        ({"secret": SECRET, "min_password_length": 0}, "min_password_length"),
        ({"secret": SECRET, "max_failed_logins": 0}, "max_failed_logins"),
        ({"secret": SECRET, "initial_admin": ("not-an-email", "long enough pw")}, "email"),
        ({"secret": SECRET, "initial_admin": ("a@example.com", "short")}, "password"),
        ({"secret": SECRET, "initial_admin": "a@example.com"}, "(email, password)"),
    ],
)
def test_bad_settings_are_refused_with_a_fix(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PasswordAuth(**settings)


def test_config_is_frozen_and_hides_secrets() -> None:
    config = PasswordAuthConfig(secret=SECRET, initial_admin=("a@example.com", "hunter2hunter2"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.secret = "x" * 64  # type: ignore[misc]
    assert SECRET not in repr(config)
    assert "hunter2" not in repr(config)
    assert PasswordAuth(config).config is config
    with pytest.raises(ConfigurationError, match="not both"):
        PasswordAuth(config, secret=SECRET)


async def provider() -> AuthContext:
    return AuthContext()


def test_auth_and_a_provider_are_exclusive(sqlite_url: str) -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        CapeBase(FastAPI(), sqlite_url, get_auth_context=provider, auth=PasswordAuth(secret=SECRET))
    with pytest.raises(ConfigurationError, match="not both"):
        CapeBase(FastAPI(), sqlite_url, auth_provider=provider, auth=PasswordAuth(secret=SECRET))


def test_one_password_auth_serves_one_capebase(sqlite_url: str) -> None:
    auth = PasswordAuth(secret=SECRET)
    CapeBase(FastAPI(), sqlite_url, auth=auth)
    with pytest.raises(ConfigurationError, match="already used"):
        CapeBase(FastAPI(), sqlite_url, auth=auth)


def test_unattached_auth_says_how_to_attach() -> None:
    with pytest.raises(ConfigurationError, match=r"CapeBase\(\.\.\., auth="):
        _ = PasswordAuth(secret=SECRET).store


async def test_prefix_and_signup_switch(sqlite_url: str) -> None:
    async with running(
        sqlite_url, prefix="/identity", allow_signup=False, password_hash=FAST_HASH
    ) as (built, client):
        assert (await signup(client, "a@example.com")).status_code == 404
        assert (await client.post("/identity/signup", json={})).status_code == 404
        await built.auth.create_user("a@example.com", "correct horse battery")
        response = await client.post(
            "/identity/token",
            data={"username": "a@example.com", "password": "correct horse battery"},
        )
        assert response.status_code == 200
        assert (await login(client, "a@example.com")).status_code == 404
        schema = (await client.get("/openapi.json")).json()
        flow = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
        assert flow["password"]["tokenUrl"] == "identity/token"


async def test_without_create_tables_missing_auth_tables_are_named(sqlite_url: str) -> None:
    from capebase.auth.builtin import metadata
    from capebase.testing import app_client

    app = FastAPI()
    CapeBase(app, sqlite_url, auth=PasswordAuth(secret=SECRET), create_tables=False)
    engine = create_async_engine(sqlite_url)
    async with engine.begin() as connection:
        await connection.run_sync(capebase.metadata.create_all)
    with pytest.raises(ConfigurationError, match=r"capebase\.auth\.builtin\.metadata"):
        async with app_client(app):
            pass
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    await engine.dispose()
    async with app_client(app) as client:
        assert (await signup(client, "a@example.com")).status_code == 201
