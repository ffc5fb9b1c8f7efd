"""Filter groups (``or=(...)``, ``not.and=(...)``...) and ``select=`` on streams, over SSE and
WebSocket: the same grammar as lists, evaluated in Python per event, after the read rules."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from tests.realtime._app import make_app, who
from tests.realtime._live import Recorded, dispatched, refusal, serve, sse, ws


def events(stream: Recorded) -> list[tuple[str, int]]:
    return [(m["event"], m["payload"]["id"]) for m in stream.messages]


async def test_groups_and_select_narrow_the_stream(db_url: str) -> None:
    app, cape = make_app(db_url)
    alice = who("alice")
    either = {"or": "(title=a,and(level__gte=5,is_complete=false))"}
    neither = {"not.or": "(title=a,level__in=(5,9))", "select": "id,title"}
    async with serve(app) as live, AsyncExitStack() as stack:
        streams = {
            name: [await stack.enter_async_context(open_(live, alice, **query))
                   for open_ in (sse, ws)]
            for name, query in (("either", either), ("neither", neither))
        }
        async with httpx.AsyncClient(base_url=live.url) as client:

            async def call(method: str, path: str, headers: dict[str, str] = alice,
                           **body: Any) -> Any:
                response = await client.request(method, path, headers=headers, json=body or None)
                assert response.status_code == {"POST": 201, "PATCH": 200, "DELETE": 204}[
                    method], response.text
                return response.json() if response.content else None

            await call("POST", "/rt_task", title="a")  # 1: either
            await call("POST", "/rt_task", title="b", level=5)  # 2: either
            await call("POST", "/rt_task", title="c", level=1)  # 3: neither
            await call("POST", "/rt_task", who("bob"), title="a")  # 4: bob's, never seen
            await call("PATCH", "/rt_task/3", level=9)  # 3 enters either, leaves neither
            await call("PATCH", "/rt_task/2", is_complete=True)  # 2 leaves either
            await call("DELETE", "/rt_task/1")
            await call("POST", "/rt_task", title="end", level=5)  # 5: either
            await call("POST", "/rt_task", title="end", level=2)  # 6: neither
        await dispatched(cape)
        for stream in [*streams["either"], *streams["neither"]]:
            await stream.wait_for_title("end")
    for stream in streams["either"]:
        assert events(stream) == [
            ("INSERT", 1), ("INSERT", 2), ("INSERT", 3), ("DELETE", 2), ("DELETE", 1),
            ("INSERT", 5),
        ]
        assert set(stream.messages[0]["payload"]) >= {"owner_id", "level", "title"}
    for stream in streams["neither"]:
        assert events(stream) == [("INSERT", 3), ("DELETE", 3), ("INSERT", 6)]
        # select: the rows carry the fields asked for; a DELETE's payload is the key
        assert [m["payload"] for m in stream.messages] == [
            {"id": 3, "title": "c"}, {"id": 3}, {"id": 6, "title": "end"}
        ]
        assert stream.messages[1]["old"] == {"id": 3, "title": "c"}


@pytest.mark.parametrize(
    ("query", "status", "detail"),
    [
        ({"or": "(title=a"}, 400, "unbalanced parentheses"),
        ({"or": "()"}, 400, "empty"),
        ({"or": "(nope=1)"}, 400, "Unknown filter field 'nope'"),
        ({"or": "(title__like=a)"}, 400, "Operator 'like' is not available on streams"),
        ({"or": "(last_event_id=1)"}, 400, "'last_event_id' is not a filter"),
        ({"or": "(ticket=1)"}, 400, "'ticket' is not a filter"),
        ({"or": "(select=id)"}, 400, "'select' is not a filter"),
        ({"or": "(id=1,and(id=2,or(id=3,and(id=4,or(id=5)))))"}, 400, "max_filter_depth"),
        ({"or": "(" + ",".join(f"id={i}" for i in range(51)) + ")"}, 400, "max_filter_terms"),
        ({"or": "(id__in=())"}, 422, "needs at least one value"),
        ({"or": "(id=x)"}, 422, "Invalid value 'x' for 'id'"),
        ({"select": "id,nope"}, 400, "Unknown select field 'nope'"),
    ],
)
async def test_bad_groups_are_refused(
    sqlite_url: str, query: dict[str, str], status: int, detail: str
) -> None:
    app, cape = make_app(sqlite_url)
    answered, said = await refusal(app, cape, who("alice"), **query)
    assert answered == status and detail in said
