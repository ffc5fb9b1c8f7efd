"""An app using the built-in auth for one test, a cheap password hasher, and request helpers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, CapeBase, PasswordAuth
from capebase.auth.builtin.tokens import key_id
from capebase.testing import app_client

# Random, as production keys are: PasswordAuth refuses placeholders outside development mode.
SECRET = "wv7Pr8Lx5pGDXm73VMS7lfBcll2zv6TBLWdONxIGPr-La2Nf"
OLD_SECRET = "IXK67cOvqQiP-k4iBdSUCQFtjIVhsdzLqNJWwgIEtGwKeMed"
PASSWORD = "correct horse battery"
BAD_CREDENTIALS = {"detail": "Incorrect username or password"}
BAD_TOKEN = {"detail": "Invalid or expired token"}

# Argon2 with tiny costs: the tests exercise the logic, not the hash's strength.
FAST_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))


class AuthTestModel(SQLModel, registry=registry()):
    """Tables of the auth tests, in a registry of their own."""

    __test__ = False


class Memo(AuthTestModel, table=True):
    """A row owned by the user who created it; admins see every row."""

    __tablename__ = "auth_memo"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    text: str


@dataclass
class AuthApp:
    """One test's app: the FastAPI app, its CapeBase and PasswordAuth."""

    app: FastAPI
    cape: CapeBase
    auth: PasswordAuth


def make_app(db_url: str, **settings: Any) -> AuthApp:
    """An app on ``db_url`` with PasswordAuth(**settings) and ``Memo`` published."""
    settings.setdefault("secret", SECRET)
    settings.setdefault("password_hash", FAST_HASH)
    auth = PasswordAuth(**settings)
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, auth=auth)
    cape.publish(Memo)
    cape.permission_required(Memo, owner_field="owner_id", actions=["read", "create"])
    cape.permission_required(Memo, role="admin", actions=["*"])
    return AuthApp(app, cape, auth)


@asynccontextmanager
async def running(db_url: str, **settings: Any) -> AsyncIterator[tuple[AuthApp, httpx.AsyncClient]]:
    """``make_app`` with its lifespan running, and an in-process client."""
    built = make_app(db_url, **settings)
    async with app_client(built.app) as client:
        yield built, client


async def signup(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any
) -> httpx.Response:
    return await client.post("/auth/signup", json={"email": email, "password": password, **extra})


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post("/auth/token", data={"username": username, "password": password})


async def signed_up(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    """Sign ``email`` up and in; the token response."""
    assert (await signup(client, email)).status_code == 201
    response = await login(client, email)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    """The claims of ``token``, unverified."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def forge(
    claims: dict[str, Any],
    *,
    secret: str = SECRET,
    algorithm: str = "HS256",
    kid: str | None = None,
    **changes: Any,
) -> str:
    """A token with ``claims`` updated by ``changes``, signed with ``secret``."""
    body = {**claims, **changes}
    headers = {"kid": kid if kid is not None else key_id(secret)}
    return jwt.encode(body, secret, algorithm=algorithm, headers=headers)


def now() -> int:
    return int(time.time())


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def from_address(app: FastAPI, host: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the running ``app`` whose requests come from ``host``."""
    transport = httpx.ASGITransport(app=app, client=(host, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
