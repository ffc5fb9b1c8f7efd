"""The type matrix: a column of every type SQLModel users write, required and optional, under an
int, a str and a UUID primary key, on SQLite, PostgreSQL and MariaDB.

For each column, through a real server: create, get, list, every filter operator that applies
(and a 400 for those that do not), sort, update, delete; the SSE and WebSocket payloads, the
``@cape.subscribe`` handler's payload and the audit entries all carry exactly the JSON the REST
answer carries, which is the JSON that was sent. Writes go through both write paths: the
``DirectWriter`` on the driver connection (role "direct") and the user session (role "session",
whose rule Python cannot evaluate). MariaDB has no UPDATE ... RETURNING, so its writes always
take the session path.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter
from sqlalchemy import DateTime, func
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import CapeBase, ConfigurationError
from capebase.changes.change import ModelChange
from capebase.filters.query import filter_fields
from capebase.filters.streams import STREAM_OPERATORS, parse_stream_filters
from capebase.realtime.views import ModelView
from capebase.wire.schemas import read_schema_for
from tests.realtime._live import SSEStream, WSStream, serve, wait_until
from tests.types._models import MODELS, Colour, Columns
from tests.writes._direct_models import CoreStatements, caller, header_auth

PK_KINDS = list(MODELS)


@dataclass(frozen=True)
class Spec:
    """One column: three values in ascending order (Python), what the filters may do."""

    name: str
    values: tuple[Any, Any, Any]
    kind: str = "value"  # "value" (ordered), "text", "equality" (bool, enum), "json"

    @property
    def operators(self) -> set[str]:
        if self.kind == "json":
            return {"isnull"}
        equality = {"eq", "ne", "in", "nin", "isnull"}
        if self.kind == "equality":
            return equality
        ordered = equality | {"gt", "gte", "lt", "lte"}
        if self.kind == "text":
            return ordered | {"like", "ilike", "contains", "icontains", "startswith"}
        return ordered


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


REQUIRED = [
    # code point order: MariaDB's default collation ignores case and trailing spaces
    Spec("name", ("Zebra", "apple", "apple "), "text"),
    Spec("small", (-7, 0, 2**31 - 1)),
    Spec("big", (-(2**63), 5, 2**63 - 1)),
    # 2.0: SQLite's RETURNING gives a whole REAL back as an integer
    Spec("ratio", (-1.7976931348623157e308, 5e-324, 2.0)),
    Spec("price", (Decimal("-999999999.999"), Decimal("0.125"), Decimal("999999999.999"))),
    Spec("flag", (False, True, True), "equality"),
    Spec("body", ("a long\nline é " * 50, "quoted \"text\" ✓", "z%_\\ wild"), "text"),
    Spec("day", (date(1, 1, 1), date(2026, 1, 2), date(9999, 12, 31))),
    Spec("clock", (time(0, 0, 0), time(12, 34, 56, 123456), time(23, 59, 59, 999999))),
    Spec("moment", (moment("0001-01-01T00:00:00"), moment("2026-01-02T12:34:56.123456"),
                    moment("9999-12-31T23:59:59.999999"))),
    Spec("naive", (datetime(1, 1, 1), datetime(2026, 1, 2, 12, 34, 56, 123456),
                   datetime(9999, 12, 31, 23, 59, 59, 999999))),
    # the extremes an interval may take (values.INTERVAL_RANGE)
    Spec("span", (timedelta(days=-354285), timedelta(days=3, hours=4, microseconds=123456),
                  timedelta(days=2932896, hours=23, minutes=59, seconds=59))),
    # in the reverse order of their last groups, by which MariaDB's native UUID sorts
    Spec("ref", (uuid.UUID("00000000-0000-4000-8000-ffffffffffff"),
                 uuid.UUID("7f000000-0000-4000-8000-00000000abcd"),
                 uuid.UUID("ffffffff-ffff-4fff-bfff-000000000000"))),
    Spec("colour", (Colour.AMBER, Colour.BLUE, Colour.CYAN), "equality"),
    Spec("doc", ({"a": [1, None, "x"], "é": {"n": 1.5}}, {}, {"k": True}), "json"),
    Spec("items", ([1, "two", {"3": 3}], [], [None]), "json"),
]
OPTIONAL = [
    Spec(f"o_{spec.name}", spec.values, spec.kind) for spec in REQUIRED
    if spec.name not in ("name",)
] + [Spec("o_name", ("Zebra", "apple", "apple "), "text")]
SPECS = {spec.name: spec for spec in [*REQUIRED, *OPTIONAL]}
# Which value each of the three created rows takes (None: left null).
REQUIRED_ROWS = (0, 1, 2)
OPTIONAL_ROWS = (1, None, 0)

DIRECT, SESSION = caller("d", role="direct"), caller("s", role="session")


def typed(value: Any) -> str:
    """``value`` as JSON text, where ``5`` and ``5.0`` differ."""
    return json.dumps(value, sort_keys=True)


def as_json(model: type[Columns], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` in their canonical JSON form (what the OpenAPI schema documents)."""
    fields = model.model_fields
    return {
        name: TypeAdapter(fields[name].annotation).dump_python(value, mode="json")
        for name, value in values.items()
    }


