"""``POST /{table}`` with a JSON array: every row created or none, each validated, filled and
checked as a single create, each logged once; on the three databases, on the fast path and
the reference."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlmodel import Field

from capebase import CapeBase, LimitsConfig
from capebase.testing import app_client
from tests.apps import as_user, make_cape
from tests.crud._batch_app import (
    FORBIDDEN,
    changes_after,
    last_change,
    make_app,
    stored,
)
from tests.models import TestModel
from tests.realtime._live import SSEStream, dispatched, serve, wait_until

pytestmark = pytest.mark.usefixtures("fast_or_reference")

ALICE = as_user("alice")


@pytest.fixture
async def setup(db_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, CapeBase]]:
    app, cape = make_app(db_url)
    async with app_client(app) as client:
        yield client, cape


async def test_rows_are_created_in_order_with_server_set_fields_and_one_change_each(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    client, cape = setup
    before = await last_change(cape)
    rows = [{"title": f"t{i}", "qty": i} for i in range(5)]
    response = await client.post("/bulk_card", json=rows, headers=ALICE)
    assert response.status_code == 201, response.text
    created = response.json()
    assert [(r["title"], r["qty"], r["owner_id"]) for r in created] == [
        (f"t{i}", i, "alice") for i in range(5)
    ]
    ids = [r["id"] for r in created]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert (await stored(cape))["bulk_card"] == created
    assert await changes_after(cape, before) == [("bulk_card", "INSERT", i) for i in ids]
    # the single create is unchanged
    one = await client.post("/bulk_card", json={"title": "one"}, headers=ALICE)
    assert one.status_code == 201 and one.json()["title"] == "one", one.text


@pytest.mark.parametrize("failing", ["denied", "invalid", "conflict", "server-set"])
async def test_a_failing_row_in_the_middle_writes_and_logs_nothing(
    setup: tuple[httpx.AsyncClient, CapeBase], failing: str
) -> None:
    client, cape = setup
    await client.post("/bulk_card", json={"title": "x", "label": "taken"}, headers=ALICE)
    before, rows_before = await last_change(cape), await stored(cape)
    bad = {
        "denied": {"title": "neg", "qty": -1},  # the write rule wants qty >= 0
        "invalid": {"title": "bad", "qty": "3"},  # strict JSON: a string is no integer
        "conflict": {"title": "dup", "label": "taken"},
        "server-set": {"title": "spoof", "owner_id": "bob"},  # an auth field
    }[failing]
    rows = [{"title": "a"}, {"title": "b"}, bad, {"title": "d"}]
    response = await client.post("/bulk_card", json=rows, headers=ALICE)
    expected = {"denied": 403, "invalid": 422, "conflict": 409, "server-set": 422}[failing]
    assert response.status_code == expected, response.text
    body = response.json()
    if expected == 422:
        assert {tuple(e["loc"][:2]) for e in body["detail"]} == {("body", 2)}, body
    else:
        assert body["index"] == 2, body
    assert await stored(cape) == rows_before
    assert await changes_after(cape, before) == []


async def test_client_keys_are_refused_where_the_single_create_refuses_them(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    client, _cape = setup
    single = await client.post("/bulk_card", json={"id": 7, "title": "a"}, headers=ALICE)
    bulk = await client.post("/bulk_card", json=[{"title": "a"}, {"id": 7, "title": "a"}],
                             headers=ALICE)
    assert single.status_code == bulk.status_code == 422
    assert [e["loc"] for e in bulk.json()["detail"]] == [
        ["body", 1, *e["loc"][1:]] for e in single.json()["detail"]
    ]
    # a key nothing else chooses is the client's to send, in bulk too
    memos = await client.post("/bulk_memo", json=[{"id": "m1", "body": "x"},
                                                  {"id": "m2", "body": "y"}])
    assert memos.status_code == 201 and [m["id"] for m in memos.json()] == ["m1", "m2"]


async def test_every_invalid_row_is_reported_at_its_index(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    client, _cape = setup
    rows = [{"title": "ok"}, {"title": 5}, {"title": "ok"}, {"qty": 1}, 3, []]
    response = await client.post("/bulk_card", json=rows, headers=ALICE)
    assert response.status_code == 422
    assert sorted({e["loc"][1] for e in response.json()["detail"]}) == [1, 3, 4, 5]


async def test_anonymous_and_denied_callers(setup: tuple[httpx.AsyncClient, CapeBase]) -> None:
    client, cape = setup
    anonymous = await client.post("/bulk_card", json=[{"title": "a"}])
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    memos = [{"id": "a", "body": "x"}, {"id": "b", "body": FORBIDDEN}]
    anonymous_denied = await client.post("/bulk_memo", json=memos)  # as a single create
    assert anonymous_denied.status_code == 401 and anonymous_denied.json()["index"] == 1
    denied = await client.post("/bulk_memo", json=memos, headers=ALICE)
    assert denied.status_code == 403 and denied.json()["index"] == 1, denied.text
    assert (await stored(cape))["bulk_memo"] == []


async def test_empty_array_creates_nothing(setup: tuple[httpx.AsyncClient, CapeBase]) -> None:
    client, cape = setup
    before = await last_change(cape)
    response = await client.post("/bulk_card", json=[], headers=ALICE)
    assert (response.status_code, response.json()) == (201, [])
    assert await changes_after(cape, before) == []
    assert (await client.post("/bulk_card", json=[])).status_code == 401  # still the caller's


@pytest.mark.parametrize(
    ("count", "status"), [(3, 201), (4, 413)], ids=["at the limit", "over it"]
)
async def test_the_batch_size_limit(db_url: str, count: int, status: int) -> None:
    app, cape = make_app(db_url, limits=LimitsConfig(max_batch_size=3))
    async with app_client(app) as client:
        response = await client.post("/bulk_card", json=[{"title": "t"}] * count,
                                     headers=ALICE)
        assert response.status_code == status, response.text
        if status == 413:
            assert "LimitsConfig.max_batch_size" in response.json()["detail"]
            assert (await stored(cape))["bulk_card"] == []


async def test_the_body_size_limit_applies(db_url: str) -> None:
    app, cape = make_app(db_url, limits=LimitsConfig(max_body_size=200))
    async with app_client(app) as client:
        response = await client.post("/bulk_card", json=[{"title": "t" * 40}] * 5,
                                     headers=ALICE)
        assert response.status_code == 413
        assert "max_body_size" in response.json()["detail"]
        assert (await stored(cape))["bulk_card"] == []


@pytest.mark.parametrize("body", [b"[", b"[1,", b'[{"title": "a"}] x', b"[" * 100_000,
                                  b'[{"title": "\xff"}]'])
async def test_broken_arrays_are_422(
    setup: tuple[httpx.AsyncClient, CapeBase], body: bytes
) -> None:
    client, _cape = setup
    response = await client.post("/bulk_card", content=body, headers={
        **ALICE, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text


class Price(TestModel, table=True):
    __tablename__ = "bulk_price"

    id: int | None = Field(default=None, primary_key=True)
    amount: Decimal = Field(max_digits=15, decimal_places=2)


AMOUNTS = [b"9999999999999.99", b'"0.10"', b"1e1", b"-0.0", b"12"]


async def test_decimals_are_read_as_a_single_create_reads_them(db_url: str) -> None:
    app, cape = make_cape(db_url)
    cape.publish(Price)
    cape.permission_required(Price, role="*", actions=["create", "read"])
    json_type = {"Content-Type": "application/json"}
    async with app_client(app) as client:
        singles = []
        for amount in AMOUNTS:
            one = await client.post("/bulk_price", content=b'{"amount": %s}' % amount,
                                    headers=json_type)
            assert one.status_code == 201, one.text
            singles.append(one.json()["amount"])
        array = b"[" + b",".join(b'{"amount": %s}' % a for a in AMOUNTS) + b"]"
        response = await client.post("/bulk_price", content=array, headers=json_type)
        assert response.status_code == 201, response.text
        assert [r["amount"] for r in response.json()] == singles
        too_precise = await client.post("/bulk_price", content=b'[{"amount": 1.005}]',
                                        headers=json_type)
        assert too_precise.status_code == 422
        assert too_precise.json()["detail"][0]["loc"][:3] == ["body", 0, "amount"]


async def test_a_stream_gets_one_insert_per_row_and_nothing_of_a_failed_request(
    db_url: str,
) -> None:
    app, cape = make_app(db_url)
    async with serve(app) as server, SSEStream(server.url, "/bulk_memo/subscribe") as got:
        async with httpx.AsyncClient(base_url=server.url) as client:
            failed = await client.post("/bulk_memo", json=[
                {"id": "f1", "body": "x"}, {"id": "f2", "body": FORBIDDEN}], headers=ALICE)
            assert failed.status_code == 403
            ok = await client.post("/bulk_memo", json=[
                {"id": f"m{i}", "body": "x"} for i in range(4)])
            assert ok.status_code == 201
        await dispatched(cape)
        await wait_until(lambda: len(got.messages) >= 4, what="four inserts")
        assert [(m["event"], m["payload"]["id"]) for m in got.messages] == [
            ("INSERT", f"m{i}") for i in range(4)]


async def test_openapi_declares_one_row_or_an_array(
    setup: tuple[httpx.AsyncClient, CapeBase],
) -> None:
    client, _cape = setup
    operation = (await client.get("/openapi.json")).json()["paths"]["/bulk_card"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    one = {"$ref": "#/components/schemas/CardCreate"}
    assert body["oneOf"] == [one, {"type": "array", "items": one}]
    answer = operation["responses"]["201"]["content"]["application/json"]["schema"]
    assert answer["oneOf"][1]["type"] == "array"

