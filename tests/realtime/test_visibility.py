"""Each subscriber gets exactly the changes its read rules and filters allow, view-relative,
over SSE and WebSocket alike."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import delete, update

from capebase import AuthContext, CapeBase
from tests.realtime._app import Task, make_app, who
from tests.realtime._live import Recorded, dispatched, position, refusal, serve, sse, ws

SUBSCRIBERS: dict[str, dict[str, str]] = {
    "alice": who("alice"),  # owner rule: found through the index (owner pin)
    "bob": who("bob"),  # owner rule: found through the index
    "carol": who("carol", org="o2"),  # owner and context_fields rules: owner and org pins
    "admin": who("root", role="admin"),  # role rule: checked against every change
    "dave": who("dave", role="reader", clearance=3),  # where rules
    "guest": who(role="guest"),  # public rows only
}
END_MARKERS = {"alice": "end-alice", "bob": "end-bob", "carol": "end-carol"}
"""What each subscriber waits for last: a row it sees, committed after everything else
(default: the public ``end``, committed last of all)."""


def events(got: Recorded) -> list[tuple[str, int]]:
    """``(event, id)`` of each message, checking that DELETEs carry the primary key only."""
    for message in got.messages:
        assert message["table"] == "rt_task"
        if message["event"] == "DELETE":
            assert message["payload"] == {"id": message["payload"]["id"]}
        if message["event"] == "INSERT":
            assert message["old"] is None
    return got.events()


async def test_each_subscriber_gets_exactly_what_its_rules_allow(db_url: str) -> None:
    app, cape = make_app(db_url)
    for ctx in (AuthContext(id="alice"), AuthContext(id="carol", context={"org_id": "o2"})):
        rules = [rule for rule in cape.policy.rules_for(Task, "read") if rule.applies_to(ctx)]
        pinned = all(rule.pins(ctx) is not None for rule in rules)
        assert rules and pinned, f"{ctx} would not be found through the subscriber index"
    async with serve(app) as live, AsyncExitStack() as streams:
        got: dict[str, list[Recorded]] = {
            name: [
                await streams.enter_async_context(sse(live, headers)),
                await streams.enter_async_context(ws(live, headers)),
            ]
            for name, headers in SUBSCRIBERS.items()
        }
        async with cape.get_privileged_session() as session:
            public = Task(title="public", owner_id="system", level=9, public=True)
            t1 = Task(title="t1", owner_id="alice", org_id="o1", level=5)
            session.add(public)
            await session.flush()
            session.add(t1)
            await session.flush()
            t2 = Task(title="t2", owner_id="bob", org_id="o2", level=1)
            session.add(t2)
            await session.commit()
            t1.level = 2  # enters dave's view
            await session.commit()
            await session.execute(update(Task).where(Task.id == t2.id).values(org_id="o3"))
            await session.commit()  # leaves carol's view: found by the old row's org pin
            t1.owner_id = "bob"  # leaves alice's view (old row's owner pin), enters bob's
            await session.commit()
            await session.execute(delete(Task).where(Task.id == t2.id))
            await session.commit()  # checked against the old row: carol sees nothing
            ends = [
                Task(title="end-alice", owner_id="alice"),
                Task(title="end-bob", owner_id="bob"),
                Task(title="end-carol", owner_id="system", org_id="o2"),
                Task(title="end", owner_id="system", level=9, public=True),
            ]
            for end in ends:
                session.add(end)
                await session.flush()
            await session.commit()
        await dispatched(cape)
        for name, streams_of in got.items():
            for stream in streams_of:
                await stream.wait_for_title(END_MARKERS.get(name, "end"))

    p, a, b = public.id, t1.id, t2.id
    ea, eb, ec, e = (end.id for end in ends)
    assert None not in (p, a, b, ea, eb, ec, e)
    expected = {
        "alice": [("INSERT", a), ("UPDATE", a), ("DELETE", a), ("INSERT", ea)],
        "bob": [("INSERT", b), ("UPDATE", b), ("INSERT", a), ("DELETE", b), ("INSERT", eb)],
        "carol": [("INSERT", b), ("DELETE", b), ("INSERT", ec)],
        "admin": [
            ("INSERT", p),
            ("INSERT", a),
            ("INSERT", b),
            ("UPDATE", a),
            ("UPDATE", b),
            ("UPDATE", a),
            ("DELETE", b),
            *[("INSERT", end) for end in (ea, eb, ec, e)],
        ],
        "dave": [
            ("INSERT", p),
            ("INSERT", b),
            ("INSERT", a),
            ("UPDATE", b),
            ("UPDATE", a),
            ("DELETE", b),
            *[("INSERT", end) for end in (ea, eb, ec, e)],
        ],
        "guest": [("INSERT", p), ("INSERT", e)],
    }
    for name, (over_sse, over_ws) in got.items():
        assert events(over_sse) == expected[name], f"{name} over SSE"
        assert over_ws.messages == over_sse.messages, f"{name}: WebSocket == SSE"
    # The update that brought t1 into bob's view carries the new row and no old values.
    entered = got["bob"][0].messages[2]
    assert entered["payload"]["owner_id"] == "bob" and entered["old"] is None
    # An UPDATE carries the old values; the ids are the change ids, in order.
    updated = got["admin"][0].messages[3]
    assert (updated["old"]["level"], updated["payload"]["level"]) == (5, 2)
    assert got["admin"][0].ids == sorted(got["admin"][0].ids)
    assert [position(t) for t in got["admin"][0].tokens] == [str(i) for i in got["admin"][0].ids]


async def test_stream_filters_narrow_the_view(db_url: str) -> None:
    app, cape = make_app(db_url)
    alice = who("alice")
    async with serve(app) as live, AsyncExitStack() as stack:
        complete = [
            await stack.enter_async_context(open_(live, alice, is_complete="true"))
            for open_ in (sse, ws)
        ]
        by_id = [
            await stack.enter_async_context(open_(live, alice, id__in="1,2,3"))
            for open_ in (sse, ws)
        ]
        async with httpx.AsyncClient(base_url=live.url) as client:

            async def call(
                method: str, path: str, headers: dict[str, str] = alice, **body: Any
            ) -> Any:
                response = await client.request(method, path, headers=headers, json=body or None)
                expected = {"POST": 201, "PATCH": 200, "DELETE": 204}[method]
                assert response.status_code == expected, response.text
                return response.json() if response.content else None

            assert (await call("POST", "/rt_task", title="t1"))["id"] == 1
            assert (await call("POST", "/rt_task", title="t2", is_complete=True))["id"] == 2
            # bob's row matches both filters, but alice may not read it
            assert (await call("POST", "/rt_task", who("bob"), title="b", is_complete=True))[
                "id"
            ] == 3
            assert (await call("POST", "/rt_task", title="t4", is_complete=True))["id"] == 4
            await call("PATCH", "/rt_task/1", is_complete=True)  # enters ?is_complete=true
            await call("PATCH", "/rt_task/2", is_complete=False)  # leaves it
            await call("DELETE", "/rt_task/4")
            await call("PATCH", "/rt_task/1", title="end")
        await dispatched(cape)
        for stream in [*complete, *by_id]:
            await stream.wait_for_title("end")

    for stream in complete:
        assert events(stream) == [
            ("INSERT", 2),
            ("INSERT", 4),
            ("INSERT", 1),
            ("DELETE", 2),
            ("DELETE", 4),
            ("UPDATE", 1),
        ]
    for stream in by_id:
        assert events(stream) == [
            ("INSERT", 1),
            ("INSERT", 2),
            ("UPDATE", 1),
            ("UPDATE", 2),
            ("UPDATE", 1),
        ]


STREAM_OPERATORS = "eq, ne, in, nin, gt, gte, lt, lte, isnull"


@pytest.mark.parametrize(
    ("query", "status", "detail"),
    [
        (  # unknown field
            {"nope": "1"},
            400,
            "Unknown filter field 'nope'; filterable fields: id, owner_id, title, is_complete, "
            "org_id, level, public",
        ),
        (  # operator not available on streams
            {"title__like": "x"},
            400,
            f"Operator 'like' is not available on streams; use one of: {STREAM_OPERATORS}",
        ),
        (  # unknown operator
            {"is_complete__bogus": "1"},
            400,
            f"Operator 'bogus' is not available on streams; use one of: {STREAM_OPERATORS}",
        ),
        (  # an operator the field's type has not
            {"is_complete__gt": "1"},
            400,
            "Operator 'gt' does not apply to 'is_complete' (boolean); use one of: eq, ne, in, "
            "nin, isnull",
        ),
        (  # a value that does not parse
            {"id": "abc"},
            422,
            "Invalid value 'abc' for 'id': Input should be a valid integer, unable to parse "
            "string as an integer",
        ),
        (  # as the list answers (it was read as false)
            {"is_complete__isnull": "maybe"},
            422,
            "Invalid value 'maybe' for 'is_complete': Input should be a valid boolean, unable "
            "to interpret input",
        ),
        (  # a list with a value that does not parse
            {"id__in": "1,x"},
            422,
            "Invalid value 'x' for 'id': Input should be a valid integer, unable to parse "
            "string as an integer",
        ),
        (  # one value more than CrudConfig.max_in_values
            {"id__nin": ",".join(str(i) for i in range(501))},
            422,
            "Too many values for id__nin: at most 500",
        ),
    ],
)
async def test_bad_filters_are_refused(
    sqlite_url: str, query: dict[str, str], status: int, detail: str
) -> None:
    app, cape = make_app(sqlite_url)
    assert await refusal(app, cape, who("alice"), **query) == (status, detail)


async def test_websocket_streams_use_the_auth_provider(db_url: str) -> None:
    """Header auth reaches WebSocket handshakes: alice sees hers, a guest only public rows."""
    app, cape = make_app(db_url)
    guest = who(role="guest")
    async with serve(app) as live, ws(live, who("alice")) as mine, ws(live, guest) as anyone:
        async with cape.get_privileged_session() as session:
            for row in (
                Task(title="bob's", owner_id="bob"),
                Task(title="public", owner_id="bob", public=True),
                Task(title="alice's", owner_id="alice"),
            ):
                session.add(row)
                await session.flush()
            await session.commit()
        await mine.wait_for_title("alice's")
        await anyone.wait_for_title("public")
    assert mine.titles() == [("INSERT", "alice's")]
    assert anyone.titles() == [("INSERT", "public")]


async def test_a_bearer_token_provider_works_for_websockets(sqlite_url: str) -> None:
    """The README's provider (HTTPBearer): a valid token streams as its user over WS and SSE;
    a bad one is refused with 401 before any subscription exists."""
    bearer = HTTPBearer(auto_error=False)

    async def bearer_auth(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> AuthContext:
        if credentials is None:
            return AuthContext()
        if credentials.credentials != "alice-token":
            raise HTTPException(status_code=401, detail="Invalid token")
        return AuthContext(id="alice")

    app = FastAPI()
    cape = CapeBase(app=app, db_url=sqlite_url, get_auth_context=bearer_auth)
    cape.publish(Task)
    cape.permission_required(Task, owner_field="owner_id", actions=["*"])
    good, bad = {"Authorization": "Bearer alice-token"}, {"Authorization": "Bearer nope"}
    async with serve(app) as live, ws(live, good) as over_ws, sse(live, good) as over_sse:
        async with ws(live, bad) as refused_ws, sse(live, bad) as refused_sse:
            await refused_ws.ended.wait()
            await refused_sse.ended.wait()
        async with cape.get_privileged_session() as session:
            session.add_all(
                [Task(title="bob's", owner_id="bob"), Task(title="alice's", owner_id="alice")]
            )
            await session.commit()
        await over_ws.wait_for_title("alice's")
        await over_sse.wait_for_title("alice's")
    assert over_ws.titles() == over_sse.titles() == [("INSERT", "alice's")]
    assert refused_ws.status == refused_sse.status == 401


async def test_a_provider_taking_request_works_for_websockets(sqlite_url: str) -> None:
    """Regression: a provider declared as ``async def auth(request: Request)`` (the seed
    README's shape) failed on WebSocket with "missing argument 'request'" and a 500."""

    async def request_auth(request: Request) -> AuthContext:
        user = request.headers.get("x-user")
        return AuthContext(id=user) if user else AuthContext()

    app = FastAPI()
    cape = CapeBase(app=app, db_url=sqlite_url, get_auth_context=request_auth)
    cape.publish(Task)
    cape.permission_required(Task, owner_field="owner_id", actions=["*"])
    async with serve(app) as live, ws(live, {"x-user": "alice"}) as over_ws:
        async with cape.get_privileged_session() as session:
            session.add_all(
                [Task(title="bob's", owner_id="bob"), Task(title="alice's", owner_id="alice")]
            )
            await session.commit()
        await over_ws.wait_for_title("alice's")
    assert over_ws.titles() == [("INSERT", "alice's")]


async def test_list_filters_parse_as_the_list_parses_them(sqlite_url: str) -> None:
    """``level__isnull=false`` on an integer field reads a boolean, not an integer;
    ``__in``/``__nin`` read comma-separated values, as many as CrudConfig.max_in_values."""
    app, cape = make_app(sqlite_url)
    filters = {
        "level__isnull": "false",
        "id__nin": ",".join(str(i) for i in range(100, 600)),  # 500 values: the most
        "level__in": "1,2",
    }
    async with serve(app) as live, sse(live, who("alice"), **filters) as stream:
        async with cape.get_privileged_session() as session:
            for title, level in (("level 3", 3), ("level 2", 2)):
                session.add(Task(title=title, owner_id="alice", level=level))
                await session.commit()
        await stream.wait_for_title("level 2")
    assert stream.status == 200 and stream.titles() == [("INSERT", "level 2")]
