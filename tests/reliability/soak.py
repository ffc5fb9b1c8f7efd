"""``make soak``: random users hammer two app processes for a long while, through restarts.

    python -m tests.reliability.soak [--operations 10000] [--users 20] [--subscribers 40]

Two uvicorn processes serve tests/reliability/soak_app.py on one fresh PostgreSQL database,
woken through Redis. Many users create, change, delete, list and read rows over REST against
either process; subscribers of both transports follow the changes, some of them slow (they
overflow and resume), some vanishing and coming back, often on the other process. A third of
the way in PostgreSQL restarts; two thirds in, Redis does.

At the end every subscriber resumes and catches up, then the soak compares what each one got
with what the change log says its rules allow, and checks both processes for leftovers. It
prints operations done, answers by status, leaks (tasks, subscribers, DB connections), events
lost, duplicated or denied, and memory at start and end; it exits 1 on any leak, any lost,
duplicated or denied event, or any 500.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres) and Redis on 6379, like ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from capebase.db.engine import create_engine

from ._app import PATH, context_of, may_read, who
from ._expect import expected_ids, logged_changes, problems
from ._servers import restart_postgresql, restart_redis
from ._streams import StreamClient, wait_until

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "test-artifacts"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ORGS = ["red", "green", "blue", "gold"]
CATCH_UP = 120.0
SETTLE = 30.0


SEND_BUFFER = 32 * 1024
"""The servers' kernel send buffer per connection. Loopback's huge segments would otherwise
let the kernel hold megabytes for a slow reader, and it would never fall behind."""


def listening_socket() -> socket.socket:
    """A socket for uvicorn (``--fd``); accepted connections inherit its send buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass
class Server:
    """One uvicorn process serving the soak app."""

    env: dict[str, str]
    sock: socket.socket = field(default_factory=listening_socket)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self, log: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.reliability.soak_app:app",
             "--fd", str(self.sock.fileno()), "--log-level", "critical", "--no-access-log"],
            cwd=ROOT,
            env=self.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            pass_fds=(self.sock.fileno(),),
        )

    async def ready(self) -> None:
        async def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"soak server exited with {self.process.returncode}")
            try:
                await self.stats()
            except httpx.HTTPError:
                return False
            return True

        await wait_until(answers, within=30, what=f"the server at {self.url}")

    async def stats(self) -> dict[str, Any]:
        # A fresh connection each time, so the soak's own keep-alive connections never count.
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            response = await client.get("/_soak/stats")
            response.raise_for_status()
            return dict(response.json())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.sock.close()


@dataclass
class Subscription:
    """A soak subscriber: who it is, its filter, and whether it is meant to be down."""

    headers: dict[str, str]
    client: StreamClient
    org: str | None
    away: bool = False

    def passes(self, row: dict[str, Any]) -> bool:
        return self.org is None or row.get("org") == self.org


@dataclass
class Soak:
    servers: list[Server]
    users: list[dict[str, str]]
    subscriptions: list[Subscription]
    rng: random.Random
    statuses: Counter[str] = field(default_factory=Counter)
    operations: int = 0
    denied_rows: list[str] = field(default_factory=list)
    known_ids: list[int] = field(default_factory=list)
    reconnections: int = 0

    def server(self) -> Server:
        return self.rng.choice(self.servers)

    async def operate(self, clients: dict[str, httpx.AsyncClient]) -> None:
        """One random operation by one random user."""
        self.operations += 1
        headers = self.rng.choice(self.users)
        kind = self.rng.choices(
            ["create", "patch", "delete", "list", "get", "churn"], [30, 20, 8, 20, 12, 10]
        )[0]
        if kind == "churn":
            await self.churn()
            self.statuses["stream churn"] += 1
            return
        client = clients[self.server().url]
        pk = self.rng.choice(self.known_ids) if self.known_ids else 1
        body: dict[str, Any] | None = None
        params: dict[str, Any] = {}
        if kind == "create":
            method, url = "POST", PATH
            body = {"org": self.rng.choice(ORGS), "level": self.rng.randint(0, 9),
                    "body": secrets.token_hex(8)}
        elif kind == "patch":
            method, url = "PATCH", f"{PATH}/{pk}"
            body = {"body": secrets.token_hex(8)}
            if self.rng.random() < 0.3:
                body["org"] = self.rng.choice(ORGS)
        elif kind == "delete":
            method, url = "DELETE", f"{PATH}/{pk}"
        elif kind == "list":
            method, url = "GET", PATH
            params = {"limit": 50, "order_by": "-id"}
            if self.rng.random() < 0.5:
                params["org"] = self.rng.choice(ORGS)
        else:
            method, url = "GET", f"{PATH}/{pk}"
        try:
            response = await client.request(method, url, json=body, params=params,
                                            headers=headers)
        except httpx.HTTPError as error:
            self.statuses[f"{method} {type(error).__name__}"] += 1
            return
        self.statuses[f"{method} {response.status_code}"] += 1
        if response.status_code == 201:
            self.known_ids.append(int(response.json()["id"]))
        if response.status_code in (200, 201) and method != "DELETE":
            ctx = context_of(headers)
            rows = response.json()
            for row in rows if isinstance(rows, list) else [rows]:
                if not may_read(ctx, row):
                    self.denied_rows.append(f"{headers} got {row}")

    async def churn(self) -> None:
        """A subscriber vanishes mid-stream, or comes back (maybe on the other process).
        Slow subscribers stay, so that they fall behind far enough to be dropped."""
        subscription = self.rng.choice([s for s in self.subscriptions if not s.client.delay])
        if subscription.client.is_open:
            subscription.away = True
            await subscription.client.disconnect()
        else:
            subscription.away = False
            subscription.client.base_url = self.server().url
            await subscription.client.connect()
            self.reconnections += 1

    async def supervise(self) -> None:
        """Streams the server ended (overflow, shutdown) reconnect, as EventSource does."""
        while True:
            for subscription in self.subscriptions:
                if not subscription.away and not subscription.client.is_open:
                    subscription.client.base_url = self.server().url
                    with contextlib.suppress(AssertionError):
                        await subscription.client.connect()
                    self.reconnections += 1
            await asyncio.sleep(0.2)