def row_values(index: int) -> dict[str, Any]:
    """The Python values of created row ``index``."""
    values = {spec.name: spec.values[REQUIRED_ROWS[index]] for spec in REQUIRED}
    choice = OPTIONAL_ROWS[index]
    for spec in OPTIONAL:
        values[spec.name] = None if choice is None else spec.values[choice]
    return values


def query_value(model: type[Columns], name: str, value: Any) -> str:
    """A value as a query string carries it."""
    dumped = TypeAdapter(model.model_fields[name].annotation).dump_python(value, mode="json")
    return dumped if isinstance(dumped, str) else json.dumps(dumped)


def expected_matches(op: str, current: Any, wanted: Any) -> bool:
    """What SQL answers for ``current <op> wanted`` (NULL matches no comparison)."""
    if op == "isnull":
        return (current is None) is wanted
    if current is None:
        return False
    if op == "in":
        return bool(current in wanted)
    if op == "nin":
        return bool(current not in wanted)
    if op == "startswith":
        return bool(current.startswith(wanted))
    if op == "contains":
        return wanted in current
    if op == "icontains":
        return bool(wanted.lower() in current.lower())
    if op in ("like", "ilike"):  # the patterns used below: a literal prefix and %
        prefix = wanted[:-1]
        return bool(
            current.startswith(prefix) if op == "like"
            else current.lower().startswith(prefix.lower())
        )
    compare = {"eq": current == wanted, "ne": current != wanted, "gt": current > wanted,
               "gte": current >= wanted, "lt": current < wanted, "lte": current <= wanted}
    return compare[op]


def filter_cases(model: type[Columns], spec: Spec) -> list[tuple[str, str, Any]]:
    """``(op, query value, Python value)`` of every operator, for the column ``spec``."""
    low, middle, _high = spec.values
    cases: list[tuple[str, str, Any]] = [("isnull", "true", True), ("isnull", "false", False)]
    if spec.kind == "json":
        return cases
    q = query_value(model, spec.name, middle)
    cases += [("eq", q, middle), ("ne", q, middle)]
    pair = f"{query_value(model, spec.name, low)},{q}"
    if "," not in q and "," not in query_value(model, spec.name, low):
        cases += [("in", pair, {low, middle}), ("nin", pair, {low, middle})]
    if spec.kind in ("value", "text"):
        cases += [(op, q, middle) for op in ("gt", "gte", "lt", "lte")]
    if spec.kind == "text":
        text = str(middle)
        head = text[:3].replace("%", "").replace("_", "").replace("\\", "")
        cases += [
            ("startswith", head, head), ("contains", text[2:5], text[2:5]),
            ("icontains", text[2:5].upper(), text[2:5].upper()),
            ("like", f"{head}%", f"{head}%"), ("ilike", f"{head.upper()}%", f"{head.upper()}%"),
        ]
    return cases


def make_app(db_url: str, model: type[Columns]) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth)
    cape.publish(model)
    cape.permission_required(model, role="*", actions=["read"])
    cape.permission_required(model, role="direct", actions=["create", "update", "delete"])
    # A SQL function Python cannot evaluate: these callers' writes take the session path.
    cape.permission_required(
        model, role="session", actions=["create", "update", "delete"],
        where=lambda _ctx: func.length(model.name) > 0,  # type: ignore[arg-type]
    )
    return app, cape


