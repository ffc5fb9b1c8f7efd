"""Access tokens that must be refused — expired, forged, tampered, alg=none, wrong claims — and
key rotation: a retired key verifies while it is listed, and not after."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest

from capebase.auth.builtin.tokens import key_id
from tests.auth._support import (
    BAD_TOKEN,
    OLD_SECRET,
    SECRET,
    bearer,
    claims_of,
    forge,
    now,
    running,
    signed_up,
)

OTHER_SECRET = "an-attackers-secret-0123456789-abcdefghijklmnop"


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    return f"{_b64({'alg': alg, 'typ': 'JWT', 'kid': key_id(SECRET)})}.{_b64(claims)}."


def _bad_tokens(good: str) -> dict[str, str]:
    claims = claims_of(good)
    head, body, signature = good.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return {
        "expired": forge(claims, iat=now() - 120, exp=now() - 60),
        "wrong-key": forge(claims, secret=OTHER_SECRET, kid=key_id(SECRET)),
        "wrong-key-own-kid": forge(claims, secret=OTHER_SECRET),
        "no-kid": jwt.encode(claims, SECRET, algorithm="HS256"),
        "tampered-claims": f"{head}.{_b64({**claims, 'role': 'admin'})}.{signature}",
        "tampered-signature": f"{head}.{body}.{flipped}",
        "alg-none": _unsigned(claims),
        "alg-None": _unsigned(claims, "None"),
        "alg-none-pyjwt": jwt.encode(
            claims, None, algorithm="none", headers={"kid": key_id(SECRET)}
        ),
        "other-hmac-alg": forge(claims, algorithm="HS384"),
        "wrong-issuer": forge(claims, iss="someone-else"),
        "wrong-audience": forge(claims, aud="another-app"),
        "no-exp": forge({k: v for k, v in claims.items() if k != "exp"}),
        "no-session": forge({k: v for k, v in claims.items() if k != "sid"}),
        "unknown-session": forge(claims, sid="00000000-0000-0000-0000-000000000000"),
        "unknown-user": forge(claims, sub="00000000-0000-0000-0000-000000000000"),
        "numeric-sub": forge(claims, sub=42),
        "garbage": "not.a.token",
        "huge": good + "A" * 5000,
    }


async def test_bad_tokens_are_401_never_anonymous(db_url: str) -> None:
    async with running(db_url) as (_built, client):
        good = (await signed_up(client, "alice@example.com"))["access_token"]
        assert (await client.get("/auth/me", headers=bearer(good))).status_code == 200
        for name, token in _bad_tokens(good).items():
            for path in ("/auth/me", "/auth_memo"):
                response = await client.get(path, headers=bearer(token))
                assert (name, response.status_code) == (name, 401)
                assert response.json() == BAD_TOKEN
                assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "Token abc", "bearer"]
)
async def test_a_malformed_authorization_header_is_401(sqlite_url: str, authorization: str) -> None:
    async with running(sqlite_url) as (_built, client):
        response = await client.get("/auth_memo", headers={"Authorization": authorization})
        assert (response.status_code, response.json()) == (401, BAD_TOKEN)


async def test_no_token_is_the_anonymous_caller(sqlite_url: str) -> None:
    async with running(sqlite_url) as (_built, client):
        assert (await client.get("/auth_memo")).status_code == 200


async def test_a_retired_key_verifies_while_listed(db_url: str) -> None:
    async with running(db_url, secret=OLD_SECRET) as (_built, client):
        old = (await signed_up(client, "alice@example.com"))["access_token"]
        assert jwt.get_unverified_header(old)["kid"] == key_id(OLD_SECRET)

    async with running(db_url, secret=SECRET, previous_secrets=[OLD_SECRET]) as (_built, client):
        assert (await client.get("/auth/me", headers=bearer(old))).status_code == 200
        new = (
            await client.post(
                "/auth/token",
                data={"username": "alice@example.com", "password": "correct horse battery"},
            )
        ).json()["access_token"]
        assert jwt.get_unverified_header(new)["kid"] == key_id(SECRET)
        assert (await client.get("/auth/me", headers=bearer(new))).status_code == 200

    async with running(db_url, secret=SECRET) as (_built, client):
        response = await client.get("/auth/me", headers=bearer(old))
        assert (response.status_code, response.json()) == (401, BAD_TOKEN)
        assert (await client.get("/auth/me", headers=bearer(new))).status_code == 200


async def test_other_issuer_and_audience_settings_refuse_each_others_tokens(
    sqlite_url: str,
) -> None:
    async with running(sqlite_url, issuer="https://a.example", audience="app-a") as (_b, client):
        token = (await signed_up(client, "alice@example.com"))["access_token"]
        assert (claims_of(token)["iss"], claims_of(token)["aud"]) == ("https://a.example", "app-a")
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
    async with running(sqlite_url, issuer="https://a.example", audience="app-b") as (_b, client):
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401
