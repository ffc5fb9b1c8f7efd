"""Restarting the local PostgreSQL and Redis servers, for the outage tests and the soak.

Both commands return once the server is back: ``pg_ctlcluster restart`` waits for it, and the
Redis helper polls ``redis-cli ping`` (bounded).
"""

from __future__ import annotations

import os
import subprocess
import time

REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
    "--save", "", "--appendonly", "no",
]


def restart_postgresql() -> None:
    """Restart the local cluster with a fast shutdown: every session is terminated."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )


def restart_redis(down_for: float = 1.0) -> None:
    """Stop Redis, keep it down for ``down_for`` seconds, start it and wait for it."""
    subprocess.run(
        ["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False, capture_output=True,
        timeout=30,
    )
    time.sleep(down_for)
    subprocess.run(REDIS_START, check=True, capture_output=True, timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ping = subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True, timeout=10)
        if ping.stdout.strip() == b"PONG":
            return
        time.sleep(0.1)
    raise RuntimeError("Redis did not come back within 30 s")
