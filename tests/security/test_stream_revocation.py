"""Ending a user's sign-in on one process ends their streams on the others (security review,
finding F1).

OWASP API Security Top 10 (2023):
- API2 Broken Authentication: logout, refresh-token theft detection (a reused refresh token),
  disabling a user and changing their role ended only the streams of the process that handled
  the call. A stream on another process of the same app kept delivering the user's private
  rows (or, for a demoted admin, other users' rows) until the access token expired.

Two CapeBase apps under two real uvicorn servers on one database: the call is made on app A,
the streams are open on app B. With a real broker (Redis, PostgreSQL NOTIFY) and the periodic
re-check off, the broker message alone must end them within ``BROKER_BOUND`` seconds; with no
broker (``memory://``) the re-check alone must, within ``revalidate_interval`` plus a margin.
A bystander's stream on B stays open and keeps receiving throughout.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from capebase import CapeBase, PasswordAuth
from capebase.realtime.config import RealtimeConfig
from tests.auth._streams import SSE, WS, Got, write_memo
from tests.auth._support import FAST_HASH, PASSWORD, SECRET, Memo, claims_of, login
from tests.auth._support import signup as sign_up_route
from tests.realtime._live import LiveServer, serve

POLICY_VIOLATION = 1008
BROKER_BOUND = 3.0
"""Seconds a broker message may take to end the streams on the other app."""
RECHECK_INTERVAL = 0.5
RECHECK_BOUND = RECHECK_INTERVAL + 3.0
NO_RECHECK = 3600.0

ACTIONS = ("logout", "set_role", "set_active", "refresh_reuse")
"""What ends (or changes) alice's sign-in on app A."""


def make_app(db_url: str, broker: str, revalidate_interval: float) -> tuple[FastAPI, PasswordAuth]:
    """An app on ``db_url``: admins read every memo, users their own."""
    auth = PasswordAuth(secret=SECRET, password_hash=FAST_HASH)
    app = FastAPI()
    realtime = RealtimeConfig(revalidate_interval=revalidate_interval)
    cape = CapeBase(app=app, db_url=db_url, auth=auth, broker=broker, realtime=realtime)
    cape.publish(Memo)
    cape.permission_required(Memo, owner_field="owner_id", actions=["read", "create"])
    cape.permission_required(Memo, role="admin", actions=["*"])
    return app, auth


@pytest.fixture(params=["redis broker", "postgresql broker", "no broker, re-check"])
def setup(request: pytest.FixtureRequest, db_url: str) -> Iterator[tuple[str, float, float]]:
    """``(broker URL, revalidate_interval, bound)`` of one way the news may travel."""
    if request.param == "redis broker":
        yield request.getfixturevalue("redis_url"), NO_RECHECK, BROKER_BOUND
    elif request.param == "postgresql broker":
        if not db_url.startswith("postgresql"):
            pytest.skip("the PostgreSQL broker needs a PostgreSQL database")
        yield db_url.replace("+asyncpg", ""), NO_RECHECK, BROKER_BOUND
    else:
        yield "memory://", RECHECK_INTERVAL, RECHECK_BOUND


async def _sign_in(live: LiveServer, email: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await login(client, email)
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens


def _ender(
    action: str, a: LiveServer, auth_a: PasswordAuth, tokens: dict[str, Any]
) -> Callable[[], Awaitable[None]]:
    """The call on app A that ends (or changes) the sign-in of ``tokens``."""
    user_id = claims_of(tokens["access_token"])["sub"]

    async def end() -> None:
        async with httpx.AsyncClient(base_url=a.url) as client:
            if action == "logout":
                body = {"refresh_token": tokens["refresh_token"]}
                assert (await client.post("/auth/logout", json=body)).status_code == 204
            elif action == "set_role":
                await auth_a.set_role(user_id, None)
            elif action == "set_active":
                await auth_a.set_active(user_id, False)
            else:  # the refresh token is used twice: it was stolen, the sign-in is revoked
                body = {"refresh_token": tokens["refresh_token"]}
                assert (await client.post("/auth/refresh", json=body)).status_code == 200
                assert (await client.post("/auth/refresh", json=body)).status_code == 401

    return end


async def test_ending_a_sign_in_on_one_app_ends_its_streams_on_another(
    db_url: str, setup: tuple[str, float, float]
) -> None:
    broker, interval, bound = setup
    app_a, auth_a = make_app(db_url, broker, interval)
    app_b, _auth_b = make_app(db_url, broker, interval)
    async with serve(app_a) as a, serve(app_b) as b:
        async with httpx.AsyncClient(base_url=a.url) as client:
            assert (await sign_up_route(client, "bob@example.com")).status_code == 201
        bob = await _sign_in(a, "bob@example.com")
        async with SSE(b, params={"access_token": bob["access_token"]}) as bystander:
            ended: list[str] = []
            for action in ACTIONS:
                email = f"admin-{action.replace('_', '-')}@example.com"
                await auth_a.create_user(email, PASSWORD, role="admin")
                alice = await _sign_in(a, email)
                query = {"access_token": alice["access_token"]}
                async with SSE(b, params=query) as sse, WS(b, params=query) as ws:
                    # Before: alice, an admin, reads bob's rows live on B.
                    await write_memo(a, bob["access_token"], f"before {action}")
                    for got in (sse, ws, bystander):
                        await got.wait_for(f"before {action}")
                    started = time.monotonic()
                    await _ender(action, a, auth_a, alice)()
                    await sse.wait_ended(within=bound)
                    await ws.wait_ended(within=bound)
                    assert time.monotonic() - started < bound
                    _assert_revoked(sse, ws)
                    await write_memo(a, bob["access_token"], f"after {action}")
                    await bystander.wait_for(f"after {action}")
                    assert f"after {action}" not in sse.texts + ws.texts
                    ended.append(action)
                assert not bystander.ended.is_set(), bystander
            assert ended == list(ACTIONS)


def _assert_revoked(sse: Got, ws: Got) -> None:
    assert sse.controls == ["expired"], sse
    assert ws.close_code == POLICY_VIOLATION, ws
