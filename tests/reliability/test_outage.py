"""Database outages: requests fail fast with 503 and Retry-After (never 500, never a hang),
the app recovers by itself, and streams end with a resume token or keep going, losing
nothing either way."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from capebase import LimitsConfig
from capebase.realtime.hub import Hub
from capebase.realtime.subscribers import Subscriber
from tests.realtime._live import serve

from ._app import PATH, context_of, make_app, may_read, who
from ._expect import expected_ids, logged_changes, problems
from ._servers import restart_postgresql
from ._streams import StreamClient, wait_until

ALICE = who("alice")
ADMIN = who("root", role="admin")
RETRY = {"detail": "The database is unavailable; retry later"}


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A local port that accepts connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


URLS = {
    "asyncpg": "postgresql+asyncpg://postgres@127.0.0.1:{port}/db",
    "psycopg": "postgresql+psycopg://postgres@127.0.0.1:{port}/db",
    "asyncmy": "mysql+asyncmy://root@127.0.0.1:{port}/db",
    "aiomysql": "mysql+aiomysql://root@127.0.0.1:{port}/db",
}


CALLS: list[tuple[str, str, Any]] = [
    ("GET", PATH, None),
    ("GET", f"{PATH}/1", None),
    ("POST", PATH, {"body": "hello"}),
    ("PATCH", f"{PATH}/1", {"body": "changed"}),
    ("DELETE", f"{PATH}/1", None),
]


async def every_route_answers_503(
    client: httpx.AsyncClient, calls: list[tuple[str, str, Any]] = CALLS
) -> None:
    for method, url, body in calls:
        response = await client.request(method, url, json=body, headers=ALICE)
        assert response.status_code == 503, (method, url, response.text)
        assert response.json() == RETRY
        assert response.headers["retry-after"] == "2"


@pytest.mark.parametrize("driver", sorted(URLS))
async def test_a_database_that_refuses_connections_gets_503(driver: str) -> None:
    with closed_port() as port:
        app, _cape = make_app(URLS[driver].format(port=port), limits=LimitsConfig(retry_after=2))
        # No lifespan: it would fail to start against a database that is down.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await every_route_answers_503(client)


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_a_database_that_never_answers_gets_503_after_connect_timeout(driver: str) -> None:
    """PostgreSQL drivers bound the whole connection set-up. (The MySQL drivers bound only
    the TCP connection with connect_timeout, not the server's greeting: README says so.)"""
    with silent_server() as port:
        app, _cape = make_app(
            URLS[driver].format(port=port),
            limits=LimitsConfig(connect_timeout=0.5, retry_after=2),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await every_route_answers_503(client, CALLS[:1])


async def failing_replay(*_args: Any) -> AsyncIterator[Any]:
    raise OperationalError("SELECT ...", {}, ConnectionRefusedError("database restarting"))
    yield  # an async generator


async def test_a_replay_cut_by_the_database_ends_the_stream_with_its_token(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSE sends an ``unavailable`` event naming the token to resume from (and a ``retry``);
    a WebSocket sends the same message and closes with 1013."""
    app, cape = make_app(sqlite_url)
    async with serve(app) as live:
        monkeypatch.setattr(Hub, "replay", failing_replay)
        binding = cape.hub.binding(PATH.lstrip("/"), context_of(ADMIN), [])
        token = cape.hub.tokens.issue(binding, "7~3,5")
        for transport in ("sse", "ws"):
            stream = StreamClient(live.url, f"{PATH}/subscribe", transport, ADMIN, token=token)
            await stream.connect()
            await stream.ended()
            assert [c["event"] for c in stream.controls] == ["unavailable"]
            unavailable = stream.controls[0]
            assert unavailable["reason"] == "database unavailable; reconnect to resume"
            # The same position, in a token issued now.
            assert unavailable["resume"].partition(".")[0] == "7~3,5"
            assert stream.token == unavailable["resume"]
            if transport == "ws":
                assert stream.close_code == 1013
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="the streams to close")


async def test_a_websocket_refused_by_the_database_closes_with_1013(sqlite_url: str) -> None:
    """The auth provider (or any dependency) failing for the database: close code 1013."""
    app, cape = make_app(sqlite_url)

    def down(*_args: Any, **_kwargs: Any) -> Subscriber:
        raise OperationalError("SELECT ...", {}, ConnectionRefusedError("database restarting"))

    async with serve(app) as live:
        cape.hub.add_subscriber = down  # type: ignore[method-assign]
        stream = StreamClient(live.url, f"{PATH}/subscribe", "ws", ADMIN)
        await stream.connect()
        await stream.ended()
        assert stream.close_code == 1013
        sse = StreamClient(live.url, f"{PATH}/subscribe", "sse", ADMIN)
        await sse.connect()
        assert sse.status == 503


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_a_postgresql_restart_fails_fast_recovers_and_loses_no_event(
    db_kind: str, db_url: str
) -> None:
    """The server really restarts (``pg_ctlcluster restart -m fast``) while requests and
    streams are running. Requests meanwhile get 503 (never 500, never a hang); afterwards the
    app works again without help, and every subscriber, resuming if its stream ended, has
    exactly the changes its rules allow: none lost, none twice, none denied."""
    app, cape = make_app(db_url, limits=LimitsConfig(retry_after=1))
    async with (
        serve(app) as live,
        httpx.AsyncClient(base_url=live.url, timeout=httpx.Timeout(15)) as client,
    ):
        subscribers = {
            "admin-sse": StreamClient(live.url, f"{PATH}/subscribe", "sse", ADMIN),
            "admin-ws": StreamClient(live.url, f"{PATH}/subscribe", "ws", ADMIN),
            "alice-sse": StreamClient(live.url, f"{PATH}/subscribe", "sse", ALICE),
            "bob-ws": StreamClient(live.url, f"{PATH}/subscribe", "ws", who("bob", orgs="red")),
        }
        for stream in subscribers.values():
            await stream.connect()
        for n in range(5):
            owner = ("alice", "bob", "carl")[n % 3]
            response = await client.post(PATH, json={"body": f"before {n}", "org": "blue"},
                                         headers=who(owner))
            assert response.status_code == 201

        statuses: Counter[int] = Counter()
        restart = asyncio.create_task(asyncio.to_thread(restart_postgresql))
        # Opened while the database is down (right after the first 503): its replay fails, so
        # it must end with a resume token and reconnect once the database is back.
        # It resumes from a token the server issued to the same caller's stream before.
        late_start = subscribers["admin-sse"].token
        assert late_start, "admin-sse got no token before the restart"
        late = StreamClient(live.url, f"{PATH}/subscribe", "sse", ADMIN, token=late_start)
        n = 0
        while not restart.done() or n < 20:
            method, url, body = (
                ("POST", PATH, {"body": f"during {n}", "org": "red"}) if n % 2 == 0
                else ("GET", PATH, None)
            )
            response = await client.request(method, url, json=body, headers=ALICE)
            statuses[response.status_code] += 1
            if response.status_code == 503:
                assert response.headers["retry-after"] == "1"
                if "admin-late-sse" not in subscribers:
                    subscribers["admin-late-sse"] = late
                    await late.connect()
            n += 1
            await asyncio.sleep(0.02)
        await restart
        assert set(statuses) <= {200, 201, 503}, statuses
        assert statuses[503] >= 1, f"no request saw the restart: {dict(statuses)}"
        await late.ended()  # the outage ended it, or refused it outright
        assert late.status == 503 or [c["event"] for c in late.controls] == ["unavailable"], (
            late.status, late.controls, late.error
        )

        async def recovered() -> bool:
            response = await client.post(PATH, json={"body": "after", "org": "red"},
                                         headers=ALICE)
            return response.status_code == 201

        await wait_until(recovered, within=30, what="the app to recover")
        for n in range(5):
            response = await client.post(PATH, json={"body": f"after {n}", "org": "red"},
                                         headers=who(("alice", "bob")[n % 2]))
            assert response.status_code == 201, response.text

        log = await logged_changes(cape.engine, "rel_memo")
        for name, stream in subscribers.items():
            ctx = context_of(dict(stream.headers))
            after = resume_position(late_start) if stream is late else 0
            wanted = expected_ids(log, ctx, may_read, after=after)

            async def complete(stream: StreamClient = stream, wanted: list[int] = wanted) -> bool:
                if not stream.is_open:  # ended during the outage: resume from its token
                    await stream.connect()
                return set(wanted) <= set(stream.ids)

            await wait_until(complete, within=30, what=f"{name} to catch up")
            await stream.disconnect()
            assert stream.ids == wanted, name
            assert problems(stream.messages, log, ctx, may_read) == [], name
        print(f"statuses during the restart: {dict(statuses)}; connections per stream: "
              f"{ {name: s.connections for name, s in subscribers.items()} }")
        assert late.connections >= 2, "the stream cut by the outage reconnected and caught up"
        await wait_until(lambda: cape.hub.subscriber_count == 0, what="the streams to close")


def resume_position(token: str) -> int:
    """The change id a signed resume token (``<position>.<issued>.<mac>``) resumes after."""
    return int(token.split(".")[0].split("~")[0])
