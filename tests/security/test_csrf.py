"""Cross-site requests riding on credentials a browser sends by itself.

OWASP API Security Top 10 (2023): API2 Broken Authentication — credentials accepted where they
must not be. Issue 16, item 3: the built-in auth took ``?access_token=`` and the
``access_token`` cookie on any route when ``Accept`` contained ``text/event-stream``; ``Accept``
is CORS-safelisted, so a cross-site page logged a user out and ran her body-less POST routes.

Now those token sources count on the stream routes only, decided by the route. The matrix
below is generated from the app's own routes (generated, built-in auth and user-declared), so a
route added later is covered too: with the token in a cookie or in the query, under any
``Accept``, with or without a body, every non-stream route answers exactly as it answers an
anonymous caller (for the query: as it answers the same query with a token that names nobody).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable
from typing import Any

import httpx
from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select

from capebase import AuthContext
from capebase.testing import app_client
from tests.auth._support import BAD_TOKEN, AuthApp, Memo, bearer, make_app, signed_up

STREAM_PATH = "/auth_memo/subscribe"
ACCEPTS = ["text/event-stream", "text/event-stream, */*;q=0.1", "*/*"]


def _app(db_url: str) -> AuthApp:
    """The auth tests' app plus two user routes that act as the caller without a body."""
    built = make_app(db_url)
    cape = built.cape

    @built.app.post("/whoami")
    async def whoami(ctx: AuthContext = Depends(cape.auth_dependency)) -> dict[str, Any]:
        return {"id": ctx.id}

    @built.app.post("/memo/quick", status_code=201)
    async def quick_memo(session: AsyncSession = Depends(cape.get_db_dependency())) -> Memo:
        memo = Memo(text="written by a body-less POST")
        session.add(memo)
        await session.commit()
        return memo

    return built


def _requests(built: AuthApp, memo_id: int) -> list[tuple[str, str]]:
    """(method, path) of every documented HTTP route but the stream route, path parameters
    filled in."""
    found = []
    for template, operations in built.app.openapi()["paths"].items():
        if template == STREAM_PATH:
            continue
        path = template.replace("{id}", str(memo_id))
        assert "{" not in path, f"fill in the path parameters of {template}"
        found += [(method.upper(), path) for method in sorted(operations)]
    return found


def _shape(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.text


async def test_cookie_and_query_tokens_count_on_no_other_route(db_url: str) -> None:
    built = _app(db_url)
    async with app_client(built.app) as client:
        token = (await signed_up(client, "alice@example.com"))["access_token"]
        created = await client.post("/auth_memo", json={"text": "alice's"}, headers=bearer(token))
        assert created.status_code == 201
        memo_id = created.json()["id"]
        # The user routes really act as the caller when the token is in the header.
        assert (await client.post("/whoami", headers=bearer(token))).json() == {
            "id": created.json()["owner_id"]
        }

        requests = _requests(built, memo_id)
        methods = {method for method, _path in requests}
        paths = {path for _method, path in requests}
        assert {"GET", "POST", "PATCH", "DELETE"} <= methods, methods
        assert {"/auth/logout", "/auth/me", "/whoami", "/memo/quick", "/auth_memo"} <= paths

        tried = 0
        for (method, path), accept, body in itertools.product(
            requests, ACCEPTS, [None, {"text": "from a cross-site page"}]
        ):
            if method == "GET" and body is not None:
                continue
            sent: dict[str, Any] = {"headers": {"Accept": accept}}
            if body is not None:
                sent["json"] = body
            anonymous = await client.request(method, path, **sent)
            # The same query with a token that names nobody: a route reading it would answer
            # 401 here and act as alice below.
            no_one = await client.request(
                method, path, params={"access_token": "not-a-token"}, **sent
            )
            with_query = await client.request(
                method, path, params={"access_token": token}, **sent
            )
            client.cookies.set("access_token", token)
            try:
                with_cookie = await client.request(method, path, **sent)
            finally:
                client.cookies.clear()
            where = f"{method} {path} Accept: {accept} body: {body}"
            assert _shape(with_query) == _shape(no_one), where
            assert _shape(with_cookie) == _shape(anonymous), where
            tried += 1
        assert tried >= 3 * len(requests)

        # Nothing happened as alice: her sign-in is open and her memo is the only one.
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 200
        async with built.cape.get_privileged_session() as session:
            texts = (await session.execute(select(Memo.text))).scalars().all()
        assert texts == ["alice's"]


async def test_the_stream_route_reads_the_query_and_cookie_whatever_the_accept(
    sqlite_url: str,
) -> None:
    """The route decides: without ``Accept: text/event-stream`` a bad token on the stream
    route is still read (and refused), not ignored."""
    built = _app(sqlite_url)
    async with app_client(built.app) as client:
        for accept in ("*/*", "application/json"):
            by_query = await _refused(
                client.get(
                    STREAM_PATH, params={"access_token": "garbage"}, headers={"Accept": accept}
                )
            )
            assert (by_query.status_code, by_query.json()) == (401, BAD_TOKEN)
            client.cookies.set("access_token", "garbage")
            try:
                by_cookie = await _refused(client.get(STREAM_PATH, headers={"Accept": accept}))
            finally:
                client.cookies.clear()
            assert (by_cookie.status_code, by_cookie.json()) == (401, BAD_TOKEN)


async def _refused(request: Awaitable[httpx.Response]) -> httpx.Response:
    """The response to ``request``; in-process, an opened stream never completes, so a stream
    that opened (its token ignored) fails here instead of hanging."""
    try:
        async with asyncio.timeout(10):
            return await request
    except TimeoutError:
        raise AssertionError("the stream opened: its token was not read") from None
