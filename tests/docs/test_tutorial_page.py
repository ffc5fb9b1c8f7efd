"""The tutorial's live page works in Chromium: two users sign up, a todo one adds appears on
the other's page without a reload, the other cannot tick it off, and after a server restart
both pages reconnect by themselves.

The app, page and script are the tutorial's files as the page writes them
(docs/tutorial.md), served by uvicorn as the tutorial says."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

from ._support import Server, chromium, free_port, running
from .blocks import DOCS, page_files

TUTORIAL = DOCS / "tutorial.md"
LIVE_WITHIN_MS = 5_000


def _sign_up(browser: Any, url: str, email: str) -> Any:
    from playwright.sync_api import expect

    page = browser.new_context().new_page()
    page.goto(url)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", f"{email}-password")
    page.click("#signup")
    expect(page.locator("#status")).to_have_text("live", timeout=20_000)
    return page


def test_two_users_see_each_others_todos_live(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    for name, text in page_files(TUTORIAL).items():
        if not name.startswith("test_"):
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text)
    port = free_port()
    server = Server([sys.executable, "-m", "uvicorn", "app:app", "--port", str(port)], tmp_path,
                    tmp_path / "server.log", env={"CAPEBASE_SECRET": secrets.token_urlsafe(48)})
    url = f"http://127.0.0.1:{port}/"
    with chromium() as browser, running(server, url):
        alice = _sign_up(browser, url, "alice@example.com")
        bob = _sign_up(browser, url, "bob@example.com")

        alice.fill("input[name=task]", "buy milk")
        alice.press("input[name=task]", "Enter")
        expect(alice.locator("#todos li")).to_have_text(["buy milk (yours)"])
        expect(bob.locator("#todos li")).to_have_text(["buy milk"], timeout=LIVE_WITHIN_MS)

        bob.locator("#todos li input[type=checkbox]").check()
        expect(bob.locator("#status")).to_have_text("Permission denied: cannot update Todo")
        expect(bob.locator("#todos li input[type=checkbox]")).not_to_be_checked()

        alice.locator("#todos li input[type=checkbox]").check()
        expect(bob.locator("#todos li input[type=checkbox]")).to_be_checked(
            timeout=LIVE_WITHIN_MS)

        # A restart: both pages reconnect by themselves and go on receiving changes.
        server.stop()
        expect(bob.locator("#status")).to_have_text("reconnecting…")
        server.start(url)
        for page in (alice, bob):
            expect(page.locator("#status")).to_have_text("live", timeout=20_000)
        alice.fill("input[name=task]", "bread")
        alice.press("input[name=task]", "Enter")
        expect(bob.locator("#todos li")).to_have_text(["buy milk", "bread"],
                                                       timeout=LIVE_WITHIN_MS)
