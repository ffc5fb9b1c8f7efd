"""``python -m bench``: run the benchmarks, write bench/out/results.json and bench/RESULTS.md.

    python -m bench                   # everything (~11 minutes on 2 cores)
    python -m bench --quick           # a few short rounds, to try it (~5 minutes)
    python -m bench --only crud       # or features, realtime, profile (comma-separated)

Needs wrk (apt-get update && apt-get install -y wrk), a PostgreSQL server for the PostgreSQL
runs (BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/postgres; a fresh
``capebase_bench`` database is created and dropped) and the ``bench`` extra:
pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import crud, machine, profile, realtime, report
from .load import require_wrk
from .seed import PG_ADMIN_URL

HERE = Path(__file__).resolve().parent
SECTIONS = ("crud", "features", "realtime", "profile")
FEATURE_CONTENDERS = ("capebase", "capebase-open", "capebase-nocapture")
BASELINE_CONTENDERS = ("capebase", "idiomatic", "fastcrud", "pocketbase", "raw")


class LoadMonitor(threading.Thread):
    """Samples the load average every few seconds: other work on the machine skews results."""

    def __init__(self, interval: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, float]] = [(time.monotonic(), machine.load_average())]
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.samples.append((time.monotonic(), machine.load_average()))

    def summary(self, since: float = 0.0, until: float = float("inf")) -> dict[str, float]:
        """min, median and max of the samples taken between ``since`` and ``until``."""
        loads = [load for at, load in self.samples if since <= at <= until]
        loads = loads or [self.samples[-1][1]]
        return {"min": min(loads), "median": statistics.median(loads), "max": max(loads)}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few short rounds, to try it")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--db", default="sqlite,postgresql",
                        help="comma-separated databases for crud/features/profile")
    parser.add_argument("--rounds", type=int, help="rounds per CRUD cell (default 3; quick 2)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 3; quick 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="raw output folder")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md",
                        help="the markdown report to write")
    args = parser.parse_args(argv)
    args.sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    args.databases = tuple(d.strip() for d in args.db.split(",") if d.strip())
    for name in args.sections:
        if name not in SECTIONS:
            parser.error(f"--only: unknown section {name!r}; choose from {', '.join(SECTIONS)}")
    for name in args.databases:
        if name not in ("sqlite", "postgresql"):
            parser.error(f"--db: unknown database {name!r}; use sqlite and/or postgresql")
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.seconds = args.seconds or (2.0 if args.quick else 3.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if {"crud", "features", "profile"} & set(args.sections):
        require_wrk()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {message}", flush=True)

    monitor = LoadMonitor()
    monitor.start()
    pg_version = machine.postgres_version(PG_ADMIN_URL) if "postgresql" in args.databases else None
    results: dict[str, Any] = {
        "meta": {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                 "arguments": " ".join(sys.argv[1:] if argv is None else argv).strip(),
                 "quick": args.quick},
        "machine": machine.machine(),
        "versions": machine.versions(pg_version),
        "notes": [],
    }
    databases = args.databases
    if "postgresql" in databases and pg_version is None:
        results["notes"].append(f"PostgreSQL at {PG_ADMIN_URL} could not be reached; "
                                "PostgreSQL runs skipped (set BENCH_PG_URL).")
        databases = tuple(d for d in databases if d != "postgresql")
    sections: dict[str, tuple[float, float]] = {}

    def timed(name: str, work: Any) -> Any:
        begun = time.monotonic()
        try:
            return work()
        finally:
            sections[name] = (begun, time.monotonic())

    try:
        contenders = tuple(
            dict.fromkeys(
                ([*BASELINE_CONTENDERS] if "crud" in args.sections else [])
                + ([*FEATURE_CONTENDERS] if "features" in args.sections else [])
            )
        )
        if contenders:
            results["crud"] = timed("CRUD", lambda: crud.run(
                databases=databases, rounds=args.rounds, seconds=args.seconds,
                warmup=1.0, connections=args.connections, out=args.out, log=log,
                only=contenders))
        if "realtime" in args.sections:
            plan = realtime.QUICK if args.quick else realtime.Plan()
            results["realtime"] = timed("realtime",
                                        lambda: realtime.run(plan, out=args.out, log=log))
        if "profile" in args.sections:
            results["profile"] = timed("profiles", lambda: profile.run(
                kinds=databases, seconds=3 if args.quick else 4, out=args.out, log=log))
    finally:
        monitor.stopped.set()
        results["meta"]["load"] = monitor.summary()
        results["meta"]["load_by_section"] = {
            name: monitor.summary(begun, ended) for name, (begun, ended) in sections.items()}
        results["meta"]["minutes"] = (time.monotonic() - started) / 60
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        args.results.write_text(report.render(results))
        log(f"wrote {args.out / 'results.json'} and {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
