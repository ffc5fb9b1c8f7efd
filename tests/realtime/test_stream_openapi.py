"""OpenAPI of the stream routes: every declared stream filter opens a stream (and nothing
undeclared does), and what the streams send, over SSE and WebSocket, is what the declared
``{Model}StreamMessage`` schema allows."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from capebase.filters.query import OPERATORS
from tests.crud.test_openapi_filters import (
    example,
    names_it,
    parameters,
    published_fields,
    refuses,
)
from tests.realtime._app import make_app, who
from tests.realtime._live import dispatched, serve, sse, wait_until, ws
from tests.types._models import MODELS
from tests.types.test_matrix import make_app as make_types_app

ALICE = who("alice")


def message_validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    """A validator of the component ``name``, its references resolved in ``document``."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


async def first_data(response: httpx.Response) -> dict[str, Any]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            data: dict[str, Any] = json.loads(line.removeprefix("data: "))
            return data
    raise AssertionError("the stream ended before its first event")


async def test_each_declared_stream_filter_opens_a_stream(sqlite_url: str) -> None:
    model = MODELS["int"]
    app, _cape = make_types_app(sqlite_url, model)
    path = f"/{model.__tablename__}/subscribe"
    document = app.openapi()
    streamed = parameters(document["paths"][path]["get"])
    ready = message_validator(document, f"{model.__name__}StreamMessage")
    tried: Counter[str] = Counter()
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        for field in published_fields(model):
            for name in [field, *(f"{field}__{op}" for op in OPERATORS)]:
                declared = streamed.get(name)
                value = example(name, streamed) if declared else "1"
                async with client.stream("GET", path, params={name: value}) as response:
                    if declared is None:
                        await response.aread()
                        assert response.status_code == 400, (name, response.text)
                        assert names_it(response.json()["detail"], name), (name, response.text)
                        tried["refused"] += 1
                        continue
                    assert response.status_code == 200, (name, value, await response.aread())
                    event = await first_data(response)
                    assert event["event"] == "ready", event
                    ready.validate(event)
                    tried["opened"] += 1
                if refuses(declared["schema"], "x?"):
                    response = await client.get(path, params={name: "x?"})
                    assert response.status_code == 422, (name, response.text)
                    tried["bad value"] += 1
    assert tried["opened"] == len(
        [n for n in streamed if n.partition("__")[0] in published_fields(model)]
    )
    assert tried["refused"] > 0 and tried["bad value"] > 0, tried


async def test_stream_messages_are_what_openapi_declares(db_url: str) -> None:
    app, cape = make_app(db_url)
    document = app.openapi()
    operation = document["paths"]["/rt_task/subscribe"]["get"]
    item = operation["responses"]["200"]["content"]["text/event-stream"]["itemSchema"]
    assert item["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/TaskStreamMessage"
    }
    validator = message_validator(document, "TaskStreamMessage")
    async with serve(app) as live, sse(live, ALICE) as by_sse, ws(live, ALICE) as by_ws, sse(
        live, ALICE, last_event_id="0"
    ) as reset, httpx.AsyncClient(base_url=live.url) as client:
        created = await client.post("/rt_task", json={"title": "a"}, headers=ALICE)
        assert created.status_code == 201, created.text
        row = created.json()
        changed = await client.patch(f"/rt_task/{row['id']}", json={"level": 2},
                                     headers=ALICE)
        assert changed.status_code == 200, changed.text
        deleted = await client.delete(f"/rt_task/{row['id']}", headers=ALICE)
        assert deleted.status_code == 204, deleted.text
        await dispatched(cape)
        for stream in (by_sse, by_ws):
            await wait_until(lambda s=stream: len(s.messages) == 3, what="three changes")
    for stream in (by_sse, by_ws):
        assert [m["event"] for m in stream.messages] == ["INSERT", "UPDATE", "DELETE"]
        for message in [*stream.ready, *stream.messages]:
            validator.validate(message)
    # WebSocket changes carry their resume token too.
    for message, token in zip(by_ws.messages, by_ws.tokens, strict=True):
        validator.validate({**message, "resume": token})
    assert [c["event"] for c in reset.controls] == ["reset"]
    validator.validate(reset.controls[0])
    # What the schema refuses, it refuses: an INSERT with an old row, a DELETE's full row.
    insert, _update, delete = by_sse.messages
    assert not validator.is_valid({**insert, "old": insert["payload"]})
    assert not validator.is_valid({**delete, "payload": {"id": None}})
    assert not validator.is_valid({**insert, "payload": {**insert["payload"], "id": None}})
