"""POST /auth/signup: new accounts, conflicts and input validation, on every database."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.auth._support import PASSWORD, running, signup


async def test_signup_creates_a_user_without_exposing_the_hash(db_url: str) -> None:
    async with running(db_url, default_role="member") as (_built, client):
        response = await signup(client, "  Alice@Example.COM ", username="Alice_1")
        assert response.status_code == 201, response.text
        user = response.json()
        assert set(user) == {"id", "email", "username", "role", "is_active", "created_at"}
        assert (user["email"], user["username"], user["role"]) == (
            "alice@example.com",
            "alice_1",
            "member",
        )
        assert user["is_active"] is True
        assert datetime.fromisoformat(user["created_at"]).tzinfo is not None
        assert PASSWORD not in response.text


@pytest.mark.parametrize(
    "second",
    [
        {"email": "ALICE@example.com"},
        {"email": "other@example.com", "username": "ALICE"},
    ],
    ids=["same-email", "same-username"],
)
async def test_a_taken_email_or_username_is_a_conflict(db_url: str, second: dict[str, str]) -> None:
    async with running(db_url) as (_built, client):
        assert (await signup(client, "alice@example.com", username="alice")).status_code == 201
        response = await client.post("/auth/signup", json={"password": PASSWORD, **second})
        assert response.status_code == 409
        assert response.json() == {
            "detail": "An account with this email or username already exists"
        }


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@b", "password": PASSWORD},
        {"email": "a@example.com", "password": "short"},
        {"email": "a@example.com", "password": "x" * 1025},
        {"email": "a@example.com", "password": PASSWORD, "username": "a@b.c"},
        {"email": "a@example.com", "password": PASSWORD, "username": "ab"},
        {"email": "a@example.com", "password": PASSWORD, "role": "admin"},
        {"email": "a@example.com"},
        {"password": PASSWORD},
    ],
    ids=[
        "bad-email",
        "email-without-dot",
        "short-password",
        "huge-password",
        "username-with-at",
        "short-username",
        "role-is-not-an-input",
        "no-password",
        "no-email",
    ],
)
async def test_invalid_input_is_422(db_url: str, body: dict[str, str]) -> None:
    async with running(db_url) as (_built, client):
        response = await client.post("/auth/signup", json=body)
        assert response.status_code == 422, response.text


async def test_minimum_password_length_is_configurable(sqlite_url: str) -> None:
    async with running(sqlite_url, min_password_length=20) as (_built, client):
        response = await signup(client, "a@example.com", "nineteen characters")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "password"]
        assert (await signup(client, "a@example.com", "twenty characters!!!")).status_code == 201
