"""openapi-typescript on the todo demo's OpenAPI document, and tsc on programs using its types.

``tests/clients/openapi_typescript`` is a small npm package (openapi-typescript, openapi-fetch
and TypeScript, locked). The test writes the demo's ``/openapi.json`` (``examples.todo.app``,
as ``make demo`` serves it), runs openapi-typescript on it, then type-checks ``src/todo.ts``,
which filters, groups, selects and pages with the generated ``paths`` types, and each program
of ``wrong/``, which must fail with the error its first line names (a misspelt filter, a value
of the wrong type...). The documentation's excerpt of the generated types
(docs/guides/openapi.md) must be in what openapi-typescript wrote.

Needs Node.js 20 or newer with npm, and the npm registry (or npm's cache). Without Node the
test skips, saying why, except under CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.test_typescript import MIN_NODE, _node_major, _unavailable

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(__file__).resolve().parent / "openapi_typescript"
GENERATED = PACKAGE / "generated" / "capebase-api.ts"
DOCS_PAGE = ROOT / "docs" / "guides" / "openapi.md"
DEMO_DOCUMENT = """
import json, sys
from examples.todo.app import app
json.dump(app.openapi(), sys.stdout)
"""


def _run(*args: str, cwd: Path = PACKAGE, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=500)


def demo_document() -> dict[str, object]:
    """The demo app's OpenAPI document, from a process of its own (the demo module builds
    its CapeBase when imported); the database is never opened."""
    made = _run(sys.executable, "-c", DEMO_DOCUMENT, cwd=ROOT,
                env={"TODO_DEMO_DB": "sqlite+aiosqlite://", "CAPEBASE_SECRET": "s" * 64})
    assert made.returncode == 0, made.stderr
    document: dict[str, object] = json.loads(made.stdout)
    return document


def tsc_errors(output: str) -> dict[str, list[str]]:
    """tsc's errors by file name (``wrong/x.ts(4,5): error TS2322: ...``)."""
    errors: dict[str, list[str]] = {}
    for match in re.finditer(r"^(\S+?)\(\d+,\d+\): error (TS\d+: .*)$", output, re.M):
        errors.setdefault(Path(match.group(1)).name, []).append(match.group(2))
    return errors


@pytest.mark.timeout(600)
def test_openapi_typescript_types_filter_select_and_page(tmp_path: Path) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("Node.js and npm are not installed (apt-get install nodejs npm)")
        return
    if _node_major(node) < MIN_NODE:
        _unavailable(f"Node.js {MIN_NODE} or newer is needed, found {_node_major(node)}")
    installed = _run(npm, "ci", "--prefer-offline", "--no-audit", "--no-fund")
    assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"

    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(demo_document()), encoding="utf-8")
    GENERATED.parent.mkdir(exist_ok=True)
    generator = PACKAGE / "node_modules" / "openapi-typescript" / "bin" / "cli.js"
    generated = _run(node, str(generator), str(document), "--output", str(GENERATED))
    assert generated.returncode == 0, f"openapi-typescript failed:\n{generated.stderr}"
    types = GENERATED.read_text(encoding="utf-8")

    tsc = str(PACKAGE / "node_modules" / "typescript" / "bin" / "tsc")
    checked = _run(node, tsc, "-p", "tsconfig.json")
    assert checked.returncode == 0, f"src/todo.ts does not type-check:\n{checked.stdout}"

    refused = _run(node, tsc, "-p", "tsconfig.wrong.json")
    errors = tsc_errors(refused.stdout)
    assert "capebase-api.ts" not in errors, refused.stdout
    wrong = sorted((PACKAGE / "wrong").glob("*.ts"))
    assert len(wrong) >= 5
    for program in wrong:
        expected = program.read_text(encoding="utf-8").splitlines()[0].removeprefix("// error: ")
        found = errors.get(program.name, [])
        assert any(expected in error for error in found), (
            f"{program.name} should fail with {expected!r}; tsc said {found or 'nothing'}"
        )

    excerpts = re.findall(r"```ts\n// fragment[^\n]*\n(.*?)```", DOCS_PAGE.read_text("utf-8"),
                          re.S)
    shown = [line.strip() for excerpt in excerpts for line in excerpt.splitlines()]
    assert len(shown) > 10, f"{DOCS_PAGE.name}: no excerpt of the generated types"
    written = {line.strip() for line in types.splitlines()}
    missing = [line for line in shown if line not in written]
    assert not missing, f"{DOCS_PAGE.name} shows lines openapi-typescript does not write: {missing}"
