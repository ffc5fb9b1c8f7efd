"""Attack harness: a fresh database per kind, and the _shapes world of tests/security."""
from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import asyncmy  # type: ignore
import asyncpg  # type: ignore

KINDS = [k for k in os.environ.get("KINDS", "sqlite,postgresql,mariadb").split(",") if k]


@asynccontextmanager
async def fresh_url(kind: str) -> AsyncIterator[str]:
    name = "atk16_" + secrets.token_hex(4)
    if kind == "sqlite":
        d = tempfile.mkdtemp()
        yield f"sqlite+aiosqlite:///{d}/{name}.db"
        return
    if kind == "postgresql":
        c = await asyncpg.connect(user="postgres", host="127.0.0.1", port=5432, database="postgres")
        await c.execute(f"CREATE DATABASE {name}")
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        finally:
            await c.execute(f"DROP DATABASE {name} WITH (FORCE)")
            await c.close()
        return
    c = await asyncmy.connect(user="root", host="127.0.0.1", port=3306)
    async with c.cursor() as cur:
        await cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"mysql+asyncmy://root@127.0.0.1:3306/{name}"
    finally:
        async with c.cursor() as cur:
            await cur.execute(f"DROP DATABASE {name}")
        c.close()


def run(main):  # main(kind, url) coroutine
    async def all_kinds():
        for kind in KINDS:
            async with fresh_url(kind) as url:
                print(f"===== {kind}")
                await main(kind, url)
    asyncio.run(all_kinds())