def make_users(count: int, rng: random.Random) -> list[dict[str, str]]:
    users = [who(f"user{n}", orgs=",".join(rng.sample(ORGS, rng.randint(0, 2))) or None)
             for n in range(count)]
    return [*users, who("root", role="admin"), {}]  # an admin, and anonymous callers


def make_subscriptions(
    count: int, users: list[dict[str, str]], servers: list[Server], rng: random.Random
) -> list[Subscription]:
    subscriptions = []
    admin = who("root", role="admin")
    for n in range(count):
        slow = n % 4 == 3
        # The slow ones see everything, so they really fall behind.
        headers = admin if slow else users[n % len(users)]
        org = rng.choice(ORGS) if rng.random() < 0.3 and not slow else None
        client = StreamClient(
            servers[n % len(servers)].url, f"{PATH}/subscribe", "sse" if n % 2 else "ws",
            headers, {"org": org} if org else {},
            # A quarter of them read slowly, through a small receive buffer: they fall behind,
            # overflow, and resume.
            delay=1.0 if slow else 0.0,
            receive_buffer=4096 if slow else None,
        )
        subscriptions.append(Subscription(headers, client, org))
    return subscriptions


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    name = f"cb_soak_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(**PG, database="postgres", timeout=10)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(**PG, database="postgres", timeout=10)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def database_connections(name: str) -> int:
    admin = await asyncpg.connect(**PG, database="postgres", timeout=10)
    try:
        count = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
        )
    finally:
        await admin.close()
    return int(count)


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    started = time.monotonic()
    async with database() as name:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        env = {**os.environ, "SOAK_DB": url, "SOAK_BROKER": "redis://127.0.0.1:6379/0",
               "SOAK_CHANNEL": f"soak_{secrets.token_hex(4)}"}
        servers = [Server(env), Server(env)]
        LOGS.mkdir(exist_ok=True)
        for index, server in enumerate(servers):  # the first creates the tables alone
            server.start(LOGS / f"soak-process-{index}.log")
            await server.ready()
        print(f"soak: database {name}; server logs in {LOGS.relative_to(ROOT)}/", flush=True)
        try:
            return await soak(args, rng, servers, name, url, started)
        finally:
            for server in servers:
                server.stop()


