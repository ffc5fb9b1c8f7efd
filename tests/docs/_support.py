"""Real processes for the guides' tests: a server started as the docs start it, and Chromium."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from tests._databases import is_ci

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]
START_WITHIN_S = 60  # several workers importing the app on a busy machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A command (``uvicorn app:app ...``) run in ``cwd``, its output kept in ``log``."""

    def __init__(self, command: Sequence[str], cwd: Path, log: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.log = log
        # The virtualenv's bin first, so that `uvicorn` and `alembic` are this environment's.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        self.env = {**os.environ, "PATH": path, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_url: str) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its workers too are stopped by stop()
            )
        deadline = time.monotonic() + START_WITHIN_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command} exited:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(ready_url, timeout=2)
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.command} did not serve within {START_WITHIN_S} s:\n"
                           f"{self.output()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running(server: Server, ready_url: str) -> Iterator[Server]:
    try:
        server.start(ready_url)
        yield server
    finally:
        server.stop()
        print(f"--- {' '.join(server.command)} ---\n{server.output()[-4000:]}")


def unavailable(reason: str) -> None:
    """Skip, or fail under CI (where every tool the suite needs is installed)."""
    if is_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:  # pragma: no cover - depends on the environment
        unavailable(f"the playwright package is not installed ({error})")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
