"""``POST /_capebase/batch``: creates, updates and deletes across published tables in one
transaction; each operation answered, checked and logged as its own route would be, all or
none; on the three databases, on the fast path and the reference."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from capebase import CapeBase, CrudConfig, LimitsConfig
from capebase.testing import app_client
from tests.apps import as_user
from tests.crud._batch_app import (
    EDITOR,
    FORBIDDEN,
    HIDDEN_FROM,
    changes_after,
    last_change,
    make_app,
    stored,
)
from tests.realtime._live import SSEStream, dispatched, serve, wait_until

pytestmark = pytest.mark.usefixtures("fast_or_reference")

BATCH = "/_capebase/batch"
ALICE, BOB = as_user("alice"), as_user("bob")


def op(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"method": method, "url": url} | ({} if body is None else {"body": body})


@pytest.fixture
async def setup(db_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, CapeBase]]:
    app, cape = make_app(db_url)
    async with app_client(app) as client:
        yield client, cape


async def batch(
    client: httpx.AsyncClient, *ops: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(BATCH, json={"requests": list(ops)}, headers=headers)


async def card(client: httpx.AsyncClient, headers: dict[str, str], **values: Any) -> int:
    response = await client.post("/bulk_card", json={"title": "c", **values}, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_a_mixed_batch_across_two_tables(setup: tuple[httpx.AsyncClient, CapeBase]) -> None:
    client, cape = setup
    kept, dropped = await card(client, ALICE), await card(client, ALICE)
    before = await last_change(cape)
    response = await batch(
        client,
        op("POST", "/bulk_memo", {"id": "m1", "body": "hello"}),
        op("POST", "/bulk_card", {"title": "new", "qty": 2}),
        op("PATCH", f"/bulk_card/{kept}", {"qty": 7}),
        op("DELETE", f"/bulk_card/{dropped}"),
        op("PATCH", "/bulk_memo/m1", {"body": "edited"}),  # sees the create before it
        headers=ALICE,
    )
    assert response.status_code == 200, response.text
    answers = response.json()["responses"]
    assert [a["status"] for a in answers] == [201, 201, 200, 204, 200]
    created = answers[1]["body"]
    assert answers[0]["body"] == {"id": "m1", "body": "hello"}
    assert (created["title"], created["owner_id"]) == ("new", "alice")
    assert answers[2]["body"]["qty"] == 7 and answers[3]["body"] is None
    assert answers[4]["body"] == {"id": "m1", "body": "edited"}
    rows = await stored(cape)
    assert rows["bulk_memo"] == [{"id": "m1", "body": "edited"}]
    assert [(r["id"], r["qty"]) for r in rows["bulk_card"]] == [(kept, 7), (created["id"], 2)]
    assert answers[2]["body"] == rows["bulk_card"][0]
    assert await changes_after(cape, before) == [
        ("bulk_memo", "INSERT", "m1"), ("bulk_card", "INSERT", created["id"]),
        ("bulk_card", "UPDATE", kept), ("bulk_card", "DELETE", dropped),
        ("bulk_memo", "UPDATE", "m1"),
    ]


FAILURES = {
    # name: (operation, status), the operation placed after two that succeed
    "denied": (op("PATCH", "/bulk_card/{bobs}", {"qty": 1}), 403),  # readable, not writable
    "denied by value": (op("POST", "/bulk_card", {"title": "x", "qty": -1}), 403),
    "hidden": (op("PATCH", "/bulk_card/{hidden}", {"qty": 1}), 404),
    "hidden delete": (op("DELETE", "/bulk_card/{hidden}"), 404),
    "missing": (op("DELETE", "/bulk_card/999999"), 404),
    "not a key": (op("DELETE", "/bulk_card/abc"), 404),
    "key out of range": (op("DELETE", "/bulk_card/99999999999999999999999"), 404),
    "invalid": (op("PATCH", "/bulk_memo/m0", {"body": 5}), 422),
    "unknown field": (op("POST", "/bulk_memo", {"id": "z", "body": "x", "x": 1}), 422),
    "server-set": (op("POST", "/bulk_card", {"title": "x", "owner_id": "bob"}), 422),
    "conflict": (op("POST", "/bulk_memo", {"id": "m0", "body": "again"}), 409),
    "unpublished delete": (op("DELETE", "/bulk_memo/m0"), 400),
    "unknown table": (op("POST", "/nowhere", {"a": 1}), 400),
    "query string": (op("PATCH", "/bulk_memo/m0?x=1", {"body": "x"}), 400),
    "item POST": (op("POST", "/bulk_memo/m0", {"id": "q", "body": "x"}), 400),
    "GET": (op("GET", "/bulk_memo/m0"), 422),
    "delete with a body": (op("DELETE", "/bulk_card/{own}", {"qty": 1}), 422),
    "patch without one": (op("PATCH", "/bulk_card/{own}"), 422),
}


@pytest.mark.parametrize("failure", FAILURES)
async def test_a_failing_operation_writes_and_logs_nothing(
    setup: tuple[httpx.AsyncClient, CapeBase], failure: str
) -> None:
    client, cape = setup
    keys = {
        "bobs": await card(client, BOB, qty=5),
        "hidden": await card(client, BOB, qty=HIDDEN_FROM),
        "own": await card(client, ALICE),
    }
    assert (await client.post("/bulk_memo", json={"id": "m0", "body": "x"})).status_code == 201
    before, rows_before = await last_change(cape), await stored(cape)
    failing, status = FAILURES[failure]
    failing = {**failing, "url": failing["url"].format(**keys)}
    response = await batch(
        client,
        op("POST", "/bulk_memo", {"id": "m1", "body": "first"}),
        op("PATCH", f"/bulk_card/{keys['own']}", {"qty": 3}),
        failing,
        op("POST", "/bulk_memo", {"id": "m3", "body": "after"}),
        headers=ALICE,
    )
    assert response.status_code == status, response.text
    body = response.json()
    if status == 422:
        assert {tuple(e["loc"][:3]) for e in body["detail"]} == {("body", "requests", 2)}
    else:
        assert body["index"] == 2, body
    assert await stored(cape) == rows_before
    assert await changes_after(cape, before) == []


async def test_a_row_an_earlier_operation_hid_is_404(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    """The session's identity map must not answer for the caller's read rules: an editor who
    moves bob's card out of their own view cannot then update it in the same batch."""
    client, cape = setup
    bobs = await card(client, BOB, qty=5)
    editor = as_user("carol", EDITOR)
    alone = await batch(client, op("PATCH", f"/bulk_card/{bobs}", {"qty": HIDDEN_FROM}),
                        headers=editor)
    assert alone.status_code == 200, alone.text  # an editor may hide it...
    await batch(client, op("PATCH", f"/bulk_card/{bobs}", {"qty": 5}), headers=BOB)
    before = await last_change(cape)
    response = await batch(
        client,
        op("PATCH", f"/bulk_card/{bobs}", {"qty": HIDDEN_FROM}),
        op("PATCH", f"/bulk_card/{bobs}", {"title": "again"}),  # ...and then no longer sees it
        headers=editor,
    )
    assert (response.status_code, response.json()["index"]) == (404, 1), response.text
    assert (await stored(cape))["bulk_card"][0]["qty"] == 5
    assert await changes_after(cape, before) == []


