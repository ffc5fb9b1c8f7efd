"""Realtime fan-out: commit-to-delivery latency, deliveries per second and memory per idle
subscriber, with 100, 1,000 and 10,000 concurrent streams on one uvicorn process.

Two policies: ``owner`` (each subscriber reads only its own rows; the writer changes one
subscribed user's rows, so every other stream is a non-matching one) and ``public`` (everyone
reads everything; each change goes to every stream). The writer stamps each row's task with
``time.time()`` just before its POST; clients (separate processes on the load core) record the
receive time minus the stamp. Streams are added in steps (100, then 900 more, ...) on the same
server, and memory per idle subscriber is the RSS growth of a step divided by its streams.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .procs import Server, free_port, uvicorn_command
from .stats import percentile
from .subscribers import ClientPool, Sample

APP = "bench.apps.capebase_app:app"
WRITER = "writer"
SETTLE_SECONDS = 2.0
IDLE_WINDOW = 2.0
DELIVERY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Plan:
    """How much to measure: stream counts, changes per step, client processes."""

    levels: tuple[int, ...] = (100, 1_000, 10_000)
    websocket_level: int = 1_000
    owner_changes: int = 200
    owner_pace: float = 0.01
    public_spaced: int = 5
    public_spaced_deliveries: int = 20_000  # fewer spaced changes at 10,000 streams
    public_burst_deliveries: int = 20_000
    processes: int = 4


QUICK = Plan(levels=(100, 1_000), owner_changes=50, public_spaced=3,
             public_spaced_deliveries=3_000, public_burst_deliveries=10_000, processes=2)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class Writer:
    """Creates stamped rows over one keep-alive connection."""

    def __init__(self, url: str, user: str) -> None:
        self.client = httpx.Client(base_url=url, headers={"X-User-Id": user}, timeout=30)
        self.stamps: dict[int, float] = {}
        self.latencies: list[float] = []
        self.seq = 0

    def write(self) -> int:
        self.seq += 1
        stamp = time.time()
        response = self.client.post("/todo", json={"task": f"rt {self.seq} {stamp:.6f}"})
        self.latencies.append(time.time() - stamp)
        response.raise_for_status()
        self.stamps[self.seq] = stamp
        return self.seq

    def close(self) -> None:
        self.client.close()


class Session:
    """One server with a policy and a transport, and the clients subscribed to it."""

    def __init__(self, policy: str, websocket: bool, workdir: Path, out: Path,
                 processes: int) -> None:
        port = free_port()
        transport = "ws" if websocket else "sse"
        self.server = Server(
            f"realtime-{policy}-{transport}", uvicorn_command(APP, port, backlog=4096), port,
            out / f"server-realtime-{policy}-{transport}.log",
            env={"BENCH_DB_URL": f"sqlite+aiosqlite:///{workdir}/rt-{policy}-{transport}.db",
                 "BENCH_VARIANT": f"rt-{policy}"},
        )
        self.websocket = websocket
        self.processes = processes
        self.clients: ClientPool | None = None
        self.subscribed = 0

    def __enter__(self) -> Session:
        self.server.start()
        self.clients = ClientPool(self.server.port, self.processes)
        warm = Writer(self.server.url, WRITER)  # first requests import and compile lazily
        for _ in range(5):
            warm.write()
        warm.close()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.clients is not None:
            self.clients.close()
        self.server.stop()

    def grow(self, total: int) -> dict[str, Any]:
        """Subscribe users up to ``total`` streams; the memory and CPU they cost idle."""
        assert self.clients is not None
        users = [f"s{i}" for i in range(self.subscribed, total)]
        before = self.server.rss_kib()
        started = time.monotonic()
        opened, failures = self.clients.connect(users, websocket=self.websocket)
        connect_seconds = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        after = self.server.rss_kib()
        cpu_before = self.server.cpu_seconds()
        time.sleep(IDLE_WINDOW)
        idle_cpu = (self.server.cpu_seconds() - cpu_before) / IDLE_WINDOW
        self.subscribed += opened
        return {
            "subscribers": self.subscribed,
            "added": opened,
            "failed": len(users) - opened,
            "failures": failures,
            "connect_seconds": round(connect_seconds, 2),
            "rss_kib": after,
            "rss_per_subscriber_bytes": round((after - before) * 1024 / opened) if opened else None,
            "idle_cpu_percent": round(idle_cpu * 100, 1),
        }

    def owner_changes(self, plan: Plan, idle_cpu: float) -> dict[str, Any]:
        """Changes to one subscribed user's rows: only that user's stream matches.

        ``idle_cpu`` (a fraction of a core) is what the open streams cost with no changes
        (heartbeats); it is subtracted so the CPU per change compares across stream counts.
        """
        assert self.clients is not None
        self.clients.take()
        writer = Writer(self.server.url, "s0")
        cpu_before, started = self.server.cpu_seconds(), time.monotonic()
        for _ in range(plan.owner_changes):
            writer.write()
            time.sleep(plan.owner_pace)
        self.clients.wait_for(plan.owner_changes, DELIVERY_TIMEOUT)
        cpu = self.server.cpu_seconds() - cpu_before
        elapsed = time.monotonic() - started
        samples = self.clients.take()
        writer.close()
        latencies = [latency for seq, latency in samples if seq in writer.stamps]
        return {
            "changes": plan.owner_changes,
            "delivered": len(latencies),
            "p50_ms": _ms(percentile(latencies, 50)),
            "p99_ms": _ms(percentile(latencies, 99)),
            "max_ms": _ms(max(latencies, default=None)),
            "server_cpu_ms_per_change": round(
                max(0.0, cpu - idle_cpu * elapsed) * 1000 / plan.owner_changes, 3),
            "write_p50_ms": _ms(percentile(writer.latencies, 50)),
            "seconds": round(elapsed, 2),
        }

    def public_changes(self, plan: Plan) -> dict[str, Any]:
        """Changes everyone may read: spaced (time to reach every stream), then a burst."""
        assert self.clients is not None
        n = self.subscribed
        self.clients.take()
        writer = Writer(self.server.url, WRITER)
        spaced_changes = max(2, min(plan.public_spaced,
                                    plan.public_spaced_deliveries // max(n, 1)))
        for i in range(spaced_changes):
            writer.write()
            self.clients.wait_for((i + 1) * n, DELIVERY_TIMEOUT)
        spaced = _fan_out(self.clients.take(), writer.stamps, n)
        writer.stamps.clear()
        burst_changes = max(1, min(200, plan.public_burst_deliveries // max(n, 1)))
        cpu_before = self.server.cpu_seconds()
        for _ in range(burst_changes):
            writer.write()
        self.clients.wait_for(burst_changes * n, DELIVERY_TIMEOUT * 4)
        cpu = self.server.cpu_seconds() - cpu_before
        burst = _fan_out(self.clients.take(), writer.stamps, n)
        burst["server_cpu_us_per_delivery"] = (
            round(cpu * 1e6 / burst["deliveries"]) if burst["deliveries"] else None)
        writer.close()
        return {"spaced": spaced, "burst": burst}


def _fan_out(samples: list[Sample], stamps: dict[int, float], streams: int) -> dict[str, Any]:
    """Latency over all deliveries, time for each change to reach every stream, throughput."""
    latencies = [latency for seq, latency in samples if seq in stamps]
    reach: dict[int, float] = {}
    count: dict[int, int] = {}
    for seq, latency in samples:
        if seq in stamps:
            reach[seq] = max(reach.get(seq, 0.0), latency)
            count[seq] = count.get(seq, 0) + 1
    complete = [reach[seq] for seq in stamps if count.get(seq, 0) >= streams]
    expected = len(stamps) * streams
    first = min(stamps.values(), default=0.0)
    last = max((stamps[seq] + latency for seq, latency in samples if seq in stamps),
               default=first)
    return {
        "changes": len(stamps),
        "deliveries": len(latencies),
        "missing": expected - len(latencies),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "reach_all_p50_ms": _ms(percentile(complete, 50)),
        "reach_all_max_ms": _ms(max(complete, default=None)),
        "deliveries_per_second": round(len(latencies) / (last - first)) if last > first else None,
    }


def run(plan: Plan, *, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Owner-filtered and public fan-out over SSE at each level, then both over WebSocket."""
    results: dict[str, Any] = {"plan": plan.__dict__}
    with tempfile.TemporaryDirectory(prefix="capebase-bench-rt-") as tmp:
        workdir = Path(tmp)
        for policy in ("owner", "public"):
            for websocket, levels in ((False, plan.levels), (True, (plan.websocket_level,))):
                name = f"{policy}_{'ws' if websocket else 'sse'}"
                steps: list[dict[str, Any]] = []
                results[name] = steps
                try:
                    with Session(policy, websocket, workdir, out, plan.processes) as session:
                        for level in levels:
                            step = session.grow(level)
                            log(f"realtime {name}: {step['subscribers']} streams "
                                f"({step['failed']} failed) in {step['connect_seconds']} s, "
                                f"{step['rss_per_subscriber_bytes']} B each")
                            if policy == "owner":
                                step["changes"] = session.owner_changes(
                                    plan, step["idle_cpu_percent"] / 100)
                            else:
                                step["changes"] = session.public_changes(plan)
                            log(f"realtime {name}: {_brief(step['changes'])}")
                            steps.append(step)
                except Exception as exc:  # one failing transport must not lose the others
                    log(f"realtime {name}: failed: {type(exc).__name__}: {exc}")
                    steps.append({"error": f"{type(exc).__name__}: {exc}"})
    return results


def _brief(changes: dict[str, Any]) -> str:
    if "spaced" in changes:
        s, b = changes["spaced"], changes["burst"]
        return (f"spaced p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms, all reached in "
                f"{s['reach_all_max_ms']} ms; burst {b['deliveries_per_second']} deliveries/s, "
                f"{b['missing']} missing")
    return (f"p50 {changes['p50_ms']} ms p99 {changes['p99_ms']} ms, "
            f"{changes['delivered']}/{changes['changes']} delivered, "
            f"{changes['server_cpu_ms_per_change']} ms CPU per change")
