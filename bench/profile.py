"""Where capebase's generated routes spend their time: py-spy samples of the server while wrk
drives get-by-id and create, summarised by package and by capebase's own frames.

Only samples of the thread holding the GIL are taken (``--gil``): that is the Python CPU time
of the one core the server has, and it leaves out driver threads waiting for work.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .crud import CONTENDERS, Running, database, python_endpoints
from .load import LoadError, lua_script, run_wrk
from .procs import LOAD_CORE, Server, free_port, uvicorn_command

SCENARIOS = ("get", "create")
NATIVE = "no Python frame (uvloop, httptools, drivers in C)"
RATE = 100
PACKAGES = ("capebase", "sqlalchemy", "pydantic", "pydantic_core", "fastapi", "starlette",
            "uvicorn", "asyncpg", "aiosqlite", "sqlite3", "asyncio", "uvloop", "anyio", "json",
            "sqlmodel", "httptools", "typing", "inspect", "dataclasses", "contextlib")


def py_spy() -> str | None:
    """The py-spy executable next to the venv's python, or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


MARKERS: tuple[tuple[str, str, bool], ...] = (
    ("SQLAlchemy statement compilation (cache miss)", "SQLCompiler.__init__ (", False),
    ("SQLAlchemy ORM flush", "Session.flush (", False),
    ("SQLAlchemy ORM row loading", "loading.py", False),
    ("SQLAlchemy Core execute (async)", "AsyncConnection.execute (", False),
    ("FastAPI dependency solving", "solve_dependencies (", False),
    ("capebase policy", "capebase/policy/", False),
    ("capebase change capture", "capebase/changes/capture.py", False),
    ("capebase realtime hub (dispatch)", "capebase/realtime/hub.py", False),
    ("capebase middleware, own code", "capebase/observability/", True),
)
"""Named costs: the share of samples with a frame containing the text on the stack (or, when
the flag is set, as the innermost frame: middleware wraps everything, so only its own time)."""


def package_of(frame: str) -> str:
    """``function (path/to/file.py:12)`` → the top-level package or module of its file."""
    start = frame.rfind("(")
    path = frame[start + 1:].rsplit(":", 1)[0] if start >= 0 else frame
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if "capebase" in parts:
        return "capebase"
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1:]
    head = parts[0] if parts else "?"
    head = head.removesuffix(".py")
    return head if head in PACKAGES else "other"


def function_of(frame: str) -> str:
    """The frame without its line number: ``get_row (capebase/crud/router.py)``."""
    name, _, rest = frame.partition(" (")
    path = rest.rsplit(":", 1)[0]
    if "capebase/" in path:
        path = "capebase/" + path.split("capebase/", 1)[1]
    return f"{name} ({path})"


def summarise(raw: str, top: int = 12) -> dict[str, Any]:
    """Shares of samples: by package (self time), capebase frames inclusive and self, and what
    the deepest capebase frame of each stack was calling."""
    total = 0
    by_package: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    calls: Counter[tuple[str, str]] = Counter()
    marked: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        if not stack.strip():
            by_package[NATIVE] += count
            continue
        frames = stack.split(";")
        by_package[package_of(frames[-1])] += count
        for label, text, leaf_only in MARKERS:
            if text in (frames[-1] if leaf_only else stack):
                marked[label] += count
        ours = [i for i, f in enumerate(frames) if package_of(f) == "capebase"]
        for name in {function_of(frames[i]) for i in ours}:
            inclusive[name] += count
        if ours:
            deepest = ours[-1]
            if deepest == len(frames) - 1:
                own[function_of(frames[deepest])] += count
                calls[(function_of(frames[deepest]), "itself")] += count
            else:
                calls[(function_of(frames[deepest]), package_of(frames[deepest + 1]))] += count

    def share(counter: Counter[Any]) -> list[list[Any]]:
        return [[key, round(100 * n / total, 1)] for key, n in counter.most_common(top)]

    return {
        "samples": total,
        "by_package": share(by_package),
        "capebase_inclusive": share(inclusive),
        "capebase_self": share(own),
        "capebase_calls": [[f"{frame} → {callee}", pct]
                           for (frame, callee), pct in share(calls)],
        "markers": [[label, round(100 * marked[label] / total, 1) if total else 0.0]
                    for label, _, _ in MARKERS],
    }


def _record(spy: str, pid: int, seconds: float, fmt: str, output: Path) -> None:
    subprocess.run(["taskset", "-c", LOAD_CORE, spy, "record", "--pid", str(pid), "-d",
                    str(round(seconds)), "-r", str(RATE), "--gil", "-f", fmt, "-o",
                    str(output)], check=True, capture_output=True, timeout=seconds + 60)


def run(*, kinds: tuple[str, ...], seconds: float, out: Path,
        log: Callable[[str], None]) -> dict[str, Any]:
    """Profile capebase's get and create on each database kind."""
    spy = py_spy()
    if spy is None:
        return {"error": "py-spy is not installed: pip install -e '.[bench]'"}
    capebase = CONTENDERS[0]
    results: dict[str, Any] = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix=f"capebase-bench-prof-{kind}-") as tmp, \
                database(kind, Path(tmp)) as db:
            port = free_port()
            server = Server(f"profile-{kind}", uvicorn_command(capebase.app or "", port), port,
                            out / f"server-profile-{kind}.log", env={"BENCH_DB_URL": db.app_url})
            try:
                server.start()
                running = Running(capebase, server.url, python_endpoints(capebase),
                                  db.remove_created, server.stop, server.cpu_seconds,
                                  server.log)
                for scenario in SCENARIOS:
                    script = Path(tmp) / f"{scenario}.lua"
                    script.write_text(lua_script(running.endpoints, scenario))
                    results[f"{kind}-{scenario}"] = _profile(
                        spy, server, script, seconds, out / f"profile-{kind}-{scenario}")
                    db.remove_created()
                    log(f"profile {kind} {scenario}: "
                        f"{results[f'{kind}-{scenario}'].get('samples', 0)} samples")
            except Exception as exc:  # a failed profile must not lose the other results
                results[kind] = {"error": f"{type(exc).__name__}: {exc}"}
                log(f"profile {kind}: failed: {exc}")
            finally:
                server.stop()
    return results


def _profile(spy: str, server: Server, script: Path, seconds: float,
             stem: Path) -> dict[str, Any]:
    failures: list[str] = []

    def load(duration: float) -> None:
        try:
            run_wrk(server.url, script, seconds=duration, connections=16)
        except LoadError as exc:
            failures.append(str(exc))

    load(2)  # warm-up
    summary: dict[str, Any] = {}
    for fmt, suffix in (("flamegraph", ".svg"), ("raw", ".txt")):
        thread = threading.Thread(target=load, args=(seconds + 2,))
        thread.start()
        time.sleep(1)
        _record(spy, server.pid, seconds, fmt, stem.with_suffix(suffix))
        thread.join()
    summary = summarise(stem.with_suffix(".txt").read_text())
    summary["svg"] = stem.with_suffix(".svg").name
    if failures:
        summary["load_errors"] = failures
    return summary
