"""Every text primary key has a URL: ``/`` in a key is sent as ``%2F``; the key ``subscribe``
is the one ``GET /{table}/subscribe`` cannot name while the stream is published (the stream
has that path), and is read through the list instead.
"""

from __future__ import annotations

import httpx
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase.testing import app_client
from tests.apps import make_cape
from tests.realtime._live import SSEStream, serve, wait_until


class KeysModel(SQLModel, registry=registry()):
    __test__ = False


class Page(KeysModel, table=True):
    __tablename__ = "keys_page"

    path: str = Field(primary_key=True, max_length=100)
    title: str = ""


KEYS = ["a/b", "/lead", "trail/", "a//b/subscribe", "%2F", "x?y#z", "sp ace", "é/✓", "a\nb", "\n"]


def url(key: str) -> str:
    """The item URL of ``key``, percent-encoded as a client encodes a path segment."""
    from urllib.parse import quote

    return f"/keys_page/{quote(key, safe='')}"


async def test_keys_with_slashes_are_reachable(db_url: str) -> None:
    """Regression: ``GET /keys_page/a%2Fb`` was a 404 (the server decodes ``%2F`` before
    routing, and ``{path}`` matched no ``/``), so such a row could be neither read, updated
    nor deleted."""
    app, cape = make_cape(db_url)
    cape.publish(Page)
    cape.permission_required(Page, actions=["*"])
    async with app_client(app) as client:
        for key in KEYS:
            response = await client.post("/keys_page", json={"path": key, "title": "t"})
            assert response.status_code == 201, (key, response.text)
            assert (await client.get(url(key))).json() == {"path": key, "title": "t"}
            response = await client.patch(url(key), json={"title": "u"})
            assert response.json() == {"path": key, "title": "u"}, (key, response.text)
        assert sorted(r["path"] for r in (await client.get("/keys_page")).json()) == sorted(KEYS)
        for key in KEYS:
            assert (await client.delete(url(key))).status_code == 204, key
            assert (await client.get(url(key))).status_code == 404, key
        # no key is empty: the list's path with a slash is not an item
        assert (await client.get("/keys_page/", follow_redirects=True)).json() == []


async def test_the_key_subscribe_is_read_through_the_list(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Page)
    cape.permission_required(Page, actions=["*"])
    async with (
        serve(app) as live,
        httpx.AsyncClient(base_url=live.url) as client,
        SSEStream(live.url, "/keys_page/subscribe") as stream,  # GET is the stream
    ):
        response = await client.post("/keys_page", json={"path": "subscribe", "title": "t"})
        assert response.status_code == 201, response.text
        response = await client.patch("/keys_page/subscribe", json={"title": "u"})
        assert response.json() == {"path": "subscribe", "title": "u"}, response.text
        listed = (await client.get("/keys_page", params={"path": "subscribe"})).json()
        assert listed == [{"path": "subscribe", "title": "u"}]
        assert (await client.delete("/keys_page/subscribe")).status_code == 204
        assert (await client.get("/keys_page")).json() == []
        await wait_until(lambda: len(stream.messages) == 3, what="the three changes")
        assert [m["event"] for m in stream.messages] == ["INSERT", "UPDATE", "DELETE"]

    # without the stream, the key's own URL reads it
    app, cape = make_cape(db_url)
    cape.publish(Page, routes=["create", "get"])
    cape.permission_required(Page, actions=["*"])
    async with app_client(app) as client:
        await client.post("/keys_page", json={"path": "subscribe", "title": "t"})
        response = await client.get("/keys_page/subscribe")
        assert response.json() == {"path": "subscribe", "title": "t"}, response.text
