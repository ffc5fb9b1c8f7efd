"""Multiprocess mode: several workers record to PROMETHEUS_MULTIPROC_DIR; any of them serves
every worker's series, merged."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import create_engine

from capebase.changes.changelog import metadata as changelog_metadata
from capebase.db.engine import POOL_SIZE
from tests.observability._app import ObsModel, parse
from tests.realtime._live import wait_until

# Several uvicorn workers each: started beside other tests on two cores, their start-up
# outlasts any fair bound (see the serial marker in pyproject.toml).
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[str]:
    """``uvicorn --workers 2`` serving the test app; yields its base URL."""
    database = tmp_path / "shared.db"
    engine = create_engine(f"sqlite:///{database}")
    ObsModel.metadata.create_all(engine)
    changelog_metadata.create_all(engine)
    engine.dispose()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "CAPEBASE_OBS_TEST_DB": f"sqlite+aiosqlite:///{database}",
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "tests.observability._multiprocess_app:app",
         "--workers", "2", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def test_the_scrape_merges_every_workers_series(workers: str, tmp_path: Path) -> None:
    async def answers() -> bool:
        with contextlib.suppress(httpx.TransportError):
            async with httpx.AsyncClient(base_url=workers) as client:
                return (await client.get("/obs_note")).status_code == 200
        return False

    await wait_until(answers, within=30, what="uvicorn's workers to start")
    # A connection per request, many at once: both workers accept some. On a loaded machine
    # one worker may take a whole round, so send rounds until each has served (bounded).
    limits = httpx.Limits(max_keepalive_connections=0)
    sent = 0
    async with httpx.AsyncClient(base_url=workers, limits=limits) as client:
        for _ in range(10 * REQUESTS // 20):
            responses = await asyncio.gather(*(client.get("/obs_note") for _ in range(20)))
            assert {r.status_code for r in responses} == {200}
            sent += 20
            if sent >= REQUESTS and len([s for s in _shares(tmp_path) if s > 0]) == 2:
                break
        scraped = parse((await client.get("/metrics")).text)

    total = scraped.value("capebase_http_requests_total", route="/obs_note", status="200")
    assert total == sent + 1  # and the request that found the server up
    assert scraped.value("capebase_db_query_duration_seconds_count", table="obs_note") >= total
    assert scraped.value("capebase_http_requests_in_flight", route="/metrics") == 1
    assert scraped.value("capebase_db_pool_size") == 2 * POOL_SIZE  # two workers' pools, summed

    # Each worker wrote its own share.
    shares = _shares(tmp_path)
    assert len([share for share in shares if share > 0]) == 2, shares


def _shares(tmp_path: Path) -> list[float]:
    """Each worker's count of ``GET /obs_note``, from its own multiprocess file."""
    shares = []
    for path in (tmp_path / "prometheus").glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        shares.append(sum(
            sample.value for family in merged for sample in family.samples
            if sample.name == "capebase_http_requests_total"
            and sample.labels.get("route") == "/obs_note"
        ))
    return shares
