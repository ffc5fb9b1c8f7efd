"""Resource limits: each is a setting with a safe default, and going over it is a clear 4xx
(or 503/504 for the database), never a 500 or a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import Request
from sqlalchemy import text

from capebase import CrudConfig, LimitsConfig, RealtimeConfig
from capebase.errors import ConfigurationError
from capebase.testing import app_client
from tests._databases import DbKind
from tests.realtime._live import serve

from ._app import PATH, make_app, who
from ._streams import StreamClient, wait_until

ALICE = who("alice")

# -- settings --------------------------------------------------------------------------------


def test_defaults_are_safe() -> None:
    limits, crud, realtime = LimitsConfig(), CrudConfig(), RealtimeConfig()
    assert (limits.max_filters, limits.max_body_size) == (32, 1024 * 1024)
    assert (limits.statement_timeout, limits.connect_timeout, limits.pool_timeout) == (30, 10, 10)
    assert limits.retry_after == 5
    assert (crud.max_page_size, crud.max_in_values) == (1000, 500)
    assert (realtime.max_subscriptions, realtime.max_subscriptions_per_client) == (100_000, 100)


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"max_filters": 0}, "max_filters"),
        ({"max_body_size": 0}, "max_body_size"),
        ({"statement_timeout": 0}, "statement_timeout"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"pool_timeout": 0}, "pool_timeout"),
        ({"retry_after": -1}, "retry_after"),
    ],
)
def test_bad_limits_are_refused_naming_the_setting(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        LimitsConfig(**settings)


def test_per_client_subscriptions_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="max_subscriptions_per_client"):
        RealtimeConfig(max_subscriptions_per_client=0)


def test_limits_are_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        LimitsConfig(3)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        LimitsConfig().max_filters = 3  # type: ignore[misc]


# -- filters per request ---------------------------------------------------------------------


async def test_too_many_filters_are_refused_naming_the_limit(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, limits=LimitsConfig(max_filters=3))
    three = {"org": "red", "level__gte": "0", "body__ne": "x"}
    async with app_client(app) as client:
        ok = await client.get(PATH, params={**three, "limit": 5, "offset": 0, "order_by": "id",
                                            "count": "true"}, headers=ALICE)
        assert ok.status_code == 200, ok.text  # paging and sorting are not filters
        over = await client.get(PATH, params={**three, "owner": "alice"}, headers=ALICE)
        assert over.status_code == 422
        assert over.json() == {
            "detail": "Too many filters: 4 given, at most 3 (LimitsConfig.max_filters)"
        }
        # The same parameter repeated counts each time.
        repeated = await client.get(f"{PATH}?org=a&org=b&org=c&org=d", headers=ALICE)
        assert repeated.status_code == 422
        sse = await client.get(f"{PATH}/subscribe?org=a&org=b&org=c&org=d&last_event_id=0")
        assert sse.status_code == 422
        assert "LimitsConfig.max_filters" in sse.json()["detail"]


async def test_too_many_filters_close_a_websocket_with_1008(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, limits=LimitsConfig(max_filters=2))
    async with serve(app) as live:
        over = StreamClient(live.url, f"{PATH}/subscribe", "ws", params={"org": "a",
                            "level": "1", "body": "x"})
        await over.connect()
        await over.ended()
        assert over.close_code == 1008
        fine = StreamClient(live.url, f"{PATH}/subscribe", "ws", params={"org": "a",
                            "last_event_id": "0"})
        await fine.connect()
        assert fine.is_open and fine.status == 101
        await fine.disconnect()


# -- request body size -----------------------------------------------------------------------


def chunks(total: int, size: int = 100) -> Any:
    """A body without Content-Length: httpx sends it chunked."""

    async def generate() -> AsyncIterator[bytes]:
        yield b'{"body": "'
        for _ in range(total // size):
            yield b"x" * size
        yield b'"}'

    return generate()


def body_app(sqlite_url: str, max_body_size: int | None) -> Any:
    app, _cape = make_app(sqlite_url, limits=LimitsConfig(max_body_size=max_body_size))

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/upload", max_body_size=10_000)
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    return app


async def test_large_bodies_get_413_with_or_without_content_length(sqlite_url: str) -> None:
    app = body_app(sqlite_url, max_body_size=1000)
    detail = "Request body too large: at most 1000 bytes (LimitsConfig.max_body_size)"
    async with app_client(app) as client:
        small = await client.post(PATH, json={"body": "x" * 100}, headers=ALICE)
        assert small.status_code == 201
        declared = await client.post(PATH, content=b" " * 2000, headers={
            **ALICE, "content-type": "application/json"})
        assert (declared.status_code, declared.json()) == (413, {"detail": detail})
        chunked = await client.post(PATH, content=chunks(5000), headers={
            **ALICE, "content-type": "application/json"})
        assert (chunked.status_code, chunked.json()) == (413, {"detail": detail})
        patched = await client.patch(f"{PATH}/{small.json()['id']}", content=chunks(5000),
                                     headers={**ALICE, "content-type": "application/json"})
        assert patched.status_code == 413
        # The app's own routes are guarded too, unless they set a limit of their own.
        assert (await client.post("/echo", content=b"x" * 1001)).status_code == 413
        assert (await client.post("/echo", content=chunks(2000))).status_code == 413
        assert (await client.post("/echo", content=b"x" * 1000)).json() == {"size": 1000}
        assert (await client.post("/upload", content=b"x" * 5000)).json() == {"size": 5000}
        assert (await client.get(PATH, headers=ALICE)).status_code == 200


async def test_the_body_guard_can_be_turned_off(sqlite_url: str) -> None:
    app = body_app(sqlite_url, max_body_size=None)
    async with app_client(app) as client:
        response = await client.post("/echo", content=b"x" * 2_000_000)
        assert response.json() == {"size": 2_000_000}


async def test_a_chunked_body_over_the_wire_is_cut_off(sqlite_url: str) -> None:
    """Through uvicorn: a client streaming an endless chunked body gets 413 and the connection
    ends, instead of the server buffering it. A raw socket, so that the client keeps sending
    for as long as the server keeps reading, and whatever the server answers is seen."""
    app = body_app(sqlite_url, max_body_size=1000)
    chunk = b"3e8\r\n" + b"x" * 1000 + b"\r\n"  # 1000 bytes, in chunked encoding
    async with serve(app) as live:
        reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n"
        )

        async def send_forever() -> None:
            # Ends when the server closes the connection (a reset or a broken pipe).
            while not writer.is_closing():
                writer.write(chunk)
                await writer.drain()

        async def receive_until_hung_up() -> tuple[bytes, str]:
            received = b""
            try:
                while data := await reader.read(65536):
                    received += data
            except ConnectionResetError:  # it hung up on a client still sending: expected
                return received, "reset"
            return received, "closed"

        sender = asyncio.create_task(send_forever())
        try:
            received, ending = await asyncio.wait_for(receive_until_hung_up(), 10)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            writer.close()
    assert received.startswith(b"HTTP/1.1 413 "), (received, ending)
    assert received.endswith(b"(LimitsConfig.max_body_size)\"}"), (received, ending)


# -- subscriptions per client ----------------------------------------------------------------


async def test_streams_per_client_are_limited_per_user_and_per_address(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, realtime=RealtimeConfig(max_subscriptions_per_client=2))
    async with serve(app) as live:

        def stream(transport: str, headers: dict[str, str]) -> StreamClient:
            return StreamClient(live.url, f"{PATH}/subscribe", transport, headers)  # type: ignore[arg-type]

        alice = [stream("sse", ALICE), stream("ws", ALICE)]
        for client in alice:
            await client.connect()
        over_sse, over_ws = stream("sse", ALICE), stream("ws", ALICE)
        await over_sse.connect()
        assert over_sse.status == 429
        assert "max_subscriptions_per_client" in over_sse.controls[0]["body"]
        await over_ws.connect()
        await over_ws.ended()
        assert (over_ws.status, over_ws.close_code) == (101, 1013)
        # Another user is another client; anonymous callers count by address.
        bob = stream("sse", who("bob"))
        await bob.connect()
        assert bob.status == 200
        anonymous = [stream("sse", {}), stream("ws", {})]
        for client in anonymous:
            await client.connect()
        third = stream("sse", {})
        await third.connect()
        assert third.status == 429
        # A closed stream frees its slot.
        await alice[0].disconnect()
        await wait_until(lambda: cape.hub.subscriber_count == 4, what="alice's stream to close")
        again = stream("sse", ALICE)
        await again.connect()
        assert again.status == 200
        for client in [*alice, again, bob, *anonymous]:
            await client.disconnect()
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="every stream to close")
        assert cape.hub._per_client == {}


# -- database timeouts -----------------------------------------------------------------------

SLEEP = {"postgresql": "SELECT pg_sleep(5)", "mariadb": "SELECT SLEEP(5)"}
SETTING = {
    "postgresql": ("SHOW statement_timeout", "250ms"),
    "mariadb": ("SELECT @@max_statement_time", "0.25"),
}


@pytest.mark.parametrize("db_kind", ["postgresql", "mariadb"])
async def test_a_statement_past_the_timeout_is_a_504(db_kind: DbKind, db_url: str) -> None:
    app, cape = make_app(db_url, limits=LimitsConfig(statement_timeout=0.25))

    @app.get("/slow")
    async def slow() -> None:
        async with cape.get_privileged_session() as session:  # raw SQL needs privileges
            await session.execute(text(SLEEP[db_kind]))

    async with app_client(app) as client:
        async with cape.get_privileged_session() as session:
            query, expected = SETTING[db_kind]
            assert str((await session.execute(text(query))).scalar()) == expected
        response = await client.get("/slow")
        assert response.status_code == 504
        assert response.json() == {
            "detail": "The database did not answer in time (LimitsConfig.statement_timeout)"
        }
        # The connection is fine afterwards.
        assert (await client.get(PATH, headers=ALICE)).status_code == 200


async def test_no_free_pooled_connection_is_a_503_with_retry_after(db_url: str) -> None:
    app, cape = make_app(
        db_url,
        limits=LimitsConfig(pool_timeout=0.2, retry_after=7),
        engine_options={"pool_size": 1, "max_overflow": 0},
    )
    async with app_client(app) as client:
        await wait_until(lambda: cape.engine.pool.checkedout() == 0, what="an idle pool")  # type: ignore[attr-defined]
        async with cape.engine.connect() as held:
            await held.execute(text("SELECT 1"))
            # A write: on SQLite, reads may run outside the pool (capebase.db.direct).
            response = await client.post(PATH, json={"body": "x"}, headers=ALICE)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert response.json() == {"detail": "The database is unavailable; retry later"}
        assert (await client.post(PATH, json={"body": "x"}, headers=ALICE)).status_code == 201


# -- paging ----------------------------------------------------------------------------------


async def test_paging_is_bounded_on_every_database(db_url: str) -> None:
    """Regression (found by schemathesis): ``offset=2**63`` was a 500 on SQLite."""
    app, _cape = make_app(db_url, crud=CrudConfig(default_page_size=10, max_page_size=50))
    async with app_client(app) as client:
        largest = await client.get(PATH, params={"offset": 2**63 - 1}, headers=ALICE)
        assert (largest.status_code, largest.json()) == (200, [])
        for params in ({"offset": 2**63}, {"offset": -1}, {"limit": 51}, {"limit": -1}):
            response = await client.get(PATH, params=params, headers=ALICE)
            assert response.status_code == 422, (params, response.text)