async def test_anonymous_callers_get_401_where_their_route_would(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    client, cape = setup
    response = await batch(client, op("POST", "/bulk_memo", {"id": "a", "body": "x"}),
                           op("POST", "/bulk_card", {"title": "x"}))
    assert (response.status_code, response.json()["index"]) == (401, 1)
    assert response.headers["WWW-Authenticate"] == "Bearer"
    memo = await batch(client, op("POST", "/bulk_memo", {"id": "a", "body": FORBIDDEN}))
    assert memo.status_code == 401  # a denied anonymous write, as POST /bulk_memo answers
    assert (await stored(cape))["bulk_memo"] == []


async def test_text_keys_are_percent_encoded_as_in_their_own_urls(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    client, _cape = setup
    response = await batch(
        client,
        op("POST", "/bulk_memo", {"id": "a/b c", "body": "x"}),
        op("PATCH", "/bulk_memo/a%2Fb%20c", {"body": "y"}),
    )
    assert response.status_code == 200, response.text
    assert response.json()["responses"][1]["body"] == {"id": "a/b c", "body": "y"}


@pytest.mark.parametrize(("count", "status"), [(3, 200), (4, 413)])
async def test_the_batch_size_limit(db_url: str, count: int, status: int) -> None:
    app, cape = make_app(db_url, limits=LimitsConfig(max_batch_size=3))
    async with app_client(app) as client:
        ops = [op("POST", "/bulk_memo", {"id": f"m{i}", "body": "x"}) for i in range(count)]
        response = await batch(client, *ops)
        assert response.status_code == status, response.text
        if status == 413:
            assert "LimitsConfig.max_batch_size" in response.json()["detail"]
            assert (await stored(cape))["bulk_memo"] == []


async def test_the_body_size_limit_applies(db_url: str) -> None:
    app, cape = make_app(db_url, limits=LimitsConfig(max_body_size=300))
    async with app_client(app) as client:
        ops = [op("POST", "/bulk_memo", {"id": f"m{i}", "body": "x" * 50}) for i in range(5)]
        response = await batch(client, *ops)
        assert response.status_code == 413 and "max_body_size" in response.json()["detail"]
        assert (await stored(cape))["bulk_memo"] == []


@pytest.mark.parametrize("body", [
    b"", b"{", b"[]", b'{"requests": {}}', b'{"requests": [], "x": 1}', b'{"requests": [1]}',
    b'{"requests": [{"method": "POST"}]}', b'{"requests": [{"method": "POST", "url": 3}]}',
    b'{"requests": [{"method": "POST", "url": "/bulk_memo", "body": [1]}]}',
    b"[" * 50_000, b'{"requests": [{"method": "POST", "url": "/bulk_memo", "body": '
    + b'{"id": "a", "body": ' + b"[" * 5_000 + b"]" * 5_000 + b"}}]}",
])
async def test_malformed_batches_are_422(
    setup: tuple[httpx.AsyncClient, CapeBase], body: bytes
) -> None:
    client, _cape = setup
    response = await client.post(BATCH, content=body,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text


async def test_a_json_content_type_is_required(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    """A cross-site form can send text/plain without a preflight: refused, as on every
    generated write route."""
    client, cape = setup
    body = (b'{"requests": [{"method": "POST", "url": "/bulk_memo", '
            b'"body": {"id": "a", "body": "x"}}]}')
    response = await client.post(BATCH, content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 422
    assert (await stored(cape))["bulk_memo"] == []


async def test_an_empty_batch_is_an_empty_answer(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    client, _cape = setup
    response = await batch(client)
    assert (response.status_code, response.json()) == (200, {"responses": []})


async def test_the_route_can_be_moved_or_left_out(db_url: str) -> None:
    app, _cape = make_app(db_url, crud=CrudConfig(batch_path="/api/batch"))
    async with app_client(app) as client:
        assert (await client.post("/api/batch", json={"requests": []})).status_code == 200
        assert (await client.post(BATCH, json={"requests": []})).status_code == 404
    app, _cape = make_app(db_url, crud=CrudConfig(batch_path=None))
    async with app_client(app) as client:
        assert (await client.post(BATCH, json={"requests": []})).status_code == 404
        assert BATCH not in (await client.get("/openapi.json")).json()["paths"]


async def test_openapi_declares_the_batch_route(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    client, _cape = setup
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"][BATCH]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BatchRequest"}
    operation_schema = schema["components"]["schemas"]["BatchOperation"]
    assert operation_schema["properties"]["method"]["enum"] == ["POST", "PATCH", "DELETE"]
    assert {"200", "400", "401", "403", "404", "409", "413", "422"} <= set(operation["responses"])


async def test_a_stream_gets_each_change_once_and_nothing_of_a_failed_batch(
    db_url: str,
) -> None:
    app, cape = make_app(db_url)
    async with serve(app) as server, SSEStream(server.url, "/bulk_memo/subscribe") as got:
        async with httpx.AsyncClient(base_url=server.url) as client:
            failed = await batch(client, op("POST", "/bulk_memo", {"id": "f", "body": "x"}),
                                 op("POST", "/bulk_card", {"title": "x", "qty": -1}),
                                 headers=ALICE)
            assert failed.status_code == 403
            ok = await batch(client, op("POST", "/bulk_memo", {"id": "a", "body": "x"}),
                             op("PATCH", "/bulk_memo/a", {"body": "y"}),
                             op("POST", "/bulk_memo", {"id": "b", "body": "z"}))
            assert ok.status_code == 200, ok.text
        await dispatched(cape)
        await wait_until(lambda: len(got.messages) >= 3, what="three changes")
        assert [(m["event"], m["payload"]["id"]) for m in got.messages] == [
            ("INSERT", "a"), ("UPDATE", "a"), ("INSERT", "b")]
