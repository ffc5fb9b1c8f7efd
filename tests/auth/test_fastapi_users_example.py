"""The README's FastAPI Users example (examples/fastapi_users_provider.py) works as a provider."""

from __future__ import annotations

import httpx
from examples.fastapi_users_provider import create_app

from capebase.testing import app_client


async def _register_and_login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    password = "a long enough password"
    registered = await client.post("/auth/register", json={"email": email, "password": password})
    assert registered.status_code == 201, registered.text
    response = await client.post("/auth/jwt/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_fastapi_users_provider(db_url: str) -> None:
    async with app_client(create_app(db_url)) as client:
        alice = await _register_and_login(client, "alice@example.com")
        bob = await _register_and_login(client, "bob@example.com")
        created = await client.post("/note", json={"text": "alice's"}, headers=alice)
        assert created.status_code == 201, created.text
        assert [n["text"] for n in (await client.get("/note", headers=alice)).json()] == ["alice's"]
        assert (await client.get("/note", headers=bob)).json() == []
        # Anonymous callers are allowed (and see nothing here); a bad token is refused.
        assert (await client.get("/note")).json() == []
        assert (await client.post("/note", json={"text": "x"})).status_code == 401
        bad = await client.get("/note", headers={"Authorization": "Bearer forged"})
        assert bad.status_code == 401
