"""Stream tickets (issue 16, item 8): ``POST /auth/stream-ticket`` gives a short-lived ticket
that opens one stream, once, so that no long-lived token goes into a URL; and capebase keeps
``access_token`` and ``ticket`` values out of uvicorn's log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import update

from capebase.auth.builtin.models import utc_now
from capebase.auth.builtin.tickets import stream_tickets
from tests.auth._streams import SSE, WS, Got
from tests.auth._support import bearer, login, make_app, signup
from tests.realtime._live import LiveServer, free_socket, serve, wait_until


async def _token(live: LiveServer, email: str) -> str:
    async with httpx.AsyncClient(base_url=live.url) as client:
        assert (await signup(client, email)).status_code == 201
        response = await login(client, email)
        assert response.status_code == 200
        return str(response.json()["access_token"])


async def _ticket(live: LiveServer, token: str) -> str:
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.post("/auth/stream-ticket", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["expires_in"] == 30 and len(body["ticket"]) >= 40
    return str(body["ticket"])


async def _write(live: LiveServer, token: str, text: str) -> None:
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.post("/auth_memo", json={"text": text}, headers=bearer(token))
        assert response.status_code == 201, response.text


async def _refused(client: SSE | WS) -> Got:
    async with client as got:
        await wait_until(got.ended.is_set, what="the stream to be refused")
    return got


async def test_a_ticket_opens_one_stream_once(db_url: str) -> None:
    built, other = make_app(db_url), make_app(db_url)
    async with serve(built.app) as live, serve(other.app) as elsewhere:
        alice = await _token(live, "alice@example.com")
        sse_ticket, ws_ticket, foreign = [await _ticket(live, alice) for _ in range(3)]
        async with (
            SSE(live, params={"ticket": sse_ticket}) as over_sse,
            WS(live, params={"ticket": ws_ticket}) as over_ws,
            SSE(elsewhere, params={"ticket": foreign}) as on_other_process,
        ):
            await _write(live, alice, "for alice")
            for got in (over_sse, over_ws, on_other_process):
                await got.wait_for("for alice")
        # Used up: a second use is a bad token, on every process and transport.
        again = [
            await _refused(SSE(live, params={"ticket": sse_ticket})),
            await _refused(SSE(elsewhere, params={"ticket": ws_ticket})),
            await _refused(WS(live, params={"ticket": foreign})),
        ]
        async with httpx.AsyncClient(base_url=live.url) as client:
            no_token = await client.post("/auth/stream-ticket")
            bad_token = await client.post("/auth/stream-ticket", headers=bearer("x.y.z"))
            # Not a credential anywhere but on a stream, and not used up there either.
            unused = await _ticket(live, alice)
            me = await client.get("/auth/me", params={"ticket": unused})
        async with SSE(live, params={"ticket": unused}) as still_good:
            await _write(live, alice, "still")
            await still_good.wait_for("still")
        made_up = await _refused(SSE(live, params={"ticket": "0" * 43}))
    assert [g.status for g in again[:2]] == [401, 401]
    assert again[2].status == 403  # the handshake is refused (close 1008 before accept)
    assert (no_token.status_code, bad_token.status_code) == (401, 401)
    assert me.status_code == 401
    assert made_up.status == 401


async def test_a_ticket_is_redeemed_once_under_concurrency(db_url: str) -> None:
    built = make_app(db_url)
    async with serve(built.app) as live:
        alice = await _token(live, "alice@example.com")
        ticket = await _ticket(live, alice)

        async def open_with_ticket() -> int:
            async with (
                httpx.AsyncClient(base_url=live.url) as client,
                client.stream(
                    "GET",
                    "/auth_memo/subscribe",
                    params={"ticket": ticket},
                    headers={"Accept": "text/event-stream"},
                ) as r,
            ):
                return r.status_code

        statuses = await asyncio.gather(*(open_with_ticket() for _ in range(8)))
    assert sorted(statuses) == [200] + [401] * 7


async def test_expired_and_signed_out_tickets_open_nothing(db_url: str) -> None:
    built = make_app(db_url)
    async with serve(built.app) as live:
        alice = await _token(live, "alice@example.com")
        expired, after_logout = await _ticket(live, alice), await _ticket(live, alice)
        async with built.cape.engine.begin() as connection:
            await connection.execute(
                update(stream_tickets).values(expires_at=utc_now() - timedelta(seconds=1))
            )
        got_expired = await _refused(SSE(live, params={"ticket": expired}))
        after_logout = await _ticket(live, alice)
        async with httpx.AsyncClient(base_url=live.url) as client:
            assert (await client.post("/auth/logout", headers=bearer(alice))).status_code == 204
        got_logged_out = await _refused(WS(live, params={"ticket": after_logout}))
    assert got_expired.status == 401
    assert got_logged_out.status == 403


def test_uvicorn_logs_no_stream_credentials(tmp_path: Path) -> None:
    """uvicorn run as usual (its own logging setup, access log on): the request line and the
    WebSocket line keep their path but not the token or ticket."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "CAPEBASE_LOG_DB": f"sqlite+aiosqlite:///{tmp_path / 'log.db'}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.auth._log_app:app", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    secret = "SeCrEt-token-value"
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(_requests_with_credentials(url, secret))
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "/auth_memo?access_token=[redacted]&limit=1" in output, output
    assert "/auth_memo/subscribe?ticket=[redacted]" in output, output
    assert secret not in output


async def _requests_with_credentials(url: str, secret: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        async def up() -> bool:
            try:
                return (await client.get("/auth_memo")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(up, within=30, what="uvicorn to start")
        await client.get("/auth_memo", params={"access_token": secret, "limit": "1"})
        live = LiveServer.__new__(LiveServer)
        live.port = int(url.rsplit(":", 1)[1])
        await _refused(WS(live, params={"ticket": secret}))
