"""The todo demo page in a real browser: Playwright driving Debian's Chromium.

Two users in two browser contexts watch one list. A todo one adds shows up on the other's page
without a reload; the other cannot toggle or delete it and the page says why; after the server
restarts, both pages reconnect by themselves and catch up by resuming the stream. The page is
built on @capebase/client (clients/typescript), served as static ES modules.

Needs /usr/bin/chromium (Debian's ``chromium`` package; .ci/run installs it) and the
``playwright`` Python package; never ``playwright install``. Without them the test skips, saying
why, except under CI=true, where it fails. Screenshots go to test-artifacts/demo/.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._databases import is_ci

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError as error:  # pragma: no cover - depends on the environment
    PLAYWRIGHT_MISSING: str | None = f"the playwright package is not installed ({error})"
else:
    PLAYWRIGHT_MISSING = None

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "demo"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = secrets.token_urlsafe(48)  # the same across the restart: tokens survive
LIVE_WITHIN_MS = 2_000  # the acceptance bound for a change to show on another page
RECONNECT_WITHIN_MS = 20_000
START_WITHIN_S = 30  # importing the app is most of it; generous for a busy machine
STREAM = "**/todo/subscribe*"
LIST_LOAD = re.compile(r'"GET /todo\?[^"]*HTTP')


def _unavailable(reason: str) -> None:
    if is_ci():
        pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _require_chromium() -> None:
    """Skip (fail under CI) unless Playwright and Debian's Chromium are installed."""
    if PLAYWRIGHT_MISSING:
        _unavailable(PLAYWRIGHT_MISSING)
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoServer:
    """``python -m examples.todo`` (as ``make demo`` runs it) on its own port and SQLite file."""

    def __init__(self, database: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "TODO_DEMO_DB": str(database),
            "CAPEBASE_SECRET": SECRET,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        """Start the process; ``wait_until_ready`` waits for it to serve."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "examples.todo"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_ready(self) -> None:
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + START_WITHIN_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the demo exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                httpx.get(f"{self.url}/demo/accounts", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the demo did not start within {START_WITHIN_S} s:\n{self.output()}")

    def start(self) -> None:
        self.spawn()
        self.wait_until_ready()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def list_loads(self) -> int:
        """How many times a page fetched the list (the access log's ``GET /todo?...``)."""
        return len(LIST_LOAD.findall(self.output()))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[DemoServer]:
    _require_chromium()
    server = DemoServer(tmp_path / "demo.db", tmp_path / "demo.log")
    server.spawn()  # it starts while the browser does; the test waits until it serves
    try:
        yield server
    finally:
        server.stop()
        print(f"--- demo server output ---\n{server.output()[-6000:]}")


@pytest.fixture
def browser() -> Iterator[Browser]:
    _require_chromium()
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
            )
        except Exception as error:
            _unavailable(f"{CHROMIUM} does not start: {error}")
        try:
            yield launched
        finally:
            launched.close()


def _open_page(browser: Browser, url: str, console: list[str]) -> Page:
    """A page in a fresh browser context (its own storage: its own user)."""
    page = browser.new_context(viewport={"width": 760, "height": 620}).new_page()
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"page error: {error}"))
    page.goto(url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    return page


def _sign_in(page: Page, name: str, password: str) -> None:
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.click("#sign-in-form button[type=submit]")
    expect(page.locator("#whoami-name")).to_have_text(name)


def _add(page: Page, task: str) -> None:
    """Type a todo and press Enter (without waiting: the clock for "live" starts here)."""
    page.fill("#new-task", task)
    page.press("#new-task", "Enter")


def _todo(page: Page, task: str) -> Locator:
    return page.locator("li.todo", has=page.locator(".task", has_text=task))


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_two_users_see_each_other_live_and_pages_resume_after_a_restart(
    demo: DemoServer, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    demo.wait_until_ready()
    assert "alice-password" in demo.output(), "make demo prints the demo accounts"
    console: list[str] = []
    pages: dict[str, Page] = {}
    try:
        alice = pages["alice"] = _open_page(browser, demo.url, console)
        bob = pages["bob"] = _open_page(browser, demo.url, console)

        # Sign-up explains what is wrong (a 422 from the server, in words).
        alice.click("#show-sign-up")
        alice.fill("#signup-email", "carol@example.com")
        alice.fill("#signup-password", "short")
        alice.click("#sign-up-form button[type=submit]")
        expect(alice.locator("#message")).to_contain_text(
            "Password should have at least 8 characters."
        )
        alice.click("#show-sign-in")

        _sign_in(alice, "alice", "alice-password")
        _sign_in(bob, "bob", "bob-password")

        # A todo alice adds appears on bob's page, without a reload, within 2 seconds.
        _add(alice, "Buy oat milk")
        expect(_todo(bob, "Buy oat milk")).to_be_visible(timeout=LIVE_WITHIN_MS)
        expect(_todo(bob, "Buy oat milk").locator(".owner")).to_have_text("alice's read-only")
        expect(alice.locator("#new-task")).to_have_value("")
        _shot(alice, "01-alice-adds-a-todo")
        _shot(bob, "02-bob-sees-it-live")

        # Bob can neither toggle nor delete it, and the page says why.
        _todo(bob, "Buy oat milk").locator(".toggle").click()
        expect(bob.locator("#message")).to_contain_text(
            "You can only change your own todos. This one is alice's."
        )
        expect(_todo(bob, "Buy oat milk").locator(".toggle")).not_to_be_checked()
        bob.click("#message-close")
        _todo(bob, "Buy oat milk").locator(".delete").click()
        expect(bob.locator("#message")).to_contain_text("You can only change your own todos")
        _shot(bob, "03-bob-is-told-why-not")
        expect(_todo(bob, "Buy oat milk")).to_be_visible()
        expect(_todo(alice, "Buy oat milk").locator(".toggle")).not_to_be_checked()

        # Alice can; bob sees it done, live; a 422 reads as a sentence.
        _todo(alice, "Buy oat milk").locator(".toggle").click()
        expect(_todo(bob, "Buy oat milk").locator(".toggle")).to_be_checked(timeout=LIVE_WITHIN_MS)
        alice.press("#new-task", "Enter")
        expect(alice.locator("#message")).to_contain_text("The task cannot be empty.")

        # The server restarts. Both pages show it, and their streams stay blocked until a todo
        # has been added behind their backs, so that catching up must come from resuming the
        # stream (Last-Event-ID), not from a lucky early reconnect or a reload of the list.
        loads_before = demo.list_loads()
        demo.stop()
        for page in (alice, bob):
            expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
            page.context.route(STREAM, lambda route: route.abort())
        _shot(bob, "04-reconnecting")
        demo.start()
        with httpx.Client(base_url=demo.url, timeout=10) as client:
            token = client.post(
                "/auth/token", data={"username": "bob", "password": "bob-password"}
            ).json()["access_token"]
            created = client.post(
                "/todo",
                json={"task": "Added while the pages were away"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert created.status_code == 201, created.text
        for page in (alice, bob):
            expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
            page.context.unroute(STREAM)
        for page in (alice, bob):
            expect(_todo(page, "Added while the pages were away")).to_be_visible(
                timeout=RECONNECT_WITHIN_MS
            )
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        assert demo.list_loads() == loads_before, "the pages resumed instead of reloading"

        # Live again both ways, still signed in (the tokens outlive the restart).
        _add(bob, "Walk the dog")
        expect(_todo(alice, "Walk the dog")).to_be_visible(timeout=LIVE_WITHIN_MS)
        expect(_todo(alice, "Walk the dog").locator(".owner")).to_have_text("bob's read-only")
        alice.click("[data-filter=mine]")
        expect(alice.locator("li.todo")).to_have_count(1)
        _shot(alice, "05-alice-caught-up-filter-mine")
        alice.click("[data-filter=all]")
        _shot(bob, "06-bob-caught-up")

        # The page's client (@capebase/client) reads the stream with fetch, so it sends the
        # access token in the Authorization header: never in a URL (which logs keep), and with
        # no ticket to fetch first. The server's access log shows neither.
        log = demo.output()
        assert '"GET /todo/subscribe HTTP/1.1" 200' in log
        assert "access_token=" not in log and "ticket=" not in log
    except BaseException:
        print("--- browser console ---\n" + "\n".join(console))
        for name, page in pages.items():
            with contextlib.suppress(Exception):
                _shot(page, f"failed-{name}")
        raise
