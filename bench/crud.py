"""CRUD throughput and latency, and the cost of capebase's own features, on SQLite and PostgreSQL.

Every server of one database runs at once, each pinned to the server core; wrk runs on the other
core. Rounds interleave the contenders (A B C D E, A B C D E, ...) within each scenario, rows a
create run added are removed before the next run, and each figure is the median over rounds.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from .load import (
    ALL_SCENARIOS,
    EXPAND_SCENARIO,
    SCENARIOS,
    Endpoints,
    LoadError,
    LoadResult,
    lua_script,
    run_wrk,
)
from .pocketbase import UPDATE_BODY, PocketBase
from .procs import Server, free_port, uvicorn_command
from .seed import (
    ROWS,
    USERS,
    Database,
    drop_postgres_database,
    owner_of,
    postgres_database,
    sqlite_database,
    user_name,
)
from .stats import median

MAX_ERROR_RATE = 0.01
HEADER_USERS = tuple(user_name(i) for i in range(USERS))


@dataclass(frozen=True)
class Contender:
    """One server under test."""

    key: str
    label: str
    app: str | None = None  # uvicorn "module:app"; None for PocketBase
    variant: str = "default"
    scenarios: tuple[str, ...] = SCENARIOS
    databases: tuple[str, ...] = ("sqlite", "postgresql")
    list_query: str = "?user_id={user}&offset=0&limit=20"
    owner_writes: bool = True  # updates by someone else than the owner are refused
    expand_query: str | None = None  # the list with related rows (list-expand scenario)


EXPAND_QUERY = "?user_id={user}&offset=0&limit=20&expand=note"
"""capebase's list 20 with each row's notes (3 each in the seed): two statements a page."""


CONTENDERS = (
    Contender("capebase", "capebase generated routes", "bench.apps.capebase_app:app",
              scenarios=ALL_SCENARIOS, expand_query=EXPAND_QUERY),
    Contender("idiomatic", "FastAPI + SQLModel, hand-written", "bench.apps.idiomatic:app"),
    Contender("fastcrud", "FastCRUD crud_router", "bench.apps.fastcrud_app:app",
              list_query="?user_id={user}&offset=0&limit=20&sort=id"),
    Contender("pocketbase", "PocketBase (SQLite)", databases=("sqlite",)),
    Contender("raw", "Starlette + driver (ceiling)", "bench.apps.raw:app"),
    Contender("capebase-open", 'capebase, one role="*" rule', "bench.apps.capebase_app:app",
              variant="open", owner_writes=False),
    Contender("capebase-nocapture", "capebase, capture=False", "bench.apps.capebase_app:app",
              variant="nocapture", scenarios=("create", "update")),
)
CONTENDER_KEYS = tuple(c.key for c in CONTENDERS)


@dataclass
class Cell:
    """One contender x scenario on one database: its rounds and why it was skipped, if so."""

    rounds: list[LoadResult] = field(default_factory=list)
    error: str | None = None
    server_error: str | None = None  # the most frequent exception in the server's log

    def summary(self) -> dict[str, Any]:
        good = [r for r in self.rounds if r.error_rate <= MAX_ERROR_RATE]
        out: dict[str, Any] = {
            "rounds": [asdict(r) for r in self.rounds],
            "error": self.error,
            "rps": median([r.rps for r in good]),
            "p50_ms": median([r.p50_ms for r in good]),
            "p99_ms": median([r.p99_ms for r in good]),
            "cpu_us": median([r.cpu_us_per_request for r in good]),
            "errors": sum(r.errors for r in self.rounds),
            "server_error": self.server_error,
        }
        if self.rounds and not good and self.error is None:
            worst = max(self.rounds, key=lambda r: r.error_rate)
            out["error"] = f"{worst.errors} failures in {worst.requests} requests"
        return out


@dataclass
class Running:
    """A started contender: how to reach it and how to undo what its create runs add."""

    contender: Contender
    url: str
    endpoints: Endpoints
    remove_created: Callable[[], int]
    stop: Callable[[], None]
    cpu_seconds: Callable[[], float]
    log: Path


def python_endpoints(contender: Contender) -> Endpoints:
    return Endpoints(
        item="/todo/{key}",
        collection="/todo",
        list_query=contender.list_query,
        auth_header="X-User-Id",
        create_body='{"task":"bench task","is_complete":false}',
        update_body=UPDATE_BODY,
        credentials=HEADER_USERS,
        user_ids=HEADER_USERS,
        expand_query=contender.expand_query,
    )


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[Database]:
    db = sqlite_database(workdir / "bench.db") if kind == "sqlite" else postgres_database()
    try:
        db.seed()
        yield db
    finally:
        db.close()
        if kind == "postgresql":
            drop_postgres_database()


def start_contenders(kind: str, db: Database, workdir: Path, out: Path,
                     chosen: tuple[Contender, ...], cells: dict[str, dict[str, Cell]],
                     log: Callable[[str], None]) -> list[Running]:
    """Start every contender for ``kind``; one that fails gets its error in every cell."""
    running: list[Running] = []
    for contender in chosen:
        try:
            if contender.app is None:
                pb = PocketBase(workdir / "pb_data", free_port(), out / f"server-{kind}-pb.log")
                try:
                    pb.start()
                except Exception:
                    pb.stop()
                    raise
                running.append(Running(contender, pb.server.url, pb.endpoints(),
                                       pb.remove_created, pb.stop, pb.server.cpu_seconds,
                                       pb.server.log))
            else:
                port = free_port()
                server = Server(contender.key, uvicorn_command(contender.app, port), port,
                                out / f"server-{kind}-{contender.key}.log",
                                env={"BENCH_DB_URL": db.app_url,
                                     "BENCH_VARIANT": contender.variant})
                server.start()
                running.append(Running(contender, server.url, python_endpoints(contender),
                                       db.remove_created, server.stop, server.cpu_seconds,
                                       server.log))
            log(f"  started {contender.key}")
        except Exception as exc:  # a contender that cannot run is reported, not fatal
            reason = f"{type(exc).__name__}: {exc}"
            log(f"  {contender.key} did not start: {reason.splitlines()[0]}")
            for scenario in contender.scenarios:
                cells[contender.key][scenario].error = f"did not start: {reason}"
    return running


def smoke(run: Running) -> dict[str, str]:
    """One request of each scenario, plus a non-owner update that must be refused.

    Returns the scenarios that misbehave, with why.
    """
    e = run.endpoints
    problems: dict[str, str] = {}
    key = e.keys[0] if e.keys else "1"
    owner, stranger = owner_of(1), owner_of(2)
    item = e.item.replace("{key}", key)
    list_path = e.collection + e.list_query.replace("{user}", e.user_ids[owner])
    create = e.create_body.replace("{user}", e.user_ids[owner])
    update = e.update_body.replace("{n}", "0")
    checks = {
        "get": ("GET", item, None, owner, {200}),
        "list": ("GET", list_path, None, owner, {200}),
        "create": ("POST", e.collection, create, owner, {200, 201}),
        "update": ("PATCH", item, update, owner, {200}),
    }
    if e.expand_query is not None:
        expand_path = e.collection + e.expand_query.replace("{user}", e.user_ids[owner])
        checks[EXPAND_SCENARIO] = ("GET", expand_path, None, owner, {200})
    if run.contender.owner_writes:
        checks["update-denied"] = ("PATCH", item, update, stranger, {401, 403, 404})
    with httpx.Client(base_url=run.url, timeout=30) as client:
        for name, (method, path, body, user, expected) in checks.items():
            headers = {e.auth_header: e.credentials[user], "Content-Type": "application/json"}
            try:
                response = client.request(method, path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                problems[name] = f"{method} {path}: {exc}"
                continue
            if response.status_code not in expected:
                problems[name] = (f"{method} {path} as user {user}: {response.status_code} "
                                  f"{response.text[:200]}")
            elif name in ("list", EXPAND_SCENARIO):
                rows = response.json()
                rows = rows if isinstance(rows, list) else rows.get("items", rows.get("data"))
                if not isinstance(rows, list) or len(rows) != 20:
                    problems[name] = f"{method} {path}: expected 20 rows, got {str(rows)[:200]}"
                elif name == EXPAND_SCENARIO and not all(
                    isinstance(row.get("note"), list) and row["note"] for row in rows
                ):
                    problems[name] = f"{method} {path}: rows without their notes: {rows[:1]}"
    run.remove_created()
    return problems


def measure(run: Running, scenario: str, scripts: Path, *, seconds: float,
            connections: int) -> LoadResult:
    """One wrk run, with the server's CPU time per request (robust to a busy machine)."""
    script = scripts / f"{run.contender.key}-{scenario}.lua"
    if not script.exists():
        script.write_text(lua_script(run.endpoints, scenario))
    try:
        cpu_before = run.cpu_seconds()
        result = run_wrk(run.url, script, seconds=seconds, connections=connections)
        cpu = run.cpu_seconds() - cpu_before
        return replace(result, cpu_us_per_request=cpu * 1e6 / max(result.requests, 1))
    finally:
        if scenario == "create":
            run.remove_created()


