"""Broker loss: writes keep succeeding, delivery falls back to the log, and the outage and the
recovery show in the logs and in the metrics."""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from capebase import RealtimeConfig
from capebase.changes.change import ModelChange
from capebase.testing import app_client
from tests.observability._app import Note, make_app, scrape, who
from tests.realtime._live import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A redis-server of this test's own, on a free port, that the test stops and restarts."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            subprocess.run(["sleep", "0.05"], check=True)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_broker_outage_and_recovery_show_in_logs_and_metrics(
    sqlite_url: str, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="capebase.realtime")
    app, cape = make_app(
        sqlite_url,
        metrics=True,
        broker=own_redis.url,
        realtime=RealtimeConfig(poll_interval=0.2),
    )
    delivered: list[tuple[str, str]] = []

    @cape.subscribe(Note)
    async def record(change: ModelChange[Any]) -> None:
        delivered.append((change.event, change.payload.title))

    async with app_client(app) as client:
        before = await scrape(client)
        assert before.value("capebase_broker_connected") == 1
        assert before.value("capebase_broker_outages_total") == 0

        own_redis.stop()
        await wait_until(lambda: not cape.hub.link.connected, what="the outage to be noticed")
        # Writes keep succeeding while the broker is away, and handlers/streams still get the
        # changes from the log.
        response = await client.post("/obs_note", json={"title": "during"}, headers=who("u1"))
        assert response.status_code == 201, response.text
        during = await scrape(client)
        assert during.value("capebase_broker_connected") == 0
        assert during.value("capebase_broker_outages_total") == 1
        await wait_until(
            lambda: ("INSERT", "during") in delivered, what="the change to reach the handler"
        )

        own_redis.start()
        await wait_until(lambda: cape.hub.link.connected, within=40, what="the reconnect")
        after = await scrape(client)
        assert after.value("capebase_broker_connected") == 1
        assert after.value("capebase_broker_outages_total") == 1
        response = await client.post("/obs_note", json={"title": "after"}, headers=who("u1"))
        assert response.status_code == 201, response.text
        await wait_until(lambda: ("INSERT", "after") in delivered, what="the change after it")
    assert delivered == [("INSERT", "during"), ("INSERT", "after")]
    messages = [r.getMessage() for r in caplog.records]
    assert any("broker unreachable" in m for m in messages)
    assert any("broker connection restored" in m for m in messages)
