"""Realtime metrics: subscriptions, published changes, deliveries, drops, latency, handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from capebase import AuthContext
from capebase.realtime.config import RealtimeConfig
from capebase.testing import app_client
from tests.observability._app import Note, Scrape, make_app, scrape, who
from tests.realtime._live import SSEStream, WSStream, dispatched, serve, wait_until

SUBSCRIPTIONS = "capebase_realtime_subscriptions"


async def scrape_until(client: httpx.AsyncClient, check: Any, what: str) -> Scrape:
    """Scrape until ``check(scrape)`` holds (the dispatcher and streams run concurrently)."""
    latest: list[Scrape] = []

    async def holds() -> bool:
        latest[:] = [await scrape(client)]
        return bool(check(latest[0]))

    await wait_until(holds, what=what)
    return latest[0]


async def test_streams_changes_and_deliveries_move(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, metrics=True)
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        before = await scrape(client)
        assert before.value(SUBSCRIPTIONS) == 0
        async with (
            SSEStream(live.url, "/obs_note/subscribe") as over_sse,
            WSStream(live.ws_url, "/obs_note/subscribe") as over_ws,
        ):
            opened = await scrape_until(
                client, lambda s: s.value(SUBSCRIPTIONS) == 2, "two open subscriptions"
            )
            assert opened.value(SUBSCRIPTIONS, transport="sse", table="obs_note") == 1
            assert opened.value(SUBSCRIPTIONS, transport="websocket", table="obs_note") == 1
            for n in range(3):
                await client.post("/obs_note", json={"title": f"n{n}"}, headers=who("ann"))
            await client.patch("/obs_note/1", json={"done": True}, headers=who("ann"))
            await wait_until(
                lambda: len(over_sse.messages) == len(over_ws.messages) == 4,
                what="both streams to get 4 messages",
            )
            during = await scrape(client)
        closed = await scrape_until(
            client, lambda s: s.value(SUBSCRIPTIONS) == 0, "the subscriptions to close"
        )

    def moved(name: str, **labels: str) -> float:
        return during.value(name, **labels) - before.value(name, **labels)

    published = "capebase_realtime_changes_published_total"
    assert moved(published, table="obs_note", op="INSERT") == 3
    assert moved(published, table="obs_note", op="UPDATE") == 1
    assert moved("capebase_realtime_deliveries_total", table="obs_note") == 8
    assert moved("capebase_realtime_delivery_latency_seconds_count", table="obs_note") == 8
    assert during.value("capebase_realtime_drops_total") == 0
    assert 0 <= during.value("capebase_realtime_dispatch_lag_seconds") < 60
    assert closed.label_values(SUBSCRIPTIONS, "transport") <= {"sse", "websocket"}


async def test_an_overflowing_subscriber_counts_one_drop(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, metrics=True, realtime=RealtimeConfig(queue_size=2))
    async with app_client(app) as client:
        # Straight through the hub: a subscriber that never reads its queue.
        subscriber = cape.hub.add_subscriber(cape.hub.views["obs_note"], AuthContext(id="slow"), [])
        opened = await scrape(client)
        async with cape.get_session(AuthContext(id="ann")) as session:
            session.add_all(Note(title=f"n{n}") for n in range(5))
            await session.commit()
        await dispatched(cape)
        after = await scrape(client)
        cape.hub.remove_subscriber(subscriber)
        cape.hub.remove_subscriber(subscriber)  # twice, as a transport and shutdown may
        closed = await scrape(client)
    assert opened.value(SUBSCRIPTIONS, transport="other", table="obs_note") == 1
    assert subscriber.overflowed
    assert after.value("capebase_realtime_deliveries_total", table="obs_note") == 2
    assert after.value("capebase_realtime_drops_total", table="obs_note") == 1
    assert after.value("capebase_realtime_changes_published_total", table="obs_note") == 5
    assert closed.value(SUBSCRIPTIONS) == 0


async def test_handler_duration_and_failures(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, metrics=True, realtime=RealtimeConfig(handler_timeout=0.2))
    seen: list[int] = []

    @cape.subscribe(Note)
    async def remember(change: Any) -> None:
        seen.append(change.id)

    @cape.subscribe(Note)
    def explode(change: Any) -> None:
        raise RuntimeError("handler bug")

    @cape.subscribe(Note)
    async def dawdle(change: Any) -> None:
        await asyncio.sleep(5)

    async with app_client(app) as client:
        for n in range(2):
            await client.post("/obs_note", json={"title": f"n{n}"}, headers=who("ann"))
        after = await scrape_until(
            client,
            lambda s: s.value("capebase_realtime_handler_duration_seconds_count") == 6,
            "six handler runs",
        )
    assert len(seen) == 2

    def name(handler: Any) -> str:
        return str(handler.__qualname__)

    duration = "capebase_realtime_handler_duration_seconds_count"
    failures = "capebase_realtime_handler_failures_total"
    assert after.value(duration, table="obs_note", handler=name(remember)) == 2
    assert after.value(failures, table="obs_note", handler=name(remember)) == 0
    assert after.value(failures, table="obs_note", handler=name(explode)) == 2
    assert after.value(failures, table="obs_note", handler=name(dawdle)) == 2  # timed out
