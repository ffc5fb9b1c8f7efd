"""Several uvicorn processes on one database, woken through PostgreSQL or Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

ROOT = Path(__file__).resolve().parents[2]
USER = {"x-user": "writer"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """uvicorn processes serving tests/scaleout/app.py on one database."""

    def __init__(self, db_url: str, broker: str, handled: Path, count: int) -> None:
        self.env = {
            **os.environ,
            "CAPE_DB": db_url,
            "CAPE_BROKER": broker,
            "CAPE_HANDLED": str(handled),
        }
        self.ports = [_free_port() for _ in range(count)]
        self.processes: list[subprocess.Popen[bytes] | None] = [None] * count

    def start(self, index: int) -> None:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.scaleout.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports[index]),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        self.processes[index] = process
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"process {index} exited with {process.returncode}")
            try:
                httpx.get(f"{self.url(index)}/scalenote?limit=1", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"process {index} did not start")

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def stop(self, index: int, sig: int = signal.SIGTERM) -> None:
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes[index] = None

    def stop_all(self) -> None:
        for index in range(len(self.processes)):
            self.stop(index)


@contextmanager
def cluster(db_url: str, broker: str, handled: Path, count: int = 3) -> Iterator[Cluster]:
    group = Cluster(db_url, broker, handled, count)
    try:
        group.start(0)  # the first creates the tables alone
        for index in range(1, count):
            group.start(index)
        yield group
    finally:
        group.stop_all()


class Stream:
    """An SSE reader collecting (token, message) pairs in the background."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.task: asyncio.Task[None] | None = None
        self.open = asyncio.Event()

    async def _read(self, url: str, headers: dict[str, str]) -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(5, read=60)) as client,
            aconnect_sse(client, "GET", f"{url}/scalenote/subscribe", headers=headers) as source,
        ):
            self.open.set()
            async for event in source.aiter_sse():
                if event.event == "message":
                    self.events.append((event.id, json.loads(event.data)))

    @asynccontextmanager
    async def reading(self, url: str, last_event_id: str | None = None) -> AsyncIterator[Stream]:
        headers = dict(USER)
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.task = asyncio.create_task(self._read(url, headers))
        await asyncio.wait_for(self.open.wait(), 10)
        try:
            yield self
        finally:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def ids(self) -> list[int]:
        return [int(message["id"]) for _, message in self.events]  # type: ignore[call-overload]


async def _wait_for(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _post(client: httpx.AsyncClient, url: str, body: str) -> int | None:
    """POST a note; the change id is not in the response, so return the row id (or None)."""
    try:
        response = await client.post(f"{url}/scalenote", json={"body": body}, headers=USER)
    except httpx.HTTPError:
        return None
    return int(response.json()["id"]) if response.status_code == 201 else None


def _handled_counts(path: Path) -> Counter[int]:
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines() if line)


BROKERS = [
    pytest.param("postgresql", "postgresql", id="postgresql-notify"),
    pytest.param("mariadb", "redis", id="mariadb-redis"),
]


