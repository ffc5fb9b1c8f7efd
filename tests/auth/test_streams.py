"""Tokens on SSE and WebSocket streams of a real uvicorn server: in the query, in a cookie, in
the header; and streams that end when the token expires, the user is disabled or logs out."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx

from tests.auth._streams import SSE, WS, Got, write_memo
from tests.auth._support import BAD_TOKEN, bearer, claims_of, login, make_app, signup
from tests.realtime._live import LiveServer, serve, wait_until

POLICY_VIOLATION = 1008


async def _sign_up(live: LiveServer, email: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.url) as client:
        assert (await signup(client, email)).status_code == 201
        response = await login(client, email)
        assert response.status_code == 200
        tokens: dict[str, Any] = response.json()
        return tokens


async def test_token_in_query_cookie_or_header_opens_streams(db_url: str) -> None:
    built = make_app(db_url)
    async with serve(built.app) as live:
        alice = (await _sign_up(live, "alice@example.com"))["access_token"]
        query = {"access_token": alice}
        clients = [
            SSE(live, params=query),
            SSE(live, cookies=query),
            SSE(live, headers=bearer(alice)),
            WS(live, params=query),
            WS(live, headers={"Cookie": f"access_token={alice}"}),
            WS(live, headers=bearer(alice)),
        ]
        anonymous_sse, anonymous_ws = SSE(live), WS(live)
        got: list[Got] = [await c.__aenter__() for c in [*clients, anonymous_sse, anonymous_ws]]
        try:
            assert all(g.opened.is_set() for g in got), [(g.status, g.body) for g in got]
            await write_memo(live, alice, "for alice")
            await write_memo(live, alice, "marker")
            for g in got[: len(clients)]:
                await g.wait_for("marker")
                assert g.texts == ["for alice", "marker"]
            # Anonymous streams are allowed, and see nothing of Alice's rows.
            assert got[-2].texts == [] and got[-1].texts == []
        finally:
            for c in [*clients, anonymous_sse, anonymous_ws]:
                await c.__aexit__(None, None, None)


async def test_bad_tokens_refuse_streams(db_url: str) -> None:
    built = make_app(db_url)
    async with serve(built.app) as live:
        alice = (await _sign_up(live, "alice@example.com"))["access_token"]
        tampered = alice[:-2] + ("AA" if not alice.endswith("AA") else "BB")
        for token in ("garbage", tampered, ""):
            async with SSE(live, params={"access_token": token}) as got:
                assert (got.status, got.body) == (401, BAD_TOKEN)
            async with WS(live, params={"access_token": token}) as got:
                assert got.status == 403  # the handshake is refused (close 1008 before accept)
        # A cookie on a cross-site WebSocket handshake is refused (browsers send it anyway).
        cross_site = {"Cookie": f"access_token={alice}", "Origin": "https://evil.example"}
        async with WS(live, headers=cross_site) as got:
            assert got.status == 403
        same_site = {"Cookie": f"access_token={alice}", "Origin": live.url}
        async with WS(live, headers=same_site) as got:
            assert got.status == 101


async def test_streams_end_when_the_token_expires(db_url: str) -> None:
    built = make_app(db_url, access_token_lifetime=timedelta(seconds=2))
    async with serve(built.app) as live:
        tokens = await _sign_up(live, "alice@example.com")
        assert tokens["expires_in"] == 2
        expires = claims_of(tokens["access_token"])["exp"]
        query = {"access_token": tokens["access_token"]}
        async with SSE(live, params=query) as sse, WS(live, params=query) as ws:
            await write_memo(live, tokens["access_token"], "before expiry")
            await sse.wait_for("before expiry")
            await ws.wait_for("before expiry")
            await sse.wait_ended(within=5)
            await ws.wait_ended(within=5)
            ended = time.time()
            assert sse.controls == ["expired"]
            assert ws.close_code == POLICY_VIOLATION
        # The streams lasted until the token's expiry, and not much longer.
        assert expires - 0.05 <= ended < expires + 1.5
        async with SSE(live, params=query) as got:
            assert got.status == 401


async def test_disabling_a_user_ends_their_streams_at_once(db_url: str) -> None:
    built = make_app(db_url)
    async with serve(built.app) as live:
        alice = await _sign_up(live, "alice@example.com")
        bob = await _sign_up(live, "bob@example.com")
        query = {"access_token": alice["access_token"]}
        async with (
            SSE(live, params=query) as sse,
            WS(live, params=query) as ws,
            SSE(live, params={"access_token": bob["access_token"]}) as bobs,
        ):
            await built.auth.set_active(claims_of(alice["access_token"])["sub"], False)
            await sse.wait_ended()
            await ws.wait_ended()
            assert sse.controls == ["expired"]
            assert ws.close_code == POLICY_VIOLATION
            assert not bobs.ended.is_set()
            await write_memo(live, bob["access_token"], "bob still here")
            await bobs.wait_for("bob still here")
        async with SSE(live, params=query) as got:
            assert got.status == 401
        async with WS(live, params=query) as got:
            assert got.status == 403


async def test_logout_ends_the_users_streams(db_url: str) -> None:
    built = make_app(db_url)
    async with serve(built.app) as live:
        alice = await _sign_up(live, "alice@example.com")
        query = {"access_token": alice["access_token"]}
        async with SSE(live, params=query) as sse, WS(live, params=query) as ws:
            async with httpx.AsyncClient(base_url=live.url) as client:
                response = await client.post(
                    "/auth/logout", json={"refresh_token": alice["refresh_token"]}
                )
                assert response.status_code == 204
            await wait_until(lambda: sse.ended.is_set() and ws.ended.is_set(), what="streams end")
            assert sse.controls == ["expired"]
            assert ws.close_code == POLICY_VIOLATION
