"""Every ```python block of our README.md runs as written.

A block's first line says how: ``# app.py`` / ``# test_app.py`` are the quick start's files
(the app must import, its test must pass twice on the same database); ``# continues app.py``
runs after app.py's source; ``# fragment`` blocks are compiled only (they need a server or
names from around them); any other block runs alone in an empty directory.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)
FILES = {
    match.group(1): block
    for block in BLOCKS
    if (match := re.match(r"# (\w+\.py)\b", block)) and not block.startswith("# continues")
}


def _run(workdir: Path, script: str) -> None:
    result = subprocess.run(
        [sys.executable, script], cwd=workdir, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"


def _label(block: str) -> str:
    return (block.splitlines() or ["(empty)"])[0][:40]


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{n}" for n in range(1, len(BLOCKS) + 1)])
def test_block_runs(block: str, tmp_path: Path) -> None:
    first = _label(block)
    if first.startswith("# fragment"):
        compile(block, first, "exec")
    elif first.startswith("# continues "):
        base = first.split()[2]
        (tmp_path / "block.py").write_text(FILES[base] + "\n\n" + block)
        _run(tmp_path, "block.py")
    elif re.match(r"# \w+\.py", first):
        compile(block, first, "exec")  # the quick start files run in the test below
    else:
        (tmp_path / "block.py").write_text(block)
        _run(tmp_path, "block.py")


def test_quick_start_app_imports_and_its_test_passes_twice(tmp_path: Path) -> None:
    assert {"app.py", "test_app.py"} <= FILES.keys(), "the quick start blocks are missing"
    for name in ("app.py", "test_app.py"):
        (tmp_path / name).write_text(FILES[name])
    (tmp_path / "load.py").write_text("import app\n")
    _run(tmp_path, "load.py")
    _run(tmp_path, "test_app.py")
    _run(tmp_path, "test_app.py")  # the database persists between runs
