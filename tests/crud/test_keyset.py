"""Keyset paging's answers: the ``Link`` of the next page keeps the query, ``envelope=true``,
``X-Total-Count`` with a cursor, the 400s of a bad cursor, and the read rules over forged
cursors (a cursor only ever narrows what the caller may read). On each database, on the fast
path and the reference."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capebase.testing import app_client
from tests._hypothesis import scaled
from tests.apps import make_cape
from tests.crud.test_list_query import ROWS, insert_rows
from tests.models import Item

pytestmark = pytest.mark.usefixtures("fast_or_reference")

HIDDEN_OWNER = "carol"
"""The read rule: every row but carol's (ids 5 and 6)."""
VISIBLE = [row for row in ROWS if row.owner_id != HIDDEN_OWNER]


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, where=lambda _ctx: Item.owner_id != HIDDEN_OWNER,
                             actions=["read"])
    async with app_client(app) as client:
        await insert_rows(cape, ROWS)
        yield client


def next_url(response: httpx.Response) -> str | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    found = re.fullmatch(r'<(/crud_item\?[^>]+)>; rel="next"', link)
    assert found, link
    return found.group(1)


def cursor(order: str, values: list[Any]) -> str:
    text = json.dumps({"o": order, "v": values})
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def walk(client: httpx.AsyncClient, params: list[tuple[str, str]]) -> list[list[int]]:
    pages = []
    response = await client.get("/crud_item", params=params)
    while True:
        assert response.status_code == 200, response.text
        pages.append([row["id"] for row in response.json()])
        url = next_url(response)
        if url is None:
            return pages
        response = await client.get(url)


async def test_pages_follow_the_link_and_keep_the_query(client: httpx.AsyncClient) -> None:
    assert await walk(client, [("order_by", "-qty"), ("limit", "2")]) == [[3, 2], [1, 4]]
    # the filters, boolean groups and select are carried into the next page's link
    params = [("or", "(qty__gte=5,name=Apple)"), ("not.or", "(id=3)"), ("limit", "1"),
              ("select", "id"), ("order_by", "name")]
    assert await walk(client, params) == [[1], [2]]
    first = await client.get("/crud_item", params=params)
    link = first.headers["Link"]
    for part in ("or=%28qty__gte%3D5%2Cname%3DApple%29", "not.or=", "select=id", "limit=1",
                 "order_by=name", "after="):
        assert part in link, part
    # offset paging stays, and its next page is a cursor (which does not take an offset)
    offset = await client.get("/crud_item", params={"offset": "1", "limit": "2"})
    assert [r["id"] for r in offset.json()] == [2, 3]
    url = next_url(offset)
    assert url is not None and "offset" not in url
    assert [r["id"] for r in (await client.get(url)).json()] == [4]
    # escaped names are still after and offset; what the client escaped stays escaped,
    # what it did not (a lenient server lets "<" through) is escaped, never ending the link
    raw = await client.get("/crud_item?%6Fffset=1&limit=1&name__nin=Caf%C3%A9,x<y")
    assert raw.status_code == 200, raw.text
    assert [r["id"] for r in raw.json()] == [2]
    url = next_url(raw)
    assert url is not None and "ffset" not in url and "Caf%C3%A9,x%3Cy" in url, url
    assert [r["id"] for r in (await client.get(url)).json()] == [3]
    # no next page: no link; limit=0 has none either
    assert "Link" not in (await client.get("/crud_item")).headers
    assert "Link" not in (await client.get("/crud_item", params={"limit": "0"})).headers


async def test_envelope_and_count(client: httpx.AsyncClient) -> None:
    first = await client.get("/crud_item", params={"limit": "3", "envelope": "true",
                                                   "count": "true"})
    body = first.json()
    assert [r["id"] for r in body["items"]] == [1, 2, 3] and isinstance(body["next"], str)
    assert first.headers["X-Total-Count"] == "4"
    rest = await client.get("/crud_item", params={"limit": "3", "envelope": "true",
                                                  "count": "true", "after": body["next"]})
    # X-Total-Count counts the whole listing, not what is left after the cursor
    assert rest.headers["X-Total-Count"] == "4"
    assert rest.json() == {"items": [rest.json()["items"][0]], "next": None}
    assert rest.json()["items"][0]["id"] == 4
    assert "Link" not in rest.headers


async def test_a_cursor_holds_the_sort_values_only(client: httpx.AsyncClient) -> None:
    """The cursor carries the last row's values of the sort keys, nothing else of it."""
    response = await client.get("/crud_item", params={"order_by": "-qty", "limit": "1"})
    raw = response.headers["Link"].split("after=")[1].split(">")[0]
    decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    assert decoded == {"o": "-qty,id", "v": ["10", "3"]}


