"""The TypeScript client's own suite (clients/typescript), run as ``make test`` runs the rest.

``npm ci && npm test`` there builds the package with tsc, checks the demo's copy of it, and runs
Node's test runner: unit tests, then CRUD, errors, auth, streams on both transports, live
queries and a server restart against ``python -m tests.clients.ts_app`` started with this
interpreter on SQLite. It also checks what ``npm pack`` would publish.

Needs Node.js 20 or newer with npm, and the npm registry (or npm's cache) for the locked
devDependencies. Without Node the test skips, saying why, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests._databases import is_ci

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"
MIN_NODE = 20


def _unavailable(reason: str) -> None:
    if is_ci():
        pytest.fail(f"the TypeScript client's tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def _node_major(node: str) -> int:
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    return int(version.stdout.strip().lstrip("v").split(".")[0])


def _npm(npm: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAPEBASE_PYTHON": sys.executable}
    return subprocess.run(
        [npm, *args], cwd=CLIENT, env=env, capture_output=True, text=True, timeout=500
    )


@pytest.mark.timeout(600)
def test_npm_ci_and_npm_test_pass() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("Node.js and npm are not installed (apt-get install nodejs npm)")
        return
    if _node_major(node) < MIN_NODE:
        _unavailable(f"Node.js {MIN_NODE} or newer is needed, found {_node_major(node)}")
    installed = _npm(npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")
    assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    tested = _npm(npm, "test")
    output = tested.stdout + tested.stderr
    assert tested.returncode == 0, f"npm test failed:\n{output[-20000:]}"
    assert "# fail 0" in output and "# cancelled 0" in output, output[-4000:]
