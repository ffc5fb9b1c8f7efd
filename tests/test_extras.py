"""The core install works without the optional extras, and each extra's absence is reported
with the command that installs it.

Each case runs a fresh interpreter in which the extra's packages cannot be imported (their
entries in ``sys.modules`` are ``None``, which makes ``import`` fail as if never installed).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from capebase.extras import EXTRAS

BLOCKS = {extra: [module for module, _ in modules] for extra, (_, modules) in EXTRAS.items()}


def run_without(blocked: list[str], code: str) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


CORE_APP = """
    import asyncio
    from fastapi import FastAPI
    from sqlmodel import Field, SQLModel
    from capebase import CapeBase, AuthContext
    from capebase.testing import app_client

    class Note(SQLModel, table=True):
        id: int | None = Field(default=None, primary_key=True)
        text: str

    app = FastAPI()
    cape = CapeBase(app, "sqlite+aiosqlite:///:memory:",
                    get_auth_context=lambda: AuthContext(id="u1"))
    cape.permission_required(Note, role="*", actions=["create", "read"])
    cape.publish(Note)

    async def main():
        async with app_client(app) as client:
            assert (await client.post("/note", json={"text": "hi"})).status_code == 201
            assert [n["text"] for n in (await client.get("/note")).json()] == ["hi"]
    asyncio.run(main())
    print("served")
"""


def test_the_core_serves_without_metrics_and_auth_packages() -> None:
    result = run_without(BLOCKS["metrics"] + BLOCKS["auth"], CORE_APP)
    assert result.returncode == 0, result.stderr
    assert "served" in result.stdout


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (
            "metrics",
            """
            from fastapi import FastAPI
            from capebase import CapeBase
            CapeBase(FastAPI(), "sqlite+aiosqlite:///:memory:", metrics=True)
            """,
        ),
        ("metrics", "from capebase.observability import Metrics"),
        ("auth", "from capebase import PasswordAuth"),
        ("auth", "from capebase.auth.builtin import User"),
        (
            "httpx",
            """
            import asyncio
            from fastapi import FastAPI
            from capebase.testing import app_client
            async def main():
                async with app_client(FastAPI()):
                    pass
            asyncio.run(main())
            """,
        ),
    ],
)
def test_a_missing_extra_names_the_install_command(extra: str, code: str) -> None:
    result = run_without(BLOCKS.get(extra, [extra]), code)
    assert result.returncode == 1
    assert "MissingExtraError" in result.stderr
    command = "pip install httpx" if extra == "httpx" else f"pip install 'capebase[{extra}]'"
    assert command in result.stderr