BAD_CURSORS = [
    ("!!!", "not a cursor"),
    ("bm90IGpzb24", "not a cursor"),  # "not json"
    (base64.urlsafe_b64encode(b"[1, 2]").decode(), "not a cursor"),
    (cursor("id", [1]), "not a cursor"),  # a number, not its text
    (cursor("-qty,id", ["1", "1"]), "order_by=-qty,id"),  # another order
    (cursor("id", ["1", "2"]), "order_by=id"),  # too many values
    (cursor("id", ["x"]), "'x' is no value of 'id'"),
    (cursor("id", [None]), "'id' cannot be null"),
    ("a" * 5000, "longer than"),
]


@pytest.mark.parametrize(("raw", "problem"), BAD_CURSORS)
async def test_a_bad_cursor_is_a_400_naming_the_problem(
    client: httpx.AsyncClient, raw: str, problem: str
) -> None:
    response = await client.get("/crud_item", params={"after": raw})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert "cursor" in detail and problem in detail, detail


@pytest.mark.parametrize("order", ["name", "note", "-name"])
async def test_a_cursor_with_a_lone_surrogate_is_a_400(
    client: httpx.AsyncClient, order: str
) -> None:
    """JSON's ``\\ud800`` decodes to text no database takes (it reached the driver: 500)."""
    for values in (["\ud800", "1"], ["a\udfff", "1"]):
        response = await client.get(
            "/crud_item", params={"order_by": order, "after": cursor(f"{order},id", values)}
        )
        assert response.status_code == 400, response.text
        assert "not a cursor" in response.json()["detail"]


async def test_after_and_offset_do_not_combine(client: httpx.AsyncClient) -> None:
    response = await client.get("/crud_item", params={"after": cursor("id", ["1"]),
                                                      "offset": "1"})
    assert response.status_code == 400 and "offset" in response.json()["detail"]


async def test_a_cursor_cannot_sort_on_what_order_by_refuses(client: httpx.AsyncClient) -> None:
    response = await client.get("/crud_item", params={"order_by": "nope",
                                                      "after": cursor("nope,id", ["1", "1"])})
    assert response.status_code == 400 and "order_by" in response.json()["detail"]


def values(valid: list[str], nonsense: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Mostly values the field can hold (of visible rows, hidden rows, or none), sometimes
    null or nonsense."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(valid),
                     st.none(), nonsense)


VALUES = {
    "id": values([str(i) for i in range(-1, 9)], st.text(max_size=3)),
    "qty": values([str(i) for i in (-3, 0, 1, 3, 5, 7, 10, 12)], st.just("1e3")),
    "name": values([r.name for r in ROWS] + ["", "Zz"], st.text(max_size=4)),
    "note": values([str(r.note) for r in ROWS], st.just("x")),
    "active": values(["true", "false"], st.just("maybe")),
}


def test_forged_cursors_never_widen_what_is_read(db_url: str) -> None:
    """Whatever a well-formed cursor holds (values of hidden rows, values no row has, nulls,
    nonsense), the answer is a 200 with rows the caller may read or a 400: never a hidden
    row, never a 500."""
    app, cape = make_cape(db_url)
    cape.publish(Item)
    cape.permission_required(Item, where=lambda _ctx: Item.owner_id != HIDDEN_OWNER,
                             actions=["read"])
    visible = {row.id for row in VISIBLE}
    statuses: Counter[int] = Counter()
    runner = asyncio.Runner()
    client_context = app_client(app)
    client = runner.run(client_context.__aenter__())
    try:
        runner.run(insert_rows(cape, ROWS))

        @settings(max_examples=scaled(60))
        @given(
            names=st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=2, unique=True),
            directions=st.lists(st.booleans(), min_size=2, max_size=2),
            data=st.data(),
        )
        def forged(names: list[str], directions: list[bool], data: st.DataObject) -> None:
            keys = [("-" if d else "") + n for n, d in zip(names, directions, strict=False)]
            order = ",".join(keys)
            full = order if "id" in names else order + ",id"
            sorted_names = [k.lstrip("-") for k in full.split(",")]
            values = [data.draw(VALUES[n]) for n in sorted_names]
            response = runner.run(client.get(
                "/crud_item", params={"order_by": order, "after": cursor(full, values)}
            ))
            assert response.status_code in (200, 400), response.text
            statuses[response.status_code] += 1
            if response.status_code == 200:
                got = {row["id"] for row in response.json()}
                assert got <= visible
                statuses[-1] += bool(got)

        forged()
    finally:
        runner.run(client_context.__aexit__(None, None, None))
        runner.close()
    examples = scaled(60)
    assert statuses[400] >= 0.1 * examples and statuses[-1] >= 0.2 * examples, statuses
