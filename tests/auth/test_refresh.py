"""POST /auth/refresh rotates refresh tokens; POST /auth/logout ends a sign-in for good."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import update

from capebase.auth.builtin import RefreshToken
from capebase.auth.builtin.models import utc_now
from tests.auth._support import BAD_TOKEN, bearer, claims_of, login, running, signed_up


async def test_refresh_rotates_and_a_reused_token_revokes_the_sign_in(db_url: str) -> None:
    async with running(db_url) as (_built, client):
        first = await signed_up(client, "alice@example.com")
        response = await client.post(
            "/auth/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        second = response.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert claims_of(second["access_token"])["sid"] == claims_of(first["access_token"])["sid"]
        assert (
            await client.get("/auth/me", headers=bearer(second["access_token"]))
        ).status_code == 200

        # The first refresh token is spent. Presenting it again means a copy was stolen: the
        # whole sign-in ends, the legitimate holder's newer tokens included.
        reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert (reused.status_code, reused.json()) == (401, BAD_TOKEN)
        rotated = await client.post(
            "/auth/refresh", json={"refresh_token": second["refresh_token"]}
        )
        assert rotated.status_code == 401
        assert (
            await client.get("/auth/me", headers=bearer(second["access_token"]))
        ).status_code == 401


async def test_logout_revokes_the_refresh_token_and_the_sign_in(db_url: str) -> None:
    async with running(db_url) as (_built, client):
        tokens = await signed_up(client, "alice@example.com")
        other = (await login(client, "alice@example.com")).json()  # a second device
        response = await client.post(
            "/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        )
        assert response.status_code == 204
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert (refreshed.status_code, refreshed.json()) == (401, BAD_TOKEN)
        assert (
            await client.get("/auth/me", headers=bearer(tokens["access_token"]))
        ).status_code == 401
        # The other sign-in goes on.
        assert (
            await client.get("/auth/me", headers=bearer(other["access_token"]))
        ).status_code == 200
        again = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
        assert again.status_code == 200
        # Logging out twice is harmless.
        response = await client.post(
            "/auth/logout", json={"refresh_token": tokens["refresh_token"]}
        )
        assert response.status_code == 204


async def test_logout_with_only_the_access_token(db_url: str) -> None:
    async with running(db_url) as (_built, client):
        tokens = await signed_up(client, "alice@example.com")
        response = await client.post("/auth/logout", headers=bearer(tokens["access_token"]))
        assert response.status_code == 204
        assert (
            await client.get("/auth/me", headers=bearer(tokens["access_token"]))
        ).status_code == 401
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401


async def test_logout_without_a_valid_token_is_401(sqlite_url: str) -> None:
    async with running(sqlite_url) as (_built, client):
        for kwargs in (
            {},
            {"json": {"refresh_token": "never-issued"}},
            {"headers": bearer("not.a.token")},
        ):
            response = await client.post("/auth/logout", **kwargs)  # type: ignore[arg-type]
            assert (response.status_code, response.json()) == (401, BAD_TOKEN)


async def test_an_expired_or_unknown_refresh_token_is_refused(db_url: str) -> None:
    async with running(db_url) as (built, client):
        tokens = await signed_up(client, "alice@example.com")
        async with built.cape.engine.begin() as connection:
            await connection.execute(
                update(RefreshToken).values(expires_at=utc_now() - timedelta(seconds=1))
            )
        for token in (tokens["refresh_token"], "never-issued"):
            response = await client.post("/auth/refresh", json={"refresh_token": token})
            assert (response.status_code, response.json()) == (401, BAD_TOKEN)
        for body in ({}, {"refresh_token": ""}, {"refresh_token": "x", "extra": 1}):
            assert (await client.post("/auth/refresh", json=body)).status_code == 422


async def test_concurrent_reuse_of_one_refresh_token_revokes_the_sign_in(db_url: str) -> None:
    """Several refreshes with one token at once: at most one wins, and the others are reuses
    like a later one would be, so the whole sign-in ends (on PostgreSQL and MariaDB the losers
    used to get a plain 401 and leave the winner's new token working)."""
    async with running(db_url) as (_built, client):
        first = await signed_up(client, "alice@example.com")
        body = {"refresh_token": first["refresh_token"]}
        answers = await asyncio.gather(*(client.post("/auth/refresh", json=body) for _ in range(8)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses.count(200) <= 1 and set(statuses) <= {200, 401}, statuses
        for answer in answers:
            if answer.status_code == 200:
                successor = answer.json()["refresh_token"]
                again = await client.post("/auth/refresh", json={"refresh_token": successor})
                assert again.status_code == 401, again.text
                access = answer.json()["access_token"]
                assert (await client.get("/auth/me", headers=bearer(access))).status_code == 401
        assert (
            await client.get("/auth/me", headers=bearer(first["access_token"]))
        ).status_code == 401
