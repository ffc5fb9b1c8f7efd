"""HTTP metrics: requests, latency and in-flight by route template, method and status."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY, CollectorRegistry
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from websockets.asyncio.client import connect as ws_connect

from capebase import CapeBase, ConfigurationError, MetricsConfig
from capebase.testing import app_client
from tests.observability._app import make_app, parse, scrape, who
from tests.realtime._live import SSEStream, serve, wait_until

REQUESTS = "capebase_http_requests_total"
DURATION_COUNT = "capebase_http_request_duration_seconds_count"
IN_FLIGHT = "capebase_http_requests_in_flight"


async def test_requests_and_latency_move_by_route_method_and_status(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, metrics=True)
    async with app_client(app) as client:
        before = await scrape(client)
        created = await client.post("/obs_note", json={"title": "a"}, headers=who("ann"))
        assert created.status_code == 201
        assert (await client.get("/obs_note")).status_code == 200
        assert (await client.get("/obs_note/1")).status_code == 200
        assert (await client.get("/obs_note/999")).status_code == 404
        after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved(REQUESTS, method="POST", route="/obs_note", status="201") == 1
    assert moved(REQUESTS, method="GET", route="/obs_note", status="200") == 1
    assert moved(REQUESTS, method="GET", route="/obs_note/{id}", status="200") == 1
    assert moved(REQUESTS, method="GET", route="/obs_note/{id}", status="404") == 1
    assert moved(DURATION_COUNT, method="GET", route="/obs_note/{id}") == 2
    assert moved("capebase_http_request_duration_seconds_sum", method="POST") > 0
    # The first scrape is itself counted by the second.
    assert after.value(REQUESTS, route="/metrics", status="200") == 1
    # Nothing is in flight between requests; the scrape in progress is.
    assert after.value(IN_FLIGHT, route="/obs_note") == 0
    assert after.value(IN_FLIGHT, method="GET", route="/metrics") == 1


async def test_route_labels_stay_bounded_when_ids_and_paths_vary(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, metrics=True)
    async with app_client(app) as client:
        for pk in range(1, 51):
            await client.get(f"/obs_note/{pk}")
        for n in range(20):
            await client.get(f"/no/such/path/{n}")
        for n in range(5):
            await client.request(f"BREW{n}", "/obs_note")  # methods are client input too
        after = await scrape(client)
    assert after.label_values(REQUESTS, "method") == {"GET", "OTHER"}
    assert after.value(REQUESTS, method="OTHER", route="/obs_note", status="405") == 5
    routes = after.label_values(REQUESTS, "route")
    assert routes == {"/obs_note/{id}", "/obs_note", "<unmatched>"}
    assert after.value(REQUESTS, route="/obs_note/{id}", status="404") == 50
    assert after.value(REQUESTS, route="<unmatched>", status="404") == 20
    assert after.label_values(IN_FLIGHT, "route") == routes | {"/metrics"}


class _KeyModel(SQLModel, registry=registry()):
    __test__ = False


class _Slug(_KeyModel, table=True):
    __tablename__ = "obs_slug"
    id: str = Field(primary_key=True, max_length=40)


class _Ticket(_KeyModel, table=True):
    __tablename__ = "obs_ticket"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)


async def test_route_labels_are_the_templates_openapi_documents(sqlite_url: str) -> None:
    """Regression: routes were labelled with their convertors (``/obs_note/{id:int}``), which
    neither the README nor OpenAPI write."""
    app, cape = make_app(sqlite_url, metrics=True)
    for model in (_Slug, _Ticket):
        cape.publish(model, routes=["get"])
    files = APIRouter(prefix="/files")

    @files.get("/{name:path}")
    async def read_file(name: str) -> str:
        return name

    @app.get("/pages/{n:int}/{word}")
    async def page(n: int, word: str) -> int:
        return n

    app.include_router(files)
    values = {"id": "1", "name": "a/b.txt", "n": "3", "word": "w"}
    async with app_client(app) as client:
        documented = {
            path for path in app.openapi()["paths"] if not path.endswith("/subscribe")
        }
        assert {"/obs_note/{id}", "/obs_slug/{id}", "/obs_ticket/{id}", "/files/{name}",
                "/pages/{n}/{word}"} <= documented
        for path in documented:
            url = path.format(**values).replace("/obs_ticket/1", f"/obs_ticket/{uuid.uuid4()}")
            await client.get(url)
        after = await scrape(client)
    labelled = after.label_values(REQUESTS, "route") - {"<unmatched>"}
    assert labelled == documented
    assert after.label_values(IN_FLIGHT, "route") - {"/metrics"} == documented


async def test_in_flight_counts_a_request_until_its_response_ends(sqlite_url: str) -> None:
    """Also: a streaming response passes through the middleware chunk by chunk."""
    app, _cape = make_app(sqlite_url, metrics=True)
    release = asyncio.Event()

    @app.get("/slow")
    async def slow() -> StreamingResponse:
        async def body():  # type: ignore[no-untyped-def]
            yield b"first;"
            await release.wait()
            yield b"second"

        return StreamingResponse(body(), media_type="text/plain")

    # httpx's ASGI transport reads whole bodies; a real server shows the stream as it goes.
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        async with client.stream("GET", "/slow") as response:
            chunks = response.aiter_raw()
            assert await anext(chunks) == b"first;"
            during = await scrape(client)
            release.set()
            assert b"".join([chunk async for chunk in chunks]) == b"second"
        after = await scrape(client)
    assert during.value(IN_FLIGHT, method="GET", route="/slow") == 1
    assert after.value(IN_FLIGHT, method="GET", route="/slow") == 0
    assert after.value(REQUESTS, route="/slow", status="200") == 1


async def test_an_error_in_the_app_is_counted_as_500(sqlite_url: str) -> None:
    app, _cape = make_app(sqlite_url, metrics=True)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    async with app_client(app) as client:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as raw:
            assert (await raw.get("/boom")).status_code == 500
        after = await scrape(client)
    assert after.value(REQUESTS, route="/boom", status="500") == 1
    assert after.value(IN_FLIGHT, route="/boom") == 0


async def test_the_guard_protects_the_endpoint(sqlite_url: str) -> None:
    async def token_only(authorization: str | None = Header(None)) -> None:
        if authorization != "Bearer scraper":
            raise HTTPException(status_code=401, detail="scrapers only")

    app, _cape = make_app(sqlite_url, metrics=MetricsConfig(path="/internal/m", guard=token_only))
    async with app_client(app) as client:
        assert (await client.get("/internal/m")).status_code == 401
        assert (await client.get("/metrics")).status_code == 404
        ok = await scrape(client, "/internal/m", headers={"Authorization": "Bearer scraper"})
    assert ok.value(REQUESTS, route="/internal/m", status="401") == 1
    assert "/internal/m" not in app.openapi()["paths"]


async def test_metrics_are_off_by_default(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url)
    assert cape.metrics is None
    async with app_client(app) as client:
        assert (await client.get("/metrics")).status_code == 404
        # The request id is there either way.
        assert len((await client.get("/obs_note")).headers["x-request-id"]) == 32


async def test_each_capebase_has_its_own_registry(sqlite_url: str, tmp_path: object) -> None:
    first, first_cape = make_app(sqlite_url, metrics=True)
    second, second_cape = make_app(sqlite_url, metrics=True)
    assert first_cape.metrics is not None and second_cape.metrics is not None
    assert first_cape.metrics.registry is not second_cape.metrics.registry
    async with app_client(first) as one, app_client(second) as two:
        await one.get("/obs_note")
        await one.get("/obs_note")
        await two.get("/obs_note")
        assert (await scrape(one)).value(REQUESTS, route="/obs_note") == 2
        assert (await scrape(two)).value(REQUESTS, route="/obs_note") == 1


async def test_a_shared_registry_shares_the_series(sqlite_url: str) -> None:
    shared = CollectorRegistry()
    config = MetricsConfig(registry=shared)
    first, _ = make_app(sqlite_url, metrics=config)
    second, _ = make_app(sqlite_url, metrics=config)
    async with app_client(first) as one, app_client(second) as two:
        await one.get("/obs_note")
        await two.get("/obs_note")
        assert (await scrape(one)).value(REQUESTS, route="/obs_note") == 2
        # Two engines, one set of pool gauges (summed).
        assert len([s for s in (await scrape(two)).samples if s[0] == "capebase_db_pool_size"]) == 1


async def test_the_global_registry_can_be_opted_in(sqlite_url: str) -> None:
    app, cape = make_app(sqlite_url, metrics=MetricsConfig(registry=REGISTRY))
    assert cape.metrics is not None and cape.metrics.registry is REGISTRY
    async with app_client(app) as client:
        before = REGISTRY.get_sample_value(REQUESTS, {"method": "GET", "route": "/obs_note",
                                                      "status": "200"}) or 0
        await client.get("/obs_note")
        text = (await client.get("/metrics")).text
    assert parse(text).value(REQUESTS, route="/obs_note", status="200") == before + 1
    assert "python_info" in text  # the global registry's own collectors come along


async def test_websockets_are_counted_by_their_route(sqlite_url: str) -> None:
    """Regression: WebSocket streams were not counted at all. A connection is a request of
    method WEBSOCKET: in flight while open, then counted with status 101 (accepted)."""
    app, _cape = make_app(sqlite_url, metrics=True)
    labels = {"method": "WEBSOCKET", "route": "/obs_note/subscribe"}
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        async with ws_connect(f"{live.ws_url}/obs_note/subscribe", proxy=None) as websocket:
            await wait_until(lambda: _cape.hub.subscriber_count == 1, what="the subscription")
            await client.post("/obs_note", json={"title": "over ws"}, headers=who("ann"))
            ready = json.loads(await asyncio.wait_for(websocket.recv(), 5))
            message = json.loads(await asyncio.wait_for(websocket.recv(), 5))
            during = await scrape(client)
        assert ready["event"] == "ready"
        assert message["payload"]["title"] == "over ws"
        await wait_until(lambda: _cape.hub.subscriber_count == 0, what="the unsubscription")
        after = await scrape(client)
    assert during.value(IN_FLIGHT, **labels) == 1
    assert after.value(IN_FLIGHT, **labels) == 0
    assert after.value(REQUESTS, status="101", **labels) == 1
    assert after.value(DURATION_COUNT, **labels) == 1
    assert after.value(REQUESTS, method="GET", route="/obs_note/subscribe") == 0


async def test_streams_and_fastapis_own_pages_are_labelled_by_route(sqlite_url: str) -> None:
    """Regression: SSE requests were labelled ``route=""``, and /docs, /openapi.json (routes
    FastAPI records nothing for) ``<unmatched>``."""
    app, _cape = make_app(sqlite_url, metrics=True)
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url) as client:
        async with SSEStream(live.url, "/obs_note/subscribe"):
            during = await scrape(client)
        assert (await client.get("/obs_note/subscribe?nosuch=1")).status_code == 400
        for path in ("/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"):
            assert (await client.get(path)).status_code == 200, path
        await wait_until(lambda: _cape.hub.subscriber_count == 0, what="the unsubscription")
        after = await scrape(client)
    sse = {"method": "GET", "route": "/obs_note/subscribe"}
    assert during.value(IN_FLIGHT, **sse) == 1
    assert after.value(REQUESTS, status="200", **sse) == 1
    assert after.value(REQUESTS, status="400", **sse) == 1
    for path in ("/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc"):
        assert after.value(REQUESTS, method="GET", route=path, status="200") == 1, path
    assert "" not in after.label_values(REQUESTS, "route")
    assert "<unmatched>" not in after.label_values(REQUESTS, "route")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="start with '/'"):
        MetricsConfig(path="metrics")
    with pytest.raises(ConfigurationError, match="CollectorRegistry"):
        MetricsConfig(registry="global")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="metrics="):
        CapeBase(app=FastAPI(), db_url="sqlite:///:memory:", metrics="yes")  # type: ignore[arg-type]
