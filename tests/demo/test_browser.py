"""The todo demo page in a real browser: Playwright driving Debian's Chromium.

Two users in two browser contexts watch one list. A todo one adds shows up on the other's page
without a reload; the other cannot toggle or delete it and the page says why; after the server
restarts, both pages reconnect by themselves and catch up by resuming the stream.

Needs /usr/bin/chromium (Debian's ``chromium`` package; .ci/run installs it) and the
``playwright`` Python package; never ``playwright install``. Without them the test skips, saying
why, except under CI=true, where it fails. Screenshots go to test-artifacts/demo/.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._databases import is_ci

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError as error:  # pragma: no cover - depends on the environment
    PLAYWRIGHT_MISSING: str | None = f"the playwright package is not installed ({error})"
else:
    PLAYWRIGHT_MISSING = None

T0 = 0.0
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
SECRET = "demo-browser-test-secret-" + "x" * 40  # the same across the restart: tokens survive
LIVE_WITHIN_MS = 2_000  # the acceptance bound for a change to show on another page
RECONNECT_WITHIN_MS = 20_000
LIST_LOAD = re.compile(r'"GET /todo\?[^"]*HTTP')


def _unavailable(reason: str) -> None:
    if is_ci():
        pytest.fail(f"browser test cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoServer:
    """``python -m examples.todo`` (what ``make demo`` runs) on a port and SQLite file of its own."""

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

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "examples.todo"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the demo exited with {self.process.returncode}:\n{self.output()}")
            try:
                httpx.get(f"{self.url}/demo/accounts", timeout=1).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"the demo did not start within 20 s:\n{self.output()}")

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
    server = DemoServer(tmp_path / "demo.db", tmp_path / "demo.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        print(f"--- demo server output ---\n{server.output()[-6000:]}")


@pytest.fixture
def browser() -> Iterator[Browser]:
    if PLAYWRIGHT_MISSING:
        _unavailable(PLAYWRIGHT_MISSING)
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
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
    page.fill("#new-task", task)
    page.press("#new-task", "Enter")
    expect(page.locator("#new-task")).to_have_value("")


def _todo(page: Page, task: str) -> Any:
    return page.locator("li.todo", has=page.locator(".task", has_text=task))


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_two_users_see_each_other_live_and_pages_resume_after_a_restart(
    demo: DemoServer, browser: Browser
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    global T0
    T0 = time.monotonic()
    assert "alice" in demo.output() and "bob" in demo.output(), "the banner names the accounts"
    console: list[str] = []
    try:
        alice = _open_page(browser, demo.url, console)
        print("T %6.2f" % (time.monotonic()-T0), 'alice = _open_page(browser, demo.url, console)')
        bob = _open_page(browser, demo.url, console)
        print("T %6.2f" % (time.monotonic()-T0), 'bob = _open_page(browser, demo.url, console)')
        _sign_in(alice, "alice", "alice-password")
        print("T %6.2f" % (time.monotonic()-T0), '_sign_in(alice, "alice", "alice-password")')
        _sign_in(bob, "bob", "bob-password")
        print("T %6.2f" % (time.monotonic()-T0), '_sign_in(bob, "bob", "bob-password")')

        # A todo alice adds appears on bob's page, without a reload, within 2 seconds.
        _add(alice, "Buy oat milk")
        print("T %6.2f" % (time.monotonic()-T0), '_add(alice, "Buy oat milk")')
        expect(_todo(bob, "Buy oat milk")).to_be_visible(timeout=LIVE_WITHIN_MS)
        print("T %6.2f" % (time.monotonic()-T0), 'expect(_todo(bob, "Buy oat milk")).to_be_visible(t')
        expect(_todo(bob, "Buy oat milk").locator(".owner")).to_have_text("🔒 alice's")
        print("T %6.2f" % (time.monotonic()-T0), 'expect(_todo(bob, "Buy oat milk").locator(".owner"')
        _shot(alice, "01-alice-adds-a-todo")
        print("T %6.2f" % (time.monotonic()-T0), '_shot(alice, "01-alice-adds-a-todo")')
        _shot(bob, "02-bob-sees-it-live")
        print("T %6.2f" % (time.monotonic()-T0), '_shot(bob, "02-bob-sees-it-live")')

        # Bob can neither toggle nor delete it, and the page says why.
        _todo(bob, "Buy oat milk").locator(".toggle").click()
        print("T %6.2f" % (time.monotonic()-T0), '_todo(bob, "Buy oat milk").locator(".toggle").clic')
        expect(bob.locator("#message")).to_contain_text(
            "You can only change your own todos. This one is alice's."
        )
        expect(_todo(bob, "Buy oat milk").locator(".toggle")).not_to_be_checked()
        print("T %6.2f" % (time.monotonic()-T0), 'expect(_todo(bob, "Buy oat milk").locator(".toggle')
        bob.click("#message-close")
        print("T %6.2f" % (time.monotonic()-T0), 'bob.click("#message-close")')
        _todo(bob, "Buy oat milk").locator(".delete").click()
        print("T %6.2f" % (time.monotonic()-T0), '_todo(bob, "Buy oat milk").locator(".delete").clic')
        expect(bob.locator("#message")).to_contain_text("You can only change your own todos")
        print("T %6.2f" % (time.monotonic()-T0), 'expect(bob.locator("#message")).to_contain_text("Y')
        _shot(bob, "03-bob-is-told-why-not")
        print("T %6.2f" % (time.monotonic()-T0), '_shot(bob, "03-bob-is-told-why-not")')
        expect(_todo(bob, "Buy oat milk")).to_be_visible()
        print("T %6.2f" % (time.monotonic()-T0), 'expect(_todo(bob, "Buy oat milk")).to_be_visible()')
        expect(_todo(alice, "Buy oat milk").locator(".toggle")).not_to_be_checked()
        print("T %6.2f" % (time.monotonic()-T0), 'expect(_todo(alice, "Buy oat milk").locator(".togg')

        # Alice can; bob sees it done, live; a 422 reads as a sentence.
        _todo(alice, "Buy oat milk").locator(".toggle").click()
        print("T %6.2f" % (time.monotonic()-T0), '_todo(alice, "Buy oat milk").locator(".toggle").cl')
        expect(_todo(bob, "Buy oat milk").locator(".toggle")).to_be_checked(
            timeout=LIVE_WITHIN_MS
        )
        alice.press("#new-task", "Enter")
        print("T %6.2f" % (time.monotonic()-T0), 'alice.press("#new-task", "Enter")')
        expect(alice.locator("#message")).to_contain_text("The task cannot be empty.")
        print("T %6.2f" % (time.monotonic()-T0), 'expect(alice.locator("#message")).to_contain_text(')

        # The server restarts; both pages show it, reconnect, and catch up on what happened
        # while they were away by resuming the stream (not by loading the list again).
        loads_before = demo.list_loads()
        print("T %6.2f" % (time.monotonic()-T0), 'loads_before = demo.list_loads()')
        demo.stop()
        print("T %6.2f" % (time.monotonic()-T0), 'demo.stop()')
        for page in (alice, bob):
            expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        _shot(bob, "04-reconnecting")
        print("T %6.2f" % (time.monotonic()-T0), '_shot(bob, "04-reconnecting")')
        demo.start()
        print("T %6.2f" % (time.monotonic()-T0), 'demo.start()')
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
            expect(_todo(page, "Added while the pages were away")).to_be_visible(
                timeout=RECONNECT_WITHIN_MS
            )
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        assert demo.list_loads() == loads_before, "the pages resumed instead of reloading"
        print("T %6.2f" % (time.monotonic()-T0), 'assert demo.list_loads() == loads_before, "the pag')

        # Live again both ways, still signed in (the tokens outlive the restart).
        _add(bob, "Walk the dog")
        print("T %6.2f" % (time.monotonic()-T0), '_add(bob, "Walk the dog")')
        expect(_todo(alice, "Walk the dog")).to_be_visible(timeout=LIVE_WITHIN_MS)
        print("T %6.2f" % (time.monotonic()-T0), 'expect(_todo(alice, "Walk the dog")).to_be_visible')
        expect(_todo(alice, "Walk the dog").locator(".owner")).to_have_text("🔒 bob's")
        print("T %6.2f" % (time.monotonic()-T0), 'expect(_todo(alice, "Walk the dog").locator(".owne')
        alice.click("[data-filter=mine]")
        print("T %6.2f" % (time.monotonic()-T0), 'alice.click("[data-filter=mine]")')
        expect(alice.locator("li.todo")).to_have_count(1)
        print("T %6.2f" % (time.monotonic()-T0), 'expect(alice.locator("li.todo")).to_have_count(1)')
        _shot(alice, "05-alice-caught-up-filter-mine")
        print("T %6.2f" % (time.monotonic()-T0), '_shot(alice, "05-alice-caught-up-filter-mine")')
        alice.click("[data-filter=all]")
        print("T %6.2f" % (time.monotonic()-T0), 'alice.click("[data-filter=all]")')
        _shot(bob, "06-bob-caught-up")
        print("T %6.2f" % (time.monotonic()-T0), '_shot(bob, "06-bob-caught-up")')
    except BaseException:
        print("--- browser console ---\n" + "\n".join(console))
        print("T %6.2f" % (time.monotonic()-T0), 'print("--- browser console ---\\n" + "\\n".join(cons')
        raise
        print("T %6.2f" % (time.monotonic()-T0), 'raise')
