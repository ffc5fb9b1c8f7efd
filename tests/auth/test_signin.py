"""POST /auth/token, GET /auth/me, and what an access token lets a request do."""

from __future__ import annotations

import jwt
import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select

from capebase.auth.builtin import User
from capebase.auth.builtin.tokens import key_id
from tests.auth._support import (
    BAD_CREDENTIALS,
    BAD_TOKEN,
    PASSWORD,
    SECRET,
    bearer,
    claims_of,
    login,
    running,
    signed_up,
    signup,
)


async def test_sign_in_returns_a_short_lived_access_token_and_a_refresh_token(db_url: str) -> None:
    async with running(db_url) as (_built, client):
        user = (await signup(client, "alice@example.com", username="alice")).json()
        for name in ("alice@example.com", "ALICE@example.com", "alice", " Alice "):
            response = await login(client, name)
            assert response.status_code == 200, (name, response.text)
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 15 * 60
        header = jwt.get_unverified_header(body["access_token"])
        assert header["alg"] == "HS256"
        assert header["kid"] == key_id(SECRET)
        claims = claims_of(body["access_token"])
        assert claims["sub"] == user["id"]
        assert (claims["iss"], claims["aud"], claims["role"]) == ("capebase", "capebase", None)
        assert claims["exp"] - claims["iat"] == 15 * 60
        assert isinstance(claims["sid"], str)


async def test_wrong_password_and_unknown_user_look_the_same(db_url: str) -> None:
    async with running(db_url) as (_built, client):
        await signup(client, "alice@example.com")
        wrong = await login(client, "alice@example.com", "wrong password!")
        unknown = await login(client, "nobody@example.com")
        unknown_name = await login(client, "nobody")
        huge = await login(client, "alice@example.com", "x" * 5000)
        for response in (wrong, unknown, unknown_name, huge):
            assert response.status_code == 401
            assert response.json() == BAD_CREDENTIALS
            assert response.headers["www-authenticate"] == "Bearer"


async def test_me_needs_a_token_and_shows_the_user(db_url: str) -> None:
    async with running(db_url) as (_built, client):
        tokens = await signed_up(client, "alice@example.com")
        me = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200
        assert me.json()["email"] == "alice@example.com"
        anonymous = await client.get("/auth/me")
        assert anonymous.status_code == 401
        assert anonymous.json() == {"detail": "Authentication required"}
        # A query token counts on streams only; a plain request stays anonymous.
        query = await client.get("/auth/me", params={"access_token": tokens["access_token"]})
        assert query.status_code == 401
        client.cookies.set("access_token", tokens["access_token"])
        assert (await client.get("/auth/me")).status_code == 401


async def test_the_token_is_the_request_identity_for_published_models(db_url: str) -> None:
    async with running(db_url) as (built, client):
        alice = await signed_up(client, "alice@example.com")
        bob = await signed_up(client, "bob@example.com")
        created = await client.post(
            "/auth_memo", json={"text": "alice's"}, headers=bearer(alice["access_token"])
        )
        assert created.status_code == 201
        assert created.json()["owner_id"] == claims_of(alice["access_token"])["sub"]
        assert (await client.get("/auth_memo", headers=bearer(bob["access_token"]))).json() == []
        assert (await client.get("/auth_memo")).json() == []
        assert (await client.post("/auth_memo", json={"text": "x"})).status_code == 401

        # Roles come from the user row at each request, so a promotion applies at once.
        await built.auth.set_role(claims_of(bob["access_token"])["sub"], "admin")
        seen = await client.get("/auth_memo", headers=bearer(bob["access_token"]))
        assert [m["text"] for m in seen.json()] == ["alice's"]


async def test_a_disabled_user_is_refused_everywhere_until_enabled(db_url: str) -> None:
    async with running(db_url) as (built, client):
        tokens = await signed_up(client, "alice@example.com")
        user_id = claims_of(tokens["access_token"])["sub"]
        await built.auth.set_active(user_id, False)

        response = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert (response.status_code, response.json()) == (401, BAD_TOKEN)
        assert (await client.get("/auth_memo", headers=bearer(tokens["access_token"]))).json() == (
            BAD_TOKEN
        )
        response = await login(client, "alice@example.com")
        assert (response.status_code, response.json()) == (401, BAD_CREDENTIALS)
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert (refreshed.status_code, refreshed.json()) == (401, BAD_TOKEN)

        await built.auth.set_active(user_id, True)
        assert (await login(client, "alice@example.com")).status_code == 200
        # Disabling ended the old sign-in for good.
        response = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert response.status_code == 401


async def test_admin_functions_name_missing_users(sqlite_url: str) -> None:
    from capebase import NotFoundError

    async with running(sqlite_url) as (built, _client):
        with pytest.raises(NotFoundError):
            await built.auth.set_active("no-such-id", False)
        with pytest.raises(NotFoundError):
            await built.auth.set_role("no-such-id", "admin")


async def test_initial_admin_is_created_once(db_url: str) -> None:
    admin = ("Root@Example.com", "pass phrase from the env")
    async with running(db_url, initial_admin=admin) as (_built, client):
        response = await login(client, "root@example.com", admin[1])
        assert response.status_code == 200
        assert claims_of(response.json()["access_token"])["role"] == "admin"
    # A restart (or a second process) finds the admin and leaves it, password included.
    async with running(db_url, initial_admin=(admin[0], "another pass phrase!")) as (_b, client):
        assert (await login(client, "root@example.com", admin[1])).status_code == 200
        assert (await login(client, "root@example.com", "another password!")).status_code == 401


async def test_sign_in_upgrades_an_outdated_hash(sqlite_url: str) -> None:
    async with running(sqlite_url) as (built, client):
        await signup(client, "alice@example.com")
    stronger = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=2048, parallelism=1),))
    async with running(sqlite_url, password_hash=stronger) as (built, client):
        assert (await login(client, "alice@example.com")).status_code == 200
        async with built.cape.engine.connect() as connection:
            hashed = (await connection.execute(select(User.password_hash))).scalar_one()
        assert "t=2" in hashed and "m=2048" in hashed
        assert (await login(client, "alice@example.com", PASSWORD)).status_code == 200


async def test_openapi_offers_the_password_flow(sqlite_url: str) -> None:
    async with running(sqlite_url) as (_built, client):
        schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]
    assert scheme == {
        "type": "oauth2",
        "flows": {"password": {"scopes": {}, "tokenUrl": "auth/token"}},
    }
    token_body = schema["paths"]["/auth/token"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in token_body
    assert schema["paths"]["/auth_memo"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
