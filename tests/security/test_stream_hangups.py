"""Clients that hang up while a stream opens (sixth review of issue 16).

OWASP API Security Top 10 (2023):
- API4 Unrestricted Resource Consumption: a WebSocket client that closed its socket during the
  handshake left its subscription in the hub for good (accept() raised before the code that
  ends it ran). Each such hang-up counted against ``max_subscriptions_per_client`` until the
  process ended, so a few of them locked the user out of streams, and enough accounts could
  use up ``max_subscriptions`` for everyone.

Real uvicorn, raw sockets that leave mid-handshake, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
from fastapi import FastAPI, Header
from websockets.asyncio.client import connect

from capebase import AuthContext, CapeBase
from capebase.realtime.config import RealtimeConfig
from tests.models import Item
from tests.realtime._live import serve, wait_until

LIMIT = 3
HANG_UPS = LIMIT * 3
ALICE = {"X-User": "alice"}
CALLS: list[str | None] = []


async def slow_auth(x_user: str | None = Header(None)) -> AuthContext:
    """A provider that awaits I/O (a token or JWKS lookup) before the stream is accepted:
    the window in which the client leaves."""
    CALLS.append(x_user)
    await asyncio.sleep(0.05)
    return AuthContext(id=x_user, role="user" if x_user else "anon")


def make_app(db_url: str) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(
        app=app,
        db_url=db_url,
        get_auth_context=slow_auth,
        realtime=RealtimeConfig(max_subscriptions_per_client=LIMIT),
    )
    cape.publish(Item)
    cape.permission_required(Item, actions=["read"])
    return app, cape


def _hang_up(port: int, request: str) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request.encode())


def websocket_handshake(port: int, path: str) -> str:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-User: alice\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )


def sse_request(port: int, path: str) -> str:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-User: alice\r\n"
        "Accept: text/event-stream\r\n\r\n"
    )


@pytest.mark.parametrize("request_for", [websocket_handshake, sse_request], ids=["ws", "sse"])
async def test_a_client_that_leaves_while_its_stream_opens_leaves_no_subscription(
    db_url: str, request_for: object
) -> None:
    assert callable(request_for)
    app, cape = make_app(db_url)
    CALLS.clear()
    path = "/crud_item/subscribe"
    async with serve(app) as live:
        for _ in range(HANG_UPS):
            _hang_up(live.port, request_for(live.port, path))
        # Every hang-up reached the auth provider (so the window was there), and every
        # subscription it opened is gone again.
        await wait_until(lambda: len(CALLS) == HANG_UPS, what="every hang-up to reach auth")
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="no subscription left")
        # alice, past her limit had they leaked, still opens both kinds of stream.
        async with connect(f"{live.ws_url}{path}", additional_headers=ALICE) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["event"] == "ready"
        async with (
            httpx.AsyncClient(base_url=live.url, headers=ALICE, timeout=10) as client,
            client.stream("GET", path) as response,
        ):
            assert response.status_code == 200
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="the streams to end")
