"""The built wheel installs into a clean virtualenv (not editable, no dev tools) and serves the
README's Quick start from there: what `pip install capebase` users get.

The wheel is built from this tree (``CAPEBASE_WHEEL_DIR`` names a directory with a built one,
as `make package` does). Versions come from uv.lock, so the check is reproducible.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.test_readme import FILES

ROOT = Path(__file__).resolve().parents[1]
UV = ROOT / ".tools" / "bin" / "uv"


def _uv() -> str:
    found = str(UV) if UV.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed: run `make .venv` (it installs the pinned uv)")
    return found


def _wheel(tmp_path: Path) -> Path:
    given = os.environ.get("CAPEBASE_WHEEL_DIR")
    directory = Path(given) if given else tmp_path / "dist"
    if not given:
        subprocess.run(
            [_uv(), "build", "--wheel", "--out-dir", str(directory), str(ROOT)],
            check=True, capture_output=True, timeout=300,
        )
    wheels = sorted(directory.glob("capebase-*.whl"))
    assert len(wheels) == 1, f"expected one capebase wheel in {directory}, found {wheels}"
    return wheels[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, method: str = "GET", body: dict[str, object] | None = None,
             token: str | None = None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_the_wheel_serves_the_quick_start(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    env_dir = tmp_path / "venv"
    uv_env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(env_dir)}
    uv_env.pop("UV_PROJECT_ENVIRONMENT", None)
    constraints = tmp_path / "constraints.txt"
    exported = subprocess.run(
        [_uv(), "export", "--frozen", "--no-hashes", "--no-emit-project", "--all-extras",
         "--project", str(ROOT)],
        check=True, capture_output=True, text=True, timeout=120, env=uv_env,
    )
    constraints.write_text(exported.stdout)
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(env_dir)],
                   check=True, timeout=120, env=uv_env)
    subprocess.run(
        [_uv(), "pip", "install", "-q", "-c", str(constraints), f"{wheel}[server]"],
        check=True, timeout=300, env=uv_env,
    )
    python = env_dir / "bin" / "python"
    # Installed, not editable: the package comes from the virtualenv's site-packages; and the
    # clean virtualenv has no dev tools. (One interpreter for both: each start imports capebase.)
    where = subprocess.run(
        [str(python), "-c", "import capebase; print(capebase.__file__, flush=True); import pytest"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert "No module named 'pytest'" in where.stderr, "the clean virtualenv has dev tools"
    located = where.stdout.strip()
    assert located.startswith(str(env_dir)), located + where.stderr

    app_dir = tmp_path / "quickstart"
    app_dir.mkdir()
    (app_dir / "app.py").write_text(FILES["app.py"])
    port = _free_port()
    server = subprocess.Popen(
        [str(python), "-m", "uvicorn", "app:app", "--port", str(port)],
        cwd=app_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = _request(f"{base}/todo")
                break
            except OSError:
                assert server.poll() is None, "uvicorn exited before serving"
                assert time.monotonic() < deadline, "the Quick start did not start in 30 s"
                time.sleep(0.2)
        assert status == 200
        status, created = _request(f"{base}/todo", "POST", {"task": "buy milk"}, "alice-token")
        assert status == 201
        assert isinstance(created, dict) and created["user_id"] == "alice"
        status, listed = _request(f"{base}/todo")
        assert status == 200
        assert [row["task"] for row in listed] == ["buy milk"]  # type: ignore[union-attr]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "Traceback" not in output, output
