"""Run shell commands of the guides (``alembic ...``, ``capebase ...``) in one interpreter.

A console script is a small wrapper that calls its entry point with ``sys.argv`` set; this does
the same for each command in turn, so a test pays one Python start-up and one import of the app
instead of one per command. Usage::

    python _console.py STEPS_JSON

run in the project's folder. STEPS_JSON is a list whose items are a command line
(``"alembic upgrade head"``) or ``["tables", URL]`` (the table names of URL's database). The last
line printed is ``RESULTS <json>``: one entry per step (table names sorted, or null). A failing
command ends the process with its exit status, as the console script would.
"""

from __future__ import annotations

import sys

# Like a console script, whose sys.path[0] is the virtualenv's bin: this file's folder (the
# tests) is not importable, and neither is the current one unless a tool adds it
# (alembic.ini's prepend_sys_path does).
del sys.path[0]

import asyncio  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
from importlib.metadata import entry_points  # noqa: E402
from typing import Any  # noqa: E402


def _run(command: str) -> None:
    argv = shlex.split(command)
    (entry,) = entry_points(group="console_scripts", name=argv[0])
    sys.argv = argv
    status = entry.load()()
    if status:
        sys.exit(status)


def _tables(url: str) -> list[str]:
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import create_async_engine

    async def names() -> list[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                found: list[str] = await connection.run_sync(
                    lambda sync: inspect(sync).get_table_names())
                return sorted(found)
        finally:
            await engine.dispose()

    return asyncio.run(names())


def main() -> None:
    steps = json.loads(sys.argv[1])
    results: list[Any] = []
    for step in steps:
        if isinstance(step, str):
            _run(step)
            results.append(None)
        else:
            assert step[0] == "tables", step
            results.append(_tables(step[1]))
    sys.stdout.flush()
    print("RESULTS " + json.dumps(results))


if __name__ == "__main__":
    main()
