"""ETags and conditional requests on the routes of one row (RFC 9110): ETag on get, create
and update; If-None-Match → 304 on get; If-Match / If-None-Match → 412 on update and delete,
checked atomically with the write; a row the caller cannot read stays a 404 whatever the
headers. On each database, on the fast path and the reference."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field

from capebase import CapeBase, secret_field
from capebase.testing import app_client
from tests.apps import as_user, make_cape
from tests.models import TestModel

pytestmark = pytest.mark.usefixtures("fast_or_reference")

ALICE, BOB = as_user("alice"), as_user("bob")


class Doc(TestModel, table=True):
    """Readable by its owner and by everyone when public; writable by its owner."""

    __tablename__ = "crud_doc"

    id: int | None = Field(default=None, primary_key=True)
    owner: str
    title: str = ""
    public: bool = False
    version_note: str = secret_field(default="")


def publish(cape: CapeBase) -> None:
    cape.publish(Doc)
    cape.permission_required(Doc, owner_field="owner", actions=["*"])
    cape.permission_required(Doc, where=lambda _ctx: Doc.public == True, actions=["read"])  # noqa: E712


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app, cape = make_cape(db_url)
    publish(cape)
    async with app_client(app) as client:
        yield client


async def create(client: httpx.AsyncClient, **values: Any) -> httpx.Response:
    response = await client.post("/crud_doc", json={"owner": "alice", **values}, headers=ALICE)
    assert response.status_code == 201, response.text
    return response


async def test_etag_names_the_row_version_on_every_answer_of_one_row(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client, title="a")
    etag = created.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    row = created.json()
    got = await client.get(f"/crud_doc/{row['id']}", headers=ALICE)
    assert got.headers["ETag"] == etag
    # select= shows part of the row; the version is the row's
    part = await client.get(f"/crud_doc/{row['id']}", params={"select": "id"}, headers=ALICE)
    assert part.json() == {"id": row["id"]} and part.headers["ETag"] == etag
    same = await client.patch(f"/crud_doc/{row['id']}", json={"title": "a"}, headers=ALICE)
    assert same.headers["ETag"] == etag  # nothing changed
    changed = await client.patch(f"/crud_doc/{row['id']}", json={"title": "b"}, headers=ALICE)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    again = await client.get(f"/crud_doc/{row['id']}", headers=ALICE)
    assert again.headers["ETag"] == changed.headers["ETag"]
    # every caller who may read the row sees the same version
    await client.patch(f"/crud_doc/{row['id']}", json={"public": True}, headers=ALICE)
    mine = await client.get(f"/crud_doc/{row['id']}", headers=ALICE)
    theirs = await client.get(f"/crud_doc/{row['id']}", headers=BOB)
    assert theirs.status_code == 200 and theirs.headers["ETag"] == mine.headers["ETag"]
    listed = await client.get("/crud_doc", headers=ALICE)
    assert "ETag" not in listed.headers


async def test_a_secret_field_never_moves_the_etag(db_url: str) -> None:
    """The ETag is made of what the caller is shown: a change to a secret column alone
    cannot be detected through it."""
    app, cape = make_cape(db_url)
    publish(cape)
    async with app_client(app) as client:
        row = (await create(client, title="a")).json()
        assert "version_note" not in row
        before = (await client.get(f"/crud_doc/{row['id']}", headers=ALICE)).headers["ETag"]
        for note in ("x", "a much longer secret", ""):
            async with cape.get_privileged_session() as session:
                doc = await session.get(Doc, row["id"])
                assert doc is not None
                doc.version_note = note
                await session.commit()
            got = await client.get(f"/crud_doc/{row['id']}", headers=ALICE)
            assert got.headers["ETag"] == before
        shown = await client.patch(f"/crud_doc/{row['id']}", json={"title": "b"}, headers=ALICE)
        assert shown.headers["ETag"] != before


async def test_if_none_match_on_get(client: httpx.AsyncClient) -> None:
    row = (await create(client, title="a")).json()
    url = f"/crud_doc/{row['id']}"
    etag = (await client.get(url, headers=ALICE)).headers["ETag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*", f' {etag} ,"x"'):
        got = await client.get(url, headers={**ALICE, "If-None-Match": sent})
        assert got.status_code == 304, sent
        assert got.content == b"" and got.headers["ETag"] == etag
    for sent in ('"other"', 'W/"other"'):
        got = await client.get(url, headers={**ALICE, "If-None-Match": sent})
        assert got.status_code == 200 and got.json() == row
    # If-Match on a read: the version held, or 412
    assert (await client.get(url, headers={**ALICE, "If-Match": etag})).status_code == 200
    stale = await client.get(url, headers={**ALICE, "If-Match": '"other"'})
    assert stale.status_code == 412 and "detail" in stale.json()


async def test_if_match_on_update_and_delete(client: httpx.AsyncClient) -> None:
    row = (await create(client, title="a")).json()
    url = f"/crud_doc/{row['id']}"
    first = (await client.get(url, headers=ALICE)).headers["ETag"]
    updated = await client.patch(url, json={"title": "b"}, headers={**ALICE, "If-Match": first})
    assert updated.status_code == 200
    second = updated.headers["ETag"]
    # a writer still holding the first version is refused, and nothing changes
    for method, body in (("PATCH", {"title": "c"}), ("DELETE", None)):
        stale = await client.request(method, url, json=body,
                                     headers={**ALICE, "If-Match": first})
        assert stale.status_code == 412, method
        assert "changed" in stale.json()["detail"]
    assert (await client.get(url, headers=ALICE)).json()["title"] == "b"
    # a weak tag never matches If-Match (strong comparison)
    weak = await client.patch(url, json={"title": "c"},
                              headers={**ALICE, "If-Match": f"W/{second}"})
    assert weak.status_code == 412
    # If-None-Match on a write: 412 when it matches ("*": the row exists)
    for sent in ("*", second):
        refused = await client.patch(url, json={"title": "c"},
                                     headers={**ALICE, "If-None-Match": sent})
        assert refused.status_code == 412, sent
    other = await client.patch(url, json={"title": "c"},
                               headers={**ALICE, "If-None-Match": first})
    assert other.status_code == 200
    third = other.headers["ETag"]
    star = await client.patch(url, json={"title": "d"}, headers={**ALICE, "If-Match": "*"})
    assert star.status_code == 200
    listed = await client.patch(url, json={"title": "e"},
                                headers={**ALICE, "If-Match": f'"x", {star.headers["ETag"]}'})
    assert listed.status_code == 200
    assert (await client.delete(url, headers={**ALICE, "If-Match": third})).status_code == 412
    current = (await client.get(url, headers=ALICE)).headers["ETag"]
    assert (await client.delete(url, headers={**ALICE, "If-Match": current})).status_code == 204
    assert (await client.get(url, headers=ALICE)).status_code == 404


async def test_a_row_the_caller_cannot_read_is_a_404_whatever_the_headers(
    client: httpx.AsyncClient,
) -> None:
    """No oracle: preconditions are evaluated only on a row the caller may read, so a
    matching or failing condition cannot tell a hidden row from a missing one."""
    row = (await create(client, title="hidden")).json()
    etag = (await client.get(f"/crud_doc/{row['id']}", headers=ALICE)).headers["ETag"]
    missing = await client.get("/crud_doc/999999", headers=BOB)
    assert missing.status_code == 404
    cases = [{"If-Match": "*"}, {"If-Match": etag}, {"If-Match": '"x"'},
             {"If-None-Match": "*"}, {"If-None-Match": etag}, {"If-None-Match": '"x"'}]
    for headers in cases:
        for key in (row["id"], 999999):
            url = f"/crud_doc/{key}"
            for method, body in (("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)):
                got = await client.request(method, url, json=body, headers={**BOB, **headers})
                assert (got.status_code, got.json()) == (404, missing.json()), (method, headers)
                assert "ETag" not in got.headers
    assert (await client.get(f"/crud_doc/{row['id']}", headers=ALICE)).json()["title"] == "hidden"


async def test_a_refused_write_is_refused_before_its_condition(
    client: httpx.AsyncClient,
) -> None:
    """RFC 9110 13.2.1: the answer without the condition would not be a 2xx, so the
    condition is not evaluated: readable but not writable stays a 403."""
    row = (await create(client, title="shared", public=True)).json()
    url = f"/crud_doc/{row['id']}"
    for headers in ({"If-Match": '"stale"'}, {"If-Match": "*"}, {"If-None-Match": "*"}):
        assert (await client.patch(url, json={"title": "x"},
                                   headers={**BOB, **headers})).status_code == 403
        assert (await client.delete(url, headers={**BOB, **headers})).status_code == 403


@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
async def test_malformed_conditions_are_a_400_naming_the_header(
    client: httpx.AsyncClient, header: str
) -> None:
    row = (await create(client)).json()
    url = f"/crud_doc/{row['id']}"
    for sent in ("abc", '"a', '"a" "b"', "W/abc", '"a",,', ",".join(['"x"'] * 65)):
        for method, body in (("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)):
            got = await client.request(method, url, json=body, headers={**ALICE, header: sent})
            assert got.status_code == 400, (method, sent, got.text)
            assert header in got.json()["detail"]
    assert (await client.get(url, headers=ALICE)).status_code == 200


# -- two writers at once --------------------------------------------------------------------


class RowLock:
    """Holds the row (SQLite: the database's write lock) from another connection, so that
    both writers reach their own lock while the row is still at the version they sent."""

    def __init__(self, db_url: str, key: int) -> None:
        self.engine = create_async_engine(db_url)
        self.key = key

    async def hold(self, ready: asyncio.Event, release: asyncio.Event) -> None:
        async with self.engine.connect() as connection:
            if self.engine.dialect.name == "sqlite":
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                await connection.begin()
                await connection.execute(
                    text("SELECT id FROM crud_doc WHERE id = :k FOR UPDATE"), {"k": self.key}
                )
            ready.set()
            await release.wait()
            await connection.rollback()
        await self.engine.dispose()


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
async def test_two_writers_with_the_same_if_match_one_wins(db_url: str, method: str) -> None:
    """Two apps (two engines, as two processes) send the same If-Match at once: exactly one
    write happens, the other is refused (PATCH: 412), on every database. The compare runs on the row
    locked for the write; a compare before the lock lets both through."""
    apps = [make_cape(db_url) for _ in range(2)]
    for _, cape in apps:
        publish(cape)
    async with app_client(apps[0][0]) as one, app_client(apps[1][0]) as two:
        for round_ in range(3):
            row = (await create(one, title="start")).json()
            url = f"/crud_doc/{row['id']}"
            etag = (await one.get(url, headers=ALICE)).headers["ETag"]
            ready, release = asyncio.Event(), asyncio.Event()
            lock = RowLock(db_url, row["id"])
            holder = asyncio.create_task(lock.hold(ready, release))
            await ready.wait()
            headers = {**ALICE, "If-Match": etag}
            writers = [
                asyncio.create_task(client.request(
                    method, url, json={"title": title} if method == "PATCH" else None,
                    headers=headers,
                ))
                for client, title in ((one, "one"), (two, "two"))
            ]
            await asyncio.sleep(0.4)  # both are waiting on the lock by now
            release.set()
            answers = [await w for w in writers]
            await holder
            statuses = sorted(a.status_code for a in answers)
            # the second DELETE finds no row: a 404, as without the condition (RFC 9110
            # 13.2.1), and as for a row it may not read
            expected = [200, 412] if method == "PATCH" else [204, 404]
            assert statuses == expected, (round_, [a.text for a in answers])
            final = await one.get(url, headers=ALICE)
            if method == "PATCH":
                winner = next(a for a in answers if a.status_code == 200)
                assert final.json()["title"] == winner.json()["title"]
                assert final.headers["ETag"] == winner.headers["ETag"]
            else:
                assert final.status_code == 404
