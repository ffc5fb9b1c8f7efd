"""docs/guides/cors.md works as written: a page on another origin uses the quick start's API.

The app is README's ``app.py`` plus the guide's middleware block; the page runs the guide's
javascript block. Chromium loads the page from ``http://localhost:<port>`` and the API is on
``http://127.0.0.1:<other port>``: another origin, so every request is a CORS request.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlmodel import Field, SQLModel

from capebase import CapeBase
from capebase.testing import app_client

from ._support import Server, chromium, free_port, running
from .blocks import DOCS, README, ROOT, Block, find_block, page_files


class CorsNote(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    text: str


GUIDE = DOCS / "guides" / "cors.md"
MIDDLEWARE = find_block(GUIDE, "# continues app.py", "python")
README_MIDDLEWARE = find_block(README, "CORSMiddleware", "python")
PAGE_CODE = find_block(GUIDE, 'const API = "http://localhost:8000"', "javascript")
ORIGIN_IN_GUIDE = "http://localhost:5173"
ALICE = {"Authorization": "Bearer alice-token"}


def _app_source(origin: str, cors: bool = True, middleware: Block = MIDDLEWARE) -> str:
    app = page_files(README)["app.py"]
    if not cors:
        return app
    return app + "\n\n" + middleware.code.replace(ORIGIN_IN_GUIDE, origin)


def _serve_page(folder: Path, api: str) -> None:
    folder.mkdir()
    script = PAGE_CODE.code.replace("http://localhost:8000", api)
    (folder / "index.html").write_text(
        '<!doctype html>\n<meta charset="utf-8"><link rel="icon" href="data:,">\n'
        # What the page logs, kept for the test to read.
        "<script>window.logged = []; const log = console.log;\n"
        "console.log = (...args) => { window.logged.push(args); log(...args); };\n"
        "window.failures = [];\n"
        "addEventListener('error', (e) => window.failures.push(String(e.message)));\n"
        "addEventListener('unhandledrejection', (e) => window.failures.push(String(e.reason)));"
        "</script>\n"
        f'<script type="module">\n{script}</script>\n'
    )


@pytest.mark.parametrize("middleware", [MIDDLEWARE, README_MIDDLEWARE], ids=lambda b: b.id)
def test_preflight_exposed_headers_and_errors_carry_cors(middleware: Block, tmp_path: Path) -> None:
    origin = "http://localhost:5173"
    (tmp_path / "app.py").write_text(_app_source(origin, middleware=middleware))
    result = subprocess.run(
        [sys.executable, "-m", "tests.docs._cors_check", origin], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


async def test_middleware_added_before_capebase_works_as_well(tmp_path: Path) -> None:
    """The guide says the order does not matter: capebase's own answers (a 413 of the body
    limit, a 401) carry the CORS headers with the middleware added before CapeBase too."""
    origin = "http://localhost:5173"
    app = FastAPI()
    app.add_middleware(CORSMiddleware, allow_origins=[origin])
    cape = CapeBase(app=app, db_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    cape.publish(CorsNote)
    cape.permission_required(CorsNote, role="writer", actions=["create"])
    async with app_client(app) as client:
        response = await client.post("/corsnote", content=b"x" * (2 << 20),
                                     headers={"Origin": origin})
        assert response.status_code == 413
        assert response.headers["access-control-allow-origin"] == origin
        response = await client.post("/corsnote", json={"text": "x"}, headers={"Origin": origin})
        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == origin


def _open(browser: Any, url: str) -> tuple[Any, list[str]]:
    errors: list[str] = []
    page = browser.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    return page, errors


def _logged(page: Any) -> list[list[Any]]:
    return list(page.evaluate("window.logged"))


def _wait(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_page_on_another_origin_in_chromium(tmp_path: Path) -> None:
    api_port, page_port = free_port(), free_port()
    api, origin = f"http://127.0.0.1:{api_port}", f"http://localhost:{page_port}"
    for name, cors in (("with_cors", True), ("without_cors", False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.py").write_text(_app_source(origin, cors))
    _serve_page(tmp_path / "page", api)
    pages = Server([sys.executable, "-m", "http.server", str(page_port), "--bind", "127.0.0.1"],
                   tmp_path / "page", tmp_path / "page.log")

    def api_server(name: str) -> Server:
        return Server(["uvicorn", "app:app", "--port", str(api_port)], tmp_path / name,
                      tmp_path / f"{name}.log")

    with chromium() as browser, running(pages, f"http://127.0.0.1:{page_port}/"):
        with running(api_server("with_cors"), f"{api}/todo"):
            for n in range(12):
                httpx.post(f"{api}/todo", json={"task": f"seed {n}"}, headers=ALICE)
            page, errors = _open(browser, f"{origin}/")
            # console.log(total, firstPage): the header read across origins, ten rows.
            _wait(lambda: any(len(args) == 2 for args in _logged(page)), 20, "the page's log")
            total, first_page = next(args for args in _logged(page) if len(args) == 2)
            assert total == 12 and len(first_page) == 10, (total, errors)
            made = httpx.get(f"{api}/todo", params={"task": "buy milk"}).json()
            assert [row["user_id"] for row in made] == ["alice"]  # the page's POST
            # The stream: a change made now reaches the page's EventSource.
            def streamed() -> bool:
                httpx.post(f"{api}/todo", json={"task": "live"}, headers=ALICE)
                return any(isinstance(a[0], dict) and a[0].get("table") == "todo"
                           for a in _logged(page) if a)
            _wait(streamed, 20, "a change on the cross-origin stream")
            assert not errors, errors
            page.close()

        with running(api_server("without_cors"), f"{api}/todo"):
            page, errors = _open(browser, f"{origin}/")
            _wait(lambda: bool(page.evaluate("window.failures")), 20, "the page to be blocked")
            assert not any(len(args) == 2 for args in _logged(page))
            assert "Failed to fetch" in " ".join(page.evaluate("window.failures")), errors
            page.close()
