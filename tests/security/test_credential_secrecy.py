"""Credentials of capebase's own tables never leave the database.

OWASP API Security Top 10 (2023): API3 Broken Object Property Level Authorization (excessive
data exposure of sensitive properties). Issue 16, item 7: the built-in ``User.password_hash``
was not a secret field, so a change made through a capebase session carried it to the change
log, the audit trail (``/_capebase/audit``), handlers, streams and, published, responses.

Every credential column of capebase's own tables (found by name, so a new one is covered) must
be secret; and with both auth tables published, written through every capture path (unit of
work, bulk statements, generated routes, the auth routes themselves), none of the values ever
stored in them appears in any of those places.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import delete, func, insert, select, update
from sqlmodel import col

import capebase
from capebase import CapeBase, ModelChange, PasswordAuth
from capebase.auth.builtin import RefreshToken, User
from capebase.auth.builtin import metadata as auth_metadata
from capebase.changes.changelog import changes
from capebase.observability import is_secret
from tests.auth._support import FAST_HASH, PASSWORD, SECRET, bearer, login, signup
from tests.realtime._live import SSEStream, dispatched, serve, wait_until

CREDENTIAL = re.compile(r"hash|secret|password|passwd|token|salt|credential|api_?key", re.I)
"""Column names that hold a credential, or something that verifies one."""

ADMIN = ("admin@example.com", "a long admin pass phrase")
TABLES = ("capebase_users", "capebase_refresh_tokens")


def test_every_credential_column_of_capebases_own_tables_is_secret() -> None:
    columns = [
        (table.name, column)
        for metadata in (capebase.metadata, auth_metadata)
        for table in metadata.tables.values()
        for column in table.columns
        if CREDENTIAL.search(column.name)
    ]
    names = {f"{table}.{column.name}" for table, column in columns}
    assert {"capebase_users.password_hash", "capebase_refresh_tokens.token_hash"} <= names
    assert [f"{t}.{c.name}" for t, c in columns if not is_secret(c)] == []


def _app(db_url: str, seen: list[str]) -> tuple[FastAPI, CapeBase]:
    """Both auth tables published to admins, the audit trail on, handlers recording."""
    auth = PasswordAuth(secret=SECRET, password_hash=FAST_HASH, initial_admin=ADMIN)
    app = FastAPI()
    cape = CapeBase(app, db_url, auth=auth, audit=True)
    for model in (User, RefreshToken):
        cape.publish(model)
        cape.permission_required(model, role="admin", actions=["*"])

        @cape.subscribe(model)
        async def record(change: ModelChange[Any]) -> None:
            seen.append(f"{change!r} {change.payload.model_dump()!r} {change.new!r}")

    return app, cape


def _user(n: int, password_hash: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "email": f"user{n}@example.com",
            "password_hash": password_hash, "created_at": _later()}


async def test_credentials_never_leave_the_database(db_url: str) -> None:
    seen: list[str] = []  # everything that left: handler calls, responses, stream events
    written: list[str] = []  # every credential value capebase was asked to store
    app, cape = _app(db_url, seen)

    def credential(length: int = 255) -> str:
        value = f"$argon2id$v=19$m=1024,t=1,p=1${uuid.uuid4().hex}{uuid.uuid4().hex}"
        written.append(value[-length:])
        return written[-1]

    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        assert (await signup(client, "alice@example.com")).status_code == 201
        signed_in = await login(client, ADMIN[0], ADMIN[1])
        admin = bearer(signed_in.json()["access_token"])
        streams = [
            SSEStream(live.url, f"/{table}/subscribe", headers=admin)
            for table in TABLES
        ]
        opened = [await stream.__aenter__() for stream in streams]
        try:
            assert [got.status for got in opened] == [200, 200]
            await _write_everywhere(cape, client, admin, credential, seen)
            alice = await login(client, "alice@example.com", PASSWORD)
            assert alice.status_code == 200
            seen.append(alice.text)  # the auth routes' own answers
            seen.append((await client.get("/auth/me", headers=admin)).text)

            await dispatched(cape)
            for table, got in zip(TABLES, opened, strict=True):
                last = await _last_change(cape, table)
                await wait_until(
                    lambda got=got, last=last: last in got.ids or got.ended.is_set(),
                    what=f"the {table} stream to reach change {last}",
                )
                assert last in got.ids, got
            for got in opened:
                seen += [repr(m) for m in got.messages]
            audit = await client.get("/_capebase/audit", params={"limit": 1000}, headers=admin)
            assert audit.status_code == 200
            seen.append(audit.text)
        finally:
            for stream in streams:
                await stream.__aexit__(None, None, None)

        async with cape.engine.connect() as connection:
            # Each value in full (a Row's repr shortens long strings).
            log = [" ".join(map(str, row)) for row in (await connection.execute(select(changes)))]
            stored = (await connection.execute(select(User.password_hash))).scalars().all()
            stored_tokens = (await connection.execute(select(RefreshToken.token_hash))).all()
    secrets = {*written, *stored, *(row[0] for row in stored_tokens)}

    # The writes happened and were seen: every path logged, every sink got something.
    ops = {(t, op) for entry in audit.json() for t, op in [(entry["table"], entry["op"])]}
    assert {(t, op) for t in ("capebase_users", "capebase_refresh_tokens")
            for op in ("INSERT", "UPDATE", "DELETE")} <= ops, ops
    assert all(len(got.messages) >= 3 for got in opened), [got.ids for got in opened]
    assert len(stored_tokens) >= 3 and len(written) >= 10

    for place, texts in (("the change log", log), ("responses, handlers, streams", seen)):
        leaked = [s for s in secrets for text in texts if s in text]
        assert leaked == [], f"credentials in {place}"
        named = [t for t in texts if "password_hash" in t or "token_hash" in t]
        assert named == [], f"credential columns named in {place}"


async def _write_everywhere(
    cape: CapeBase,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    credential: Any,
    seen: list[str],
) -> None:
    """Write credentials through every path that captures changes."""
    alice_id = (await client.get("/capebase_users", params={"email": "alice@example.com"},
                                 headers=admin)).json()[0]["id"]
    # The unit of work: insert, update, delete.
    async with cape.get_privileged_session() as session:
        bob = User(email="bob@example.com", password_hash=credential())
        token = RefreshToken(user_id=alice_id, family_id=str(uuid.uuid4()),
                             token_hash=credential(64), expires_at=_later())
        session.add_all([bob, token])
        await session.commit()
        bob.password_hash = credential()
        token.token_hash = credential(64)
        await session.commit()
        await session.delete(token)
        await session.commit()
    # Bulk statements: insert with a list, update by condition and by primary keys, delete.
    async with cape.get_privileged_session() as session:
        rows = [_user(n, credential()) for n in range(2)]
        await session.execute(insert(User), rows)
        await session.execute(
            update(User).where(col(User.email) == "bob@example.com").values(
                password_hash=credential()
            )
        )
        await session.execute(
            update(User), [{"id": row["id"], "password_hash": credential()} for row in rows]
        )
        await session.execute(insert(RefreshToken), [{
            "id": str(uuid.uuid4()), "user_id": alice_id, "family_id": str(uuid.uuid4()),
            "token_hash": credential(64), "expires_at": _later(), "created_at": _later(),
        }])
        await session.execute(update(RefreshToken).where(col(RefreshToken.user_id) == alice_id)
                              .values(token_hash=credential(64)))
        await session.execute(delete(User).where(col(User.id) == rows[0]["id"]))
        await session.commit()
    # The generated routes, as an admin.
    created = await client.post("/capebase_users", headers=admin, json={
        "email": "carol@example.com", "password_hash": credential()})
    assert created.status_code == 201, created.text
    carol = created.json()["id"]
    responses = [
        created,
        await client.patch(f"/capebase_users/{carol}", headers=admin,
                           json={"password_hash": credential()}),
        await client.get(f"/capebase_users/{carol}", headers=admin),
        await client.get("/capebase_users", headers=admin),
        await client.get("/capebase_refresh_tokens", headers=admin),
        await client.delete(f"/capebase_users/{carol}", headers=admin),
    ]
    assert [r.status_code for r in responses] == [201, 200, 200, 200, 200, 204]
    seen += [r.text for r in responses]


async def _last_change(cape: CapeBase, table: str) -> int:
    async with cape.engine.connect() as connection:
        query = select(func.max(changes.c.id)).where(changes.c.table_name == table)
        last: int = (await connection.execute(query)).scalar_one()
    return last


def _later() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=1)
