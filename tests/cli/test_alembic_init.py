"""``capebase alembic init``: what it writes, and what it refuses with a message (exit 1).

The migrations it sets up are run on the three databases in tests/docs/test_migrations.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from capebase.cli import main
from capebase.cli.alembic_init import init_alembic
from capebase.extras import MissingExtraError


def _cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "capebase.cli", "alembic", "init", *args],
                          cwd=folder, capture_output=True, text=True, timeout=120)


def test_writes_an_env_py_that_imports_the_named_capebase(tmp_path: Path) -> None:
    written = init_alembic("db/migrations", app="myproject.main:backend", check=False,
                           root=tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "alembic.ini", "db/migrations/env.py", "db/migrations/script.py.mako"]
    assert (tmp_path / "db/migrations/versions").is_dir()
    env = (tmp_path / "db/migrations/env.py").read_text()
    assert "from myproject.main import backend as cape" in env
    compile(env, "env.py", "exec")
    assert "script_location = db/migrations" in (tmp_path / "alembic.ini").read_text()
    assert "import sqlmodel" in (tmp_path / "db/migrations/script.py.mako").read_text()


def test_refuses_a_name_that_is_not_a_capebase(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("cape = 1\n")
    result = _cli(tmp_path)
    assert result.returncode == 1
    assert "app.cape is int, not a CapeBase" in result.stderr
    assert not (tmp_path / "alembic.ini").exists()


def test_refuses_an_app_it_cannot_import(tmp_path: Path) -> None:
    result = _cli(tmp_path, "--app", "nowhere:cape")
    assert result.returncode == 1 and "cannot import 'nowhere'" in result.stderr


def test_refuses_a_malformed_app(tmp_path: Path) -> None:
    result = _cli(tmp_path, "--app", "app")
    assert result.returncode == 1 and "expected module:name" in result.stderr


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text("")
    result = _cli(tmp_path, "--no-check")
    assert result.returncode == 1 and "alembic.ini exists" in result.stderr
    assert (tmp_path / "alembic.ini").read_text() == ""


def test_without_alembic_it_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "alembic" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install 'capebase\[alembic\]'"):
        init_alembic(root=tmp_path, check=False)
    monkeypatch.chdir(tmp_path)
    assert main(["alembic", "init", "--no-check"]) == 1
    assert "pip install 'capebase[alembic]'" in capsys.readouterr().err
