"""Resumed streams whose clients stop reading (eighth review of issue 16).

OWASP API Security Top 10 (2023):
- API4 Unrestricted Resource Consumption: a replay read the change log inside one pooled
  connection and yielded each message to the transport; once a client stopped reading, its
  socket filled, the replay blocked, and the connection was never returned. One user with
  pool_size + max_overflow (40) such streams, fewer than max_subscriptions_per_client, took
  every connection: other users' requests got 503 and live delivery stopped.

Now each batch is read and judged on a connection given back before its messages are sent.
Real uvicorn, raw sockets that never read, on SQLite, PostgreSQL and MariaDB.
"""
from __future__ import annotations

import asyncio
import socket
import time

import httpx
from fastapi import FastAPI
from sqlalchemy import Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, CapeBase, LimitsConfig
from tests.realtime._app import header_auth, who
from tests.realtime._live import SSEStream, serve, wait_until

MALLORY, ALICE = who("mallory"), who("alice")
STREAMS = 40  # engine.POOL_SIZE + POOL_OVERFLOW
ROWS = 120
BIG = "x" * 60_000


class Base(SQLModel, registry=registry()):
    pass


class Note(Base, table=True):
    __tablename__ = "a2_note"
    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    body: str = Field(sa_type=Text)


async def stalled_sse(port: int, token: str) -> socket.socket:
    """A raw SSE request resuming from ``token`` whose client never reads the answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    request = (
        f"GET /a2_note/subscribe HTTP/1.1\r\nHost: x\r\nX-User: mallory\r\n"
        f"Accept: text/event-stream\r\nLast-Event-ID: {token}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    return sock


async def test_stalled_replays_take_the_pool(db_url: str) -> None:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth,
                    limits=LimitsConfig(pool_timeout=3.0))
    cape.publish(Note)
    cape.permission_required(Note, owner_field="owner_id", actions=["*"])
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        async with SSEStream(live.url, "/a2_note/subscribe", MALLORY, {}) as got:
            await wait_until(lambda: got.ready, what="ready")
            token = got.ready[0]["id"]
        for _ in range(ROWS):  # mallory's own rows: a long replay for her token
            r = await client.post("/a2_note", json={"body": BIG}, headers=MALLORY)
            assert r.status_code == 201, r.text
        socks = [await stalled_sse(live.port, token) for _ in range(STREAMS)]
        await asyncio.sleep(3)
        pool = cape.engine.sync_engine.pool
        print("pool:", pool.status())
        started = time.monotonic()
        r = await client.get("/a2_note", headers=ALICE)
        took = time.monotonic() - started
        print(f"alice GET /a2_note -> {r.status_code} after {took:.1f}s: {r.text[:120]}")
        r2 = await client.post("/a2_note", json={"body": "hi"}, headers=ALICE)
        print(f"alice POST -> {r2.status_code}")
        for s in socks:
            s.close()
        assert (r.status_code, r2.status_code) == (200, 201), (
            "another user's request failed while mallory's stalled replays hold the pool "
            f"({r.status_code}, {r2.status_code})"
        )