class Checks:
    """The assertions of one app: REST answers, write paths, the events they produce."""

    def __init__(self, cape: CapeBase, model: type[Columns], client: httpx.AsyncClient) -> None:
        self.cape, self.model, self.client = cape, model, client
        self.path = f"/{model.__tablename__}"
        self.core = CoreStatements(cape)
        self.events: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        """(event, the row's REST JSON after, before) of each write, in order."""
        self.writes_directly = cape.direct is not None and bool(
            cape.direct.dialect.update_returning
        )
        self.filters_checked: set[str] = set()
        # How a stream subscribed with the same filter judges a row: in Python, on the
        # change-log image (the REST JSON) decoded as the hub decodes it.
        self.view = ModelView(model, model.__table__, read_schema_for(model))
        self.fields = filter_fields(model.__table__)
        self.stream_filters_checked: set[str] = set()

    def streamed(self, name: str, op: str, raw: str, rows: list[dict[str, Any]]) -> list[Any]:
        """The rows a stream filtered on ``name__op=raw`` delivers."""
        (stream_filter,) = parse_stream_filters([(f"{name}__{op}", raw)], self.fields, max_in=50)
        self.stream_filters_checked.add(op)
        return [row for row in rows if stream_filter.matches(self.view.decode(row) or {})]

    def check_path(self, statements: list[str], headers: dict[str, str]) -> None:
        wrote_through_core = bool(self.core.writes(statements, self.model.__tablename__))
        expect_core = headers is SESSION or not self.writes_directly
        assert wrote_through_core == expect_core, (headers, statements)

    async def create(self, values: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        sent = as_json(self.model, values)
        with self.core.watching() as statements:
            response = await self.client.post(self.path, json=sent, headers=headers)
        assert response.status_code == 201, response.text
        self.check_path(statements, headers)
        row = response.json()
        assert {k: v for k, v in row.items() if k != "id"} == sent
        assert (await self.client.get(f"{self.path}/{row['id']}")).json() == row
        self.events.append(("INSERT", row, None))
        return row

    async def update(
        self, before: dict[str, Any], values: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        sent = as_json(self.model, values)
        with self.core.watching() as statements:
            response = await self.client.patch(
                f"{self.path}/{before['id']}", json=sent, headers=headers
            )
        assert response.status_code == 200, response.text
        self.check_path(statements, headers)
        row = response.json()
        assert row == {**before, **sent}
        assert (await self.client.get(f"{self.path}/{row['id']}")).json() == row
        self.events.append(("UPDATE", row, before))
        return row

    async def delete(self, before: dict[str, Any], headers: dict[str, str]) -> None:
        with self.core.watching() as statements:
            response = await self.client.delete(f"{self.path}/{before['id']}", headers=headers)
        assert response.status_code == 204, response.text
        self.check_path(statements, headers)
        assert (await self.client.get(f"{self.path}/{before['id']}")).status_code == 404
        self.events.append(("DELETE", {"id": before["id"]}, before))

    async def list_(self, **params: str) -> list[dict[str, Any]]:
        response = await self.client.get(self.path, params={"limit": "100", **params})
        assert response.status_code == 200, (params, response.text)
        rows: list[dict[str, Any]] = response.json()
        return rows

    async def check_filters(self, rows: list[dict[str, Any]], python: list[dict[str, Any]]) -> None:
        """Every operator on every column against ``rows`` (REST JSON, in key order) whose
        Python values are ``python``; a 400 for the operators that do not apply."""
        ids = [row["id"] for row in rows]
        for spec in SPECS.values():
            cases = filter_cases(self.model, spec)
            answers = await asyncio.gather(*(
                self.list_(**{f"{spec.name}__{op}": raw, "order_by": "id"})
                for op, raw, _wanted in cases
            ))
            for (op, raw, wanted), got in zip(cases, answers, strict=True):
                expected = [
                    row for row, values in zip(rows, python, strict=True)
                    if expected_matches(op, values[spec.name], wanted)
                ]
                assert got == expected, (spec.name, op, raw, [r["id"] for r in got], ids)
                self.filters_checked.add(op)
                if op in STREAM_OPERATORS:
                    assert self.streamed(spec.name, op, raw, rows) == expected, (spec.name, op)
            for op in {"eq", "gt", "like", "in"} - spec.operators:
                response = await self.client.get(self.path, params={f"{spec.name}__{op}": "1"})
                assert response.status_code == 400, (spec.name, op, response.text)
                assert repr(spec.name) in response.json()["detail"]
            # sorting: NULL is the largest value on every database (last ascending)
            if spec.kind == "json":
                response = await self.client.get(self.path, params={"order_by": spec.name})
                assert response.status_code == 400, response.text
                continue
            pairs = [(values[spec.name], row) for row, values in zip(rows, python, strict=True)]
            for descending in (False, True):
                order = f"{'-' if descending else ''}{spec.name},id"
                got = await self.list_(order_by=order)
                ranked = sorted(pairs, key=lambda pair: pair[1]["id"])  # the tie-breaker
                ranked.sort(key=lambda pair: (pair[0] is None, pair[0]), reverse=descending)
                assert [r["id"] for r in got] == [r["id"] for _, r in ranked], (spec.name, order)


def change_json(change: ModelChange[Any]) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """A handled change as (event, payload JSON, old JSON); DELETE payloads: the key only."""
    old = None if change.old is None else TypeAdapter(Any).dump_python(change.old, mode="json")
    payload = change.payload.model_dump(mode="json")
    if change.event == "DELETE":
        payload = {"id": payload["id"]}
    return change.event, payload, old


@pytest.mark.parametrize("pk_kind", PK_KINDS)
async def test_every_type_round_trips_everywhere(db_url: str, pk_kind: str) -> None:
    model = MODELS[pk_kind]
    app, cape = make_app(db_url, model)
    handled: list[ModelChange[Any]] = []

    @cape.subscribe(model)
    async def record(change: ModelChange[Any]) -> None:
        handled.append(change)

    path = f"/{model.__tablename__}"
    async with (
        serve(app) as live,
        # REST in-process (the server's lifespan is running): TCP would only add CPU here.
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=live.url) as client,
        SSEStream(live.url, f"{path}/subscribe") as sse,
        WSStream(live.ws_url, f"{path}/subscribe") as ws,
    ):
        checks = Checks(cape, model, client)
        python = [row_values(i) for i in range(3)]
        rows = [
            await checks.create(python[0], DIRECT),
            await checks.create(python[1], SESSION),
            await checks.create(python[2], DIRECT),
        ]
        assert await checks.list_(order_by="id") == sorted(rows, key=lambda r: r["id"])
        by_id = sorted(zip(rows, python, strict=True), key=lambda pair: pair[0]["id"])
        await checks.check_filters([r for r, _ in by_id], [p for _, p in by_id])
        assert checks.filters_checked == {
            "eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "isnull",
            "like", "ilike", "contains", "icontains", "startswith",
        }
        assert checks.stream_filters_checked == set(STREAM_OPERATORS)

        # updates: every column to another value, optional ones to and from null
        swapped = {**row_values(2), **{s.name: None for s in OPTIONAL}}
        rows[0] = await checks.update(rows[0], swapped, SESSION)
        rows[1] = await checks.update(rows[1], row_values(0), DIRECT)
        assert await checks.list_(order_by="id") == sorted(rows, key=lambda r: r["id"])
        await checks.delete(rows[0], DIRECT)
        await checks.delete(rows[1], SESSION)
        assert await checks.list_() == [rows[2]]

        # the streams, the handler and the audit trail carry the REST answers' JSON
        expected = checks.events
        await wait_until(lambda: len(sse.messages) >= len(expected), what="the SSE messages")
        await wait_until(lambda: len(ws.messages) >= len(expected), what="the WS messages")
        await wait_until(lambda: len(handled) >= len(expected), what="the handler")
        # Compared as JSON text: 5 == 5.0 in Python, but a client reads an integer
        streamed = [(m["event"], m["payload"], m["old"]) for m in sse.messages]
        assert typed(streamed) == typed(expected)
        assert typed(ws.messages) == typed(sse.messages)
        assert typed([change_json(change) for change in handled]) == typed(expected)

        for event, row, before in expected:
            if event != "INSERT":
                continue
            key = uuid.UUID(row["id"]) if pk_kind == "uuid" else row["id"]
            history = await cape.audit.history(model, key)
            mine = [(e.op, e.new, e.old) for e in history]
            assert typed(mine[0]) == typed(("INSERT", row, None))
            assert typed([entry for entry in expected if entry[1]["id"] == row["id"]
                          or (entry[2] or {}).get("id") == row["id"]]) == typed([
                (op, new if op != "DELETE" else {"id": row["id"]}, old)
                for op, new, old in mine
            ])
            assert before is None


async def test_values_a_column_cannot_hold_are_422(db_url: str) -> None:
    """Values every database would not store alike are refused before the database sees them
    (SQLModel's UTCDateTime raised a 500 for a naive datetime; SQLite's Interval an
    OverflowError for a long one)."""
    app, cape = make_app(db_url, MODELS["int"])
    base = as_json(MODELS["int"], row_values(0))
    cases = {
        "moment": "2026-01-02T12:34:56",  # no offset for an aware column
        "clock": "12:34:56+02:00",  # a time of day with an offset
        "span": "P9999999D",  # beyond what MySQL's DATETIME can hold as an interval
    }
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        for field, value in cases.items():
            response = await client.post("/types_int", json={**base, field: value},
                                         headers=DIRECT)
            assert response.status_code == 422, (field, response.text)
            assert response.json()["detail"][0]["loc"] == ["body", field]
        cases = {
            "moment": "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
            "naive": "2026-01-02T12:34:56Z",  # an offset for a naive column
        }
        for field, value in cases.items():
            response = await client.post("/types_int", json={**base, field: value},
                                         headers=SESSION)
            assert response.status_code == 422, (field, response.text)
            assert response.json()["detail"][0]["loc"] == ["body", field]
        queries = ("ratio=inf", "ratio__gt=nan", "span__lt=P9999999D", "clock=01:00:00Z",
                   "price=1e999999", "price__gt=-1e10", "price=NaN",
                   "moment__gt=0001-01-01T00:00:00+01:00", "naive__lt=9999-12-31T23:00:00-01:00")
        for query in queries:
            response = await client.get("/types_int", params=dict([query.split("=")]))
            assert response.status_code == 422, (query, response.text)
        assert await Checks(cape, MODELS["int"], client).list_() == []


async def test_long_text_is_kept_whole(db_url: str) -> None:
    """A ``Text`` column holds more than MySQL's ``TEXT`` (64 KB) everywhere: capebase creates
    ``LONGTEXT`` there."""
    app, _cape = make_app(db_url, MODELS["int"])
    long = "é✓ long text\n" * 20_000  # 280,000 characters, 420 KB in UTF-8
    sent = {**as_json(MODELS["int"], row_values(0)), "body": long, "o_body": long[:70_000]}
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        for headers in (DIRECT, SESSION):
            response = await client.post("/types_int", json=sent, headers=headers)
            assert response.status_code == 201, response.text[:300]
            got = (await client.get(f"/types_int/{response.json()['id']}")).json()
            assert (got["body"], got["o_body"]) == (long, long[:70_000])


def test_types_capebase_cannot_serve_are_refused_at_publish() -> None:
    """A model with a type capebase cannot serve exactly fails at ``publish``, naming the field,
    instead of answering 500 (or storing another value) at request time."""
    class Base(SQLModel, registry=registry()):
        pass

    class Blob(Base, table=True):
        id: int | None = Field(default=None, primary_key=True)
        data: bytes

    class Money(Base, table=True):
        id: int | None = Field(default=None, primary_key=True)
        amount: Decimal | None = None

    class Wide(Base, table=True):
        id: int | None = Field(default=None, primary_key=True)
        amount: Decimal = Field(max_digits=16, decimal_places=2)

    cape = CapeBase(app=FastAPI(), db_url="sqlite+aiosqlite:///:memory:")
    refused = ((Blob, "data", "base64"), (Money, "amount", "max_digits"),
               (Wide, "amount", "max_digits=15"))
    for model, field, hint in refused:
        with pytest.raises(ConfigurationError) as raised:
            cape.publish(model)
        assert f"Cannot publish {model.__name__}: field {field!r}" in str(raised.value)
        assert hint in str(raised.value)
    # 16 digits are exact where the database stores decimals
    CapeBase(app=FastAPI(), db_url="postgresql+asyncpg://u@127.0.0.1/db").publish(Wide)

    # A timezone-aware column type that drops the offset where the database keeps none.
    class Stamp(Base, table=True):
        id: int | None = Field(default=None, primary_key=True)
        at: datetime = Field(sa_type=DateTime(timezone=True))  # type: ignore[call-overload]

    for url in ("sqlite+aiosqlite:///:memory:", "mysql+asyncmy://root@127.0.0.1/db"):
        with pytest.raises(ConfigurationError, match=r"'at'.*stored without its offset"):
            CapeBase(app=FastAPI(), db_url=url).publish(Stamp)
    CapeBase(app=FastAPI(), db_url="postgresql+asyncpg://u@127.0.0.1/db").publish(Stamp)