@pytest.mark.parametrize(("db_kind", "broker_kind"), BROKERS)
async def test_writes_on_one_process_reach_the_others_once_each(
    db_kind: str, broker_kind: str, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    broker = db_url.replace("+asyncpg", "") if broker_kind == "postgresql" else redis_url
    handled = tmp_path / "handled.log"
    with cluster(db_url, broker, handled) as group:
        first, second, third = Stream(), Stream(), Stream()
        async with first.reading(group.url(0)), second.reading(group.url(1)), third.reading(
            group.url(2)
        ):
            async with httpx.AsyncClient(timeout=10) as client:
                rows = [await _post(client, group.url(0), f"note {n}") for n in range(10)]
                assert all(rows)
                await _wait_for(lambda: len(_handled_counts(handled)) == 10)
                # The end marker: once every process has dispatched it, each has queued its
                # handler runs of the ten notes before it (a process runs them in order), so
                # a second run of any note would be in the log by the time the end's is.
                assert await _post(client, group.url(0), "end")
            streams = (first, second, third)
            await _wait_for(lambda: all(len(stream.events) == 11 for stream in streams))
            end = second.ids()[-1]
            await _wait_for(lambda: end in _handled_counts(handled))
        bodies = [f"note {n}" for n in range(10)] + ["end"]
        assert [m["payload"]["body"] for _, m in second.events] == bodies
        assert first.ids() == second.ids() == third.ids() == sorted(second.ids())
        # Each handler ran exactly once per change, across the three processes.
        assert _handled_counts(handled) == dict.fromkeys(second.ids(), 1)


@pytest.mark.parametrize(("db_kind", "broker_kind"), BROKERS)
async def test_resume_on_another_process_loses_and_repeats_nothing(
    db_kind: str, broker_kind: str, db_url: str, redis_url: str, tmp_path: Path
) -> None:
    broker = db_url.replace("+asyncpg", "") if broker_kind == "postgresql" else redis_url
    with cluster(db_url, broker, tmp_path / "handled.log", count=2) as group:
        async with httpx.AsyncClient(timeout=10) as client:
            first = Stream()
            async with first.reading(group.url(0)):
                for n in range(5):
                    assert await _post(client, group.url(0), f"before {n}")
                await _wait_for(lambda: len(first.events) == 5)
            token = first.events[-1][0]
            for n in range(5):  # written while no stream is open
                assert await _post(client, group.url(0), f"gap {n}")
            resumed = Stream()
            async with resumed.reading(group.url(1), last_event_id=token):
                for n in range(3):
                    assert await _post(client, group.url(1), f"after {n}")
                assert await _post(client, group.url(1), "end")  # nothing can follow it
                await _wait_for(
                    lambda: any(m["payload"]["body"] == "end" for _, m in resumed.events)
                )
        bodies = [m["payload"]["body"] for _, m in resumed.events]
        gap, after = [f"gap {n}" for n in range(5)], [f"after {n}" for n in range(3)]
        assert bodies == [*gap, *after, "end"]
        assert not set(first.ids()) & set(resumed.ids())


def _restart_redis() -> None:
    subprocess.run(
        ["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True
    )
    time.sleep(1.0)
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
        capture_output=True,
    )


def _restart_postgresql() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize(
    ("db_kind", "broker_kind", "restart"),
    [
        pytest.param("postgresql", "postgresql", _restart_postgresql, id="postgresql-restart"),
        pytest.param("mariadb", "redis", _restart_redis, id="redis-restart"),
    ],
)
async def test_a_server_restart_during_writes_loses_no_committed_change(
    db_kind: str,
    broker_kind: str,
    restart,
    db_url: str,
    redis_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Writes go on through the restart (some fail while a database is down); a subscriber
    that resumes afterwards has every change whose write was acknowledged."""
    broker = db_url.replace("+asyncpg", "") if broker_kind == "postgresql" else redis_url
    with cluster(db_url, broker, tmp_path / "handled.log", count=2) as group:
        stream = Stream()
        committed: list[int] = []
        async with httpx.AsyncClient(timeout=10) as client:
            async with stream.reading(group.url(1)):
                for n in range(5):
                    committed.append(await _post(client, group.url(0), f"w{n}") or -1)
                await _wait_for(lambda: len(stream.events) == 5)
            token = stream.events[-1][0]
            restarter = asyncio.create_task(asyncio.to_thread(restart))
            n = 5
            while not restarter.done() or n < 25:
                row = await _post(client, group.url(0), f"w{n}")
                if row is not None:
                    committed.append(row)
                n += 1
                await asyncio.sleep(0.05)
            await restarter
            for extra in range(5):  # after recovery, writes succeed again
                row = None
                for _attempt in range(100):
                    row = await _post(client, group.url(0), f"late{extra}")
                    if row is not None:
                        break
                    await asyncio.sleep(0.1)
                assert row is not None, "the app did not recover after the restart"
                committed.append(row)
            resumed = Stream()
            wanted = {r for r in committed if r > 0} - {
                int(m["payload"]["id"])
                for _, m in stream.events  # type: ignore[call-overload,index]
            }
            async with resumed.reading(group.url(1), last_event_id=token):
                try:
                    await _wait_for(
                        lambda: wanted <= {int(m["payload"]["id"]) for _, m in resumed.events},  # type: ignore[call-overload,index]
                        within=30,
                    )
                except AssertionError:
                    got = {int(m["payload"]["id"]) for _, m in resumed.events}  # type: ignore[call-overload,index]
                    raise AssertionError(
                        f"missing {sorted(wanted - got)} of {sorted(wanted)} (token {token})"
                    ) from None
        rows_seen = [int(m["payload"]["id"]) for _, m in resumed.events]  # type: ignore[call-overload,index]
        assert len(rows_seen) == len(set(rows_seen)), "a change was delivered twice"
