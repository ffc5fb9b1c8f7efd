"""docs/guides/migrations.md works as written, on the Quick start app, on every database.

The commands are the guide's own shell blocks; the app is README's ``app.py`` on the test's
database, with ``create_tables=False`` as the guide says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .blocks import DOCS, README, find_block, page_files, shell_commands

GUIDE = DOCS / "guides" / "migrations.md"
INIT = shell_commands(find_block(GUIDE, "capebase alembic init", "shell"))
MIGRATE = shell_commands(find_block(GUIDE, "alembic upgrade head  ", "shell"))
QUICK_START = page_files(README)
README_URL = '"sqlite+aiosqlite:///todos.db"'


def _sh(command: str, cwd: Path) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True,
                            timeout=180, env={**os.environ, "PATH": path})
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _project(folder: Path, url: str, *, create_tables: bool) -> None:
    app = QUICK_START["app.py"]
    assert README_URL in app and "    auth_provider=get_auth_context,\n)" in app
    app = app.replace(README_URL, repr(url))
    if not create_tables:
        app = app.replace("    auth_provider=get_auth_context,\n)",
                          "    auth_provider=get_auth_context,\n    create_tables=False,\n)")
    (folder / "app.py").write_text(app)
    (folder / "test_app.py").write_text(QUICK_START["test_app.py"])


def _init(folder: Path) -> None:
    commands = [c for c in INIT if not c.startswith("pip ")]
    assert commands == ["capebase alembic init --app app:cape"], commands
    for command in commands:
        _sh(command, folder)


def _operations(migration: Path) -> str:
    """The upgrade() body of a migration, comments and ``pass`` left out."""
    body = migration.read_text().split("def upgrade()")[1].split("def downgrade()")[0]
    lines = [line.strip() for line in body.splitlines()[1:]]
    return "\n".join(
        line for line in lines if line and not line.startswith(("#", '"""')) and line != "pass"
    )


def _autogenerate(folder: Path, message: str) -> Path:
    _sh(f'alembic revision --autogenerate -m "{message}"', folder)
    slug = message.replace(" ", "_")
    (found,) = (folder / "migrations" / "versions").glob(f"*_{slug}.py")
    return found


def _tables(folder: Path, url: str) -> set[str]:
    script = (
        "import asyncio, sys\n"
        "from sqlalchemy import inspect\n"
        "from sqlalchemy.ext.asyncio import create_async_engine\n"
        "async def main():\n"
        f"    engine = create_async_engine({url!r})\n"
        "    async with engine.connect() as c:\n"
        "        print(','.join(await c.run_sync(lambda s: inspect(s).get_table_names())))\n"
        "    await engine.dispose()\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return set(filter(None, out.strip().split(",")))


def test_autogenerate_apply_run_and_downgrade(db_url: str, tmp_path: Path) -> None:
    _project(tmp_path, db_url, create_tables=False)
    _init(tmp_path)
    assert "import sqlmodel" in (tmp_path / "migrations" / "script.py.mako").read_text()
    assert MIGRATE[0] == 'alembic revision --autogenerate -m "create tables"', MIGRATE
    assert MIGRATE[1:] == ["alembic upgrade head", "uvicorn app:app"], MIGRATE

    first = _autogenerate(tmp_path, "create tables")
    operations = _operations(first)
    for table in ("todo", "capebase_changes", "capebase_meta"):
        assert f"op.create_table('{table}'" in operations, operations
    assert "sqlmodel.sql.sqltypes.AutoString" in operations  # why the template imports it
    _sh(MIGRATE[1], tmp_path)
    assert {"todo", "capebase_changes", "capebase_meta", "alembic_version"} <= _tables(
        tmp_path, db_url)

    # The app starts on the migrated schema with create_tables=False, and its test passes.
    _sh("python test_app.py", tmp_path)

    nothing = _autogenerate(tmp_path, "no change")
    assert _operations(nothing) == "", _operations(nothing)
    nothing.unlink()

    _sh("alembic downgrade base", tmp_path)
    assert _tables(tmp_path, db_url) <= {"alembic_version"}


def test_a_database_capebase_created_needs_no_migration(db_url: str, tmp_path: Path) -> None:
    """create_tables=True and Alembic make the same schema (DATETIME(6) on MariaDB too)."""
    _project(tmp_path, db_url, create_tables=True)
    _sh("python test_app.py", tmp_path)  # start-up creates the tables
    _init(tmp_path)
    migration = _autogenerate(tmp_path, "after create tables")
    assert _operations(migration) == "", _operations(migration)


def test_readmes_commands_are_the_guides() -> None:
    readme = shell_commands(find_block(README, "capebase alembic init", "shell"))
    assert readme == [*INIT[-1:], *MIGRATE[:2]], readme
