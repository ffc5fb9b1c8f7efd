"""docs/guides/migrations.md works as written, on the Quick start app, on every database.

The commands are the guide's own shell blocks; the app is README's ``app.py`` on the test's
database, with ``create_tables=False`` as the guide says.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .blocks import DOCS, README, find_block, page_files, shell_commands

GUIDE = DOCS / "guides" / "migrations.md"
INIT = shell_commands(find_block(GUIDE, "capebase alembic init", "shell"))
MIGRATE = shell_commands(find_block(GUIDE, "alembic upgrade head  ", "shell"))
QUICK_START = page_files(README)
CONSOLE = Path(__file__).with_name("_console.py")
README_URL = '"sqlite+aiosqlite:///todos.db"'


def _sh(command: str, cwd: Path) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True,
                            timeout=180, env={**os.environ, "PATH": path})
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _commands(folder: Path, steps: list[Any]) -> list[Any]:
    """The guide's commands in one process (see _console.py): one import of the app, not one
    per command. Returns each step's result."""
    result = subprocess.run(
        [sys.executable, str(CONSOLE), json.dumps(steps)], cwd=folder,
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, f"{steps} failed:\n{result.stdout}\n{result.stderr}"
    last = result.stdout.splitlines()[-1]
    assert last.startswith("RESULTS "), result.stdout
    results: list[Any] = json.loads(last.removeprefix("RESULTS "))
    return results


def _project(folder: Path, url: str, *, create_tables: bool) -> None:
    app = QUICK_START["app.py"]
    assert README_URL in app and "    auth_provider=get_auth_context,\n)" in app
    app = app.replace(README_URL, repr(url))
    if not create_tables:
        app = app.replace("    auth_provider=get_auth_context,\n)",
                          "    auth_provider=get_auth_context,\n    create_tables=False,\n)")
    (folder / "app.py").write_text(app)
    (folder / "test_app.py").write_text(QUICK_START["test_app.py"])


def _init_commands() -> list[str]:
    commands = [c for c in INIT if not c.startswith("pip ")]
    assert commands == ["capebase alembic init --app app:cape"], commands
    return commands


def _operations(migration: Path) -> str:
    """The upgrade() body of a migration, comments and ``pass`` left out."""
    body = migration.read_text().split("def upgrade()")[1].split("def downgrade()")[0]
    lines = [line.strip() for line in body.splitlines()[1:]]
    return "\n".join(
        line for line in lines if line and not line.startswith(("#", '"""')) and line != "pass"
    )


def _autogenerate(message: str) -> str:
    return f'alembic revision --autogenerate -m "{message}"'


def _migration(folder: Path, message: str) -> Path:
    slug = message.replace(" ", "_")
    (found,) = (folder / "migrations" / "versions").glob(f"*_{slug}.py")
    return found


def test_autogenerate_apply_run_and_downgrade(db_url: str, tmp_path: Path) -> None:
    _project(tmp_path, db_url, create_tables=False)
    assert MIGRATE[0] == _autogenerate("create tables"), MIGRATE
    assert MIGRATE[1:] == ["alembic upgrade head", "uvicorn app:app"], MIGRATE
    *_, tables = _commands(tmp_path, [*_init_commands(), *MIGRATE[:2], ["tables", db_url]])
    assert "import sqlmodel" in (tmp_path / "migrations" / "script.py.mako").read_text()

    operations = _operations(_migration(tmp_path, "create tables"))
    for table in ("todo", "capebase_changes", "capebase_meta"):
        assert f"op.create_table('{table}'" in operations, operations
    assert "sqlmodel.sql.sqltypes.AutoString" in operations  # why the template imports it
    assert {"todo", "capebase_changes", "capebase_meta", "alembic_version"} <= set(tables)

    # The app starts on the migrated schema with create_tables=False, and its test passes.
    _sh("python test_app.py", tmp_path)

    *_, tables = _commands(tmp_path, [
        _autogenerate("no change"), "alembic downgrade base", ["tables", db_url],
    ])
    # The empty migration was the head: the downgrade went through it, changing nothing.
    nothing = _migration(tmp_path, "no change")
    assert _operations(nothing) == "", _operations(nothing)
    assert set(tables) <= {"alembic_version"}


def test_a_database_capebase_created_needs_no_migration(db_url: str, tmp_path: Path) -> None:
    """create_tables=True and Alembic make the same schema (DATETIME(6) on MariaDB too)."""
    _project(tmp_path, db_url, create_tables=True)
    _sh("python test_app.py", tmp_path)  # start-up creates the tables
    _commands(tmp_path, [*_init_commands(), _autogenerate("after create tables")])
    migration = _migration(tmp_path, "after create tables")
    assert _operations(migration) == "", _operations(migration)


def test_readmes_commands_are_the_guides() -> None:
    readme = shell_commands(find_block(README, "capebase alembic init", "shell"))
    assert readme == [*INIT[-1:], *MIGRATE[:2]], readme
