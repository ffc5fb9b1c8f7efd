"""README's Quick start runs as written: ``test_app.py`` (which imports ``app.py``) passes twice
on the same database. Every other block of README.md runs in tests/docs/test_code_blocks.py, with
the rules in tests/docs/blocks.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.docs.blocks import README, page_files

FILES = page_files(README)


def _run(workdir: Path, script: str) -> None:
    result = subprocess.run(
        [sys.executable, script], cwd=workdir, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"


def test_quick_start_app_imports_and_its_test_passes_twice(tmp_path: Path) -> None:
    assert {"app.py", "test_app.py"} <= FILES.keys(), "the quick start blocks are missing"
    for name in ("app.py", "test_app.py"):
        (tmp_path / name).write_text(FILES[name])
    _run(tmp_path, "test_app.py")  # it imports app.py first
    _run(tmp_path, "test_app.py")  # the database persists between runs
