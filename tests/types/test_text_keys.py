"""Text primary keys and unique text columns hold what PostgreSQL and SQLite hold, on every
database and write path: keys that differ only in case, accents or trailing spaces are different
rows, and a key longer than the change log's indexed column goes through every route, the
change log, handlers and the audit trail whole."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import CapeBase
from capebase.changes.changelog import PK_INDEXED
from tests.realtime._live import serve, wait_until
from tests.writes._direct_models import caller, header_auth


class Base(SQLModel, registry=registry()):
    pass


class Word(Base, table=True):
    __tablename__ = "text_key_word"
    id: str = Field(primary_key=True, max_length=700)  # MariaDB indexes up to 768 characters
    label: str = Field(max_length=40, unique=True)


DIRECT, SESSION = caller("d", role="direct"), caller("s", role="session")
PATHS = {"direct": DIRECT, "session": SESSION}
LOOK_ALIKES = ["a", "A", "á", "a ", "\uff41"]  # the last: FULLWIDTH LATIN SMALL LETTER A


def make_app(db_url: str) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(Word)
    cape.permission_required(Word, role="*", actions=["read"])
    cape.permission_required(Word, role="direct", actions=["create", "update", "delete"])
    cape.permission_required(  # Python cannot evaluate it: these writes take the session
        Word, role="session", actions=["create", "update", "delete"],
        where=lambda _ctx: func.length(Word.label) > 0,  # type: ignore[arg-type]
    )
    return app, cape


def url(key: str) -> str:
    return f"/text_key_word/{quote(key, safe='')}"


@pytest.mark.parametrize("path", list(PATHS))
async def test_keys_differing_in_case_accents_or_trailing_spaces_are_different_rows(
    db_url: str, path: str
) -> None:
    """MariaDB's default collation would take "a", "A", "á" and "a " for one value: a 409 for the
    second key, and a filter or a key lookup answering another row."""
    app, _cape = make_app(db_url)
    headers = PATHS[path]
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        for key in LOOK_ALIKES:
            created = await client.post(
                "/text_key_word", json={"id": key, "label": key}, headers=headers
            )
            assert created.status_code == 201, (key, created.text)
            assert created.json() == {"id": key, "label": key}
        for key in LOOK_ALIKES:
            got = await client.get(url(key))
            assert got.status_code == 200 and got.json()["id"] == key, (key, got.text)
            listed = await client.get("/text_key_word", params={"label": key})
            assert [row["id"] for row in listed.json()] == [key]
        # A unique text column refuses only the very same value.
        again = await client.post(
            "/text_key_word", json={"id": "other", "label": "A"}, headers=headers
        )
        assert again.status_code == 409, again.text
        patched = await client.patch(url("A"), json={"label": "A2"}, headers=headers)
        assert patched.status_code == 200 and patched.json() == {"id": "A", "label": "A2"}
        assert (await client.delete(url("a "), headers=headers)).status_code == 204
        remaining = await client.get("/text_key_word", params={"order_by": "id"})
        assert sorted(row["id"] for row in remaining.json()) == sorted(
            k for k in LOOK_ALIKES if k != "a "
        )


@pytest.mark.parametrize("path", list(PATHS))
async def test_keys_longer_than_the_change_logs_index_are_whole_everywhere(
    db_url: str, path: str
) -> None:
    """The change log indexes at most PK_INDEXED characters of a key: a longer key is stored
    whole beside its digest, so routes, handlers and the audit trail see the key sent."""
    app, cape = make_app(db_url)
    headers = PATHS[path]
    seen: list[tuple[str, Any]] = []

    @cape.subscribe(Word)
    async def record(change: Any) -> None:
        seen.append((change.event, change.payload.id))

    lengths = [PK_INDEXED - 2, PK_INDEXED - 1, PK_INDEXED, PK_INDEXED + 1, 300, 700]
    # JSON quotes make a key of PK_INDEXED - 1 characters one character too long to index
    keys = [("é✓" * 400)[: n - 1] + str(n % 10) for n in lengths]
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        for index, key in enumerate(keys):
            created = await client.post(
                "/text_key_word", json={"id": key, "label": f"l{index}"}, headers=headers
            )
            assert created.status_code == 201, (len(key), created.text[:300])
            patched = await client.patch(url(key), json={"label": f"m{index}"}, headers=headers)
            assert patched.status_code == 200, (len(key), patched.text[:300])
            assert (await client.get(url(key))).json() == {"id": key, "label": f"m{index}"}
            assert (await client.delete(url(key), headers=headers)).status_code == 204
        expected = [(event, key) for key in keys for event in ("INSERT", "UPDATE", "DELETE")]
        await wait_until(lambda: len(seen) >= len(expected))
        assert seen == expected
        for key in keys:
            history = await cape.audit.history(Word, key)
            assert [(entry.op, entry.pk) for entry in history] == [
                ("INSERT", key), ("UPDATE", key), ("DELETE", key)
            ], len(key)
            found = await cape.audit.query(table=Word, pk=key)
            assert [entry.pk for entry in found] == [key, key, key]
