"""The app each soak process serves, configured through environment variables, with a stats
endpoint the soak reads to find leaks.

SOAK_DB: database URL. SOAK_BROKER: broker URL. SOAK_CHANNEL: the broker channel.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

from capebase import LimitsConfig, RealtimeConfig

from ._app import make_app

app, cape = make_app(
    os.environ["SOAK_DB"],
    broker=os.environ.get("SOAK_BROKER", "memory://"),
    # Small queues, so that slow subscribers really overflow; frequent polls, so delivery
    # goes on while the broker is down.
    realtime=RealtimeConfig(
        queue_size=50,
        heartbeat=2.0,
        poll_interval=0.5,
        broker_channel=os.environ.get("SOAK_CHANNEL", "capebase_soak"),
    ),
    limits=LimitsConfig(retry_after=1, pool_timeout=5.0, connect_timeout=3.0),
    engine_options={"pool_size": 10, "max_overflow": 10},
)


def rss_kib() -> int:
    """This process's resident set size, in KiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@app.get("/_soak/stats", include_in_schema=False)
async def stats() -> dict[str, Any]:
    """What the soak compares at start and end: tasks, streams, connections, memory."""
    tasks = Counter(
        getattr(task.get_coro(), "__qualname__", task.get_name()) for task in asyncio.all_tasks()
    )
    pool: Any = cape.engine.pool
    return {
        "pid": os.getpid(),
        "tasks": sum(tasks.values()),
        "task_kinds": dict(tasks),
        "subscribers": cape.hub.subscriber_count,
        "clients": len(cape.hub._per_client),
        "pool_checked_out": pool.checkedout(),
        "pool_connections": pool.checkedin() + pool.checkedout(),
        "rss_kib": rss_kib(),
    }