async def soak(
    args: argparse.Namespace,
    rng: random.Random,
    servers: list[Server],
    name: str,
    url: str,
    started: float,
) -> int:
    for server in servers:  # once-per-process tasks (the hub's server-exit watcher) start
        for transport in ("sse", "ws"):
            warm_up = StreamClient(server.url, f"{PATH}/subscribe", transport)  # type: ignore[arg-type]
            await warm_up.connect()
            await warm_up.disconnect()
    await asyncio.sleep(1.0)
    before = [await server.stats() for server in servers]
    users = make_users(args.users, rng)
    state = Soak(servers, users, make_subscriptions(args.subscribers, users, servers, rng), rng)
    for subscription in state.subscriptions:
        await subscription.client.connect()
    limits = httpx.Limits(max_connections=args.concurrency)
    clients = {s.url: httpx.AsyncClient(base_url=s.url, timeout=httpx.Timeout(30), limits=limits)
               for s in servers}
    supervisor = asyncio.create_task(state.supervise())
    outages: list[tuple[str, float]] = []
    restarts = {args.operations // 3: ("PostgreSQL", restart_postgresql),
                2 * args.operations // 3: ("Redis", restart_redis)}
    pending_restart: asyncio.Task[None] | None = None
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=args.concurrency)

    async def worker() -> None:
        while await queue.get() >= 0:  # -1: no more work
            await state.operate(clients)

    workers = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
    for number in range(args.operations):
        if number in restarts:
            what, restart = restarts[number]
            print(f"  op {number}: restarting {what}", flush=True)
            began = time.monotonic()
            pending_restart = asyncio.create_task(asyncio.to_thread(restart))
            pending_restart.add_done_callback(
                lambda _t, what=what, began=began: outages.append((what, time.monotonic() - began))
            )
        await queue.put(number)
        if number and number % 1000 == 0:
            print(f"  {number} operations, {sum(v for k, v in state.statuses.items() if ' 5' in k)}"
                  " 5xx so far", flush=True)
    for _ in workers:
        await queue.put(-1)
    await asyncio.gather(*workers)
    if pending_restart is not None:
        await pending_restart
    elapsed_ops = time.monotonic() - started

    # Everyone comes back, reads fast, and catches up with the log.
    supervisor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await supervisor
    engine = create_engine(url)
    log = await logged_changes(engine, "rel_memo")
    await engine.dispose()
    lost = duplicated = denied = 0
    overflows = unavailable = resets = 0
    for subscription in state.subscriptions:
        client = subscription.client
        ctx = context_of(subscription.headers)
        wanted = expected_ids(log, ctx, may_read, after=0, passes=subscription.passes)
        client.delay = 0.0

        async def caught_up(client: StreamClient = client, wanted: list[int] = wanted) -> bool:
            if not client.is_open:
                client.base_url = rng.choice(servers).url
                await client.connect()
            return set(wanted) <= set(client.ids)

        with contextlib.suppress(AssertionError):
            await wait_until(caught_up, within=CATCH_UP, what="a subscriber to catch up")
        await client.disconnect()
        got = client.ids
        lost += len(set(wanted) - set(got))
        duplicated += len(got) - len(set(got))
        denied += len(problems(client.messages, log, ctx, may_read, passes=subscription.passes))
        overflows += sum(c["event"] == "overflow" for c in client.controls)
        unavailable += sum(c["event"] == "unavailable" for c in client.controls)
        resets += sum(c["event"] == "reset" for c in client.controls)
        for control in client.controls:
            if control["event"] == "reset":
                print(f"  reset: {control}", flush=True)
    for client in clients.values():
        await client.aclose()

    # Leftovers: with every client gone, each process is back to where it started.
    leaks: list[str] = []

    async def settled() -> bool:
        now = [await server.stats() for server in servers]
        return all(s["subscribers"] == 0 and s["pool_checked_out"] == 0 for s in now)

    with contextlib.suppress(AssertionError):
        await wait_until(settled, within=SETTLE, what="the servers to settle")
    await asyncio.sleep(1.0)  # closed connections' tasks finish
    after = [await server.stats() for server in servers]
    for index, (start, end) in enumerate(zip(before, after, strict=True)):
        if end["subscribers"]:
            leaks.append(f"process {index}: {end['subscribers']} subscribers left")
        if end["clients"]:
            leaks.append(f"process {index}: {end['clients']} clients still counted")
        if end["pool_checked_out"]:
            leaks.append(f"process {index}: {end['pool_checked_out']} DB connections checked out")
        if end["tasks"] > start["tasks"]:
            extra = Counter(end["task_kinds"]) - Counter(start["task_kinds"])
            leaks.append(f"process {index}: {end['tasks'] - start['tasks']} more tasks: "
                         f"{dict(extra)}")
    connections = await database_connections(name)
    pool_size = sum(s["pool_connections"] for s in after)
    # Each process: its pool, plus the LISTEN-less Redis broker needs none.
    if connections > pool_size + len(servers):
        leaks.append(f"{connections} database connections for {pool_size} pooled")
    server_errors = sum(v for k, v in state.statuses.items() if k.endswith(" 500"))

    slow = sum(bool(s.client.receive_buffer) for s in state.subscriptions)
    print()
    print(f"soak: {state.operations} operations in {elapsed_ops:.0f} s by {len(users)} callers, "
          f"{len(state.subscriptions)} subscribers ({slow} slow; {state.reconnections} "
          "reconnections), "
          f"2 processes on PostgreSQL with Redis")
    print(f"outages: {', '.join(f'{what} restart took {took:.1f} s' for what, took in outages)}")
    print("answers by status:")
    for key, count in sorted(state.statuses.items()):
        print(f"  {key:<28} {count}")
    print(f"changes in the log: {len(log)}; stream messages checked: "
          f"{sum(len(s.client.messages) for s in state.subscriptions)}; overflows "
          f"{overflows}, unavailable {unavailable}, resets {resets}")
    print(f"events lost: {lost}; duplicated: {duplicated}; denied by the policy: {denied}; "
          f"denied rows in REST answers: {len(state.denied_rows)}")
    print(f"server errors (500): {server_errors}")
    print(f"leaks: {leaks or 'none'} (DB connections open at the end: {connections})")
    for index, (start, end) in enumerate(zip(before, after, strict=True)):
        print(f"process {index}: RSS {start['rss_kib'] / 1024:.1f} MiB at start, "
              f"{end['rss_kib'] / 1024:.1f} MiB at end; tasks {start['tasks']} -> {end['tasks']}")
    failed = bool(leaks or lost or duplicated or denied or state.denied_rows or server_errors
                  or resets)
    print("soak: FAILED" if failed else "soak: passed")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--operations", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--subscribers", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