def common_error(log: Path) -> str | None:
    """The exception line a server logged most often, e.g. ``...: database is locked``."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    found = Counter(line.strip() for line in lines
                    if re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*:", line.strip()))
    if not found:
        return None
    line, count = found.most_common(1)[0]
    return f"{line[:300]} ({count}x in {log.name})"


def run_database(kind: str, chosen: tuple[Contender, ...], *, rounds: int, seconds: float,
                 warmup: float, connections: int, out: Path,
                 log: Callable[[str], None]) -> dict[str, Any]:
    """Every contender and scenario on one database kind, interleaved over ``rounds``."""
    chosen = tuple(c for c in chosen if kind in c.databases)
    cells = {c.key: {s: Cell() for s in c.scenarios} for c in chosen}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"capebase-bench-{kind}-") as tmp:
        workdir = Path(tmp)
        scripts = workdir / "lua"
        scripts.mkdir()
        log(f"{kind}: seeding {ROWS} rows for {USERS} users")
        with database(kind, workdir) as db:
            running = start_contenders(kind, db, workdir, out, chosen, cells, log)
            try:
                for run in running:
                    for scenario, problem in smoke(run).items():
                        scenario = "update" if scenario == "update-denied" else scenario
                        if scenario in cells[run.contender.key]:
                            cells[run.contender.key][scenario].error = f"smoke test: {problem}"
                            log(f"  {run.contender.key} {scenario}: {problem}")
                plan = [(s, run) for s in ALL_SCENARIOS for run in running
                        if s in run.contender.scenarios
                        and cells[run.contender.key][s].error is None]
                if warmup > 0:
                    log(f"{kind}: warm-up ({len(plan)} runs of {warmup:.0f} s)")
                    for scenario, run in plan:
                        try:
                            trial = measure(run, scenario, scripts, seconds=warmup,
                                            connections=connections)
                        except LoadError as exc:
                            log(f"  warm-up {scenario} {run.contender.key}: {exc}")
                            continue
                        if trial.error_rate > MAX_ERROR_RATE:
                            log(f"  warm-up {scenario} {run.contender.key}: "
                                f"{trial.errors} of {trial.requests} requests failed")
                for round_no in range(1, rounds + 1):
                    log(f"{kind}: round {round_no}/{rounds}")
                    for scenario, run in plan:
                        cell = cells[run.contender.key][scenario]
                        try:
                            result = measure(run, scenario, scripts, seconds=seconds,
                                             connections=connections)
                        except Exception as exc:  # keep the other cells' rounds
                            cell.error = f"round {round_no}: {type(exc).__name__}: {exc}"
                            log(f"  {scenario:6} {run.contender.key:20} failed: {exc}")
                            continue
                        cell.rounds.append(result)
                        log(f"  {scenario:6} {run.contender.key:20} {result.rps:8.0f} req/s "
                            f"p50 {result.p50_ms:6.1f} ms p99 {result.p99_ms:6.1f} ms "
                            f"{result.cpu_us_per_request:6.0f} us CPU/req"
                            + (f"  {result.errors} errors" if result.errors else ""))
            finally:
                for run in running:
                    run.stop()
                    for cell in cells[run.contender.key].values():
                        if any(r.errors for r in cell.rounds):
                            cell.server_error = common_error(run.log)
    return {
        "seconds_taken": round(time.monotonic() - started, 1),
        "contenders": {c.key: c.label for c in chosen},
        "cells": {key: {s: cell.summary() for s, cell in by.items()}
                  for key, by in cells.items()},
    }


def run(*, databases: tuple[str, ...], rounds: int, seconds: float, warmup: float,
        connections: int, out: Path, log: Callable[[str], None],
        only: tuple[str, ...] = CONTENDER_KEYS) -> dict[str, Any]:
    """The CRUD section: every database kind in turn, for the contenders named in ``only``."""
    chosen = tuple(c for c in CONTENDERS if c.key in only)
    results: dict[str, Any] = {
        "settings": {"rounds": rounds, "seconds": seconds, "warmup": warmup,
                     "connections": connections, "rows": ROWS, "users": USERS},
    }
    for kind in databases:
        try:
            results[kind] = run_database(kind, chosen, rounds=rounds, seconds=seconds,
                                         warmup=warmup, connections=connections, out=out,
                                         log=log)
        except Exception as exc:  # one database failing must not lose the other's results
            log(f"{kind}: failed: {exc}")
            results[kind] = {"error": f"{type(exc).__name__}: {exc}"}
        (out / "crud-partial.json").write_text(json.dumps(results, indent=1, default=str))
    return results
