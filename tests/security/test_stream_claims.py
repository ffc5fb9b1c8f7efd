"""Resume tokens and a caller whose claims changed (ninth review, a10).

OWASP API Security Top 10 (2023):
- API1 Broken Object Level Authorization: tokens were bound to the caller's id and role, not
  to its claims (``AuthContext.context``), which read rules use. Alice, clearance 1, kept a
  token; a level-3 document "ACQUISITION TARGET" was written and renamed; her clearance
  became 3; her resumed stream replayed the INSERT with the secret first title and the
  UPDATE with it as ``old``, which REST never showed her.

Now a token is bound to everything a rule may read of the caller (id, role, and the claims,
canonically written down), so a caller whose claims changed in any way gets a ``reset``; a
caller with the same claims (written in another order) still resumes; claims that cannot be
written down canonically never resume. Claim shapes are generated from one caller's claims by
changing each value in each way its type allows. SSE and WebSocket, on SQLite, PostgreSQL and
MariaDB.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
from fastapi import FastAPI, Header
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import AuthContext, CapeBase
from tests.realtime._live import LiveServer, SSEStream, WSStream, dispatched, serve, wait_until

SECRET = "ACQUISITION TARGET: Initech"
ADMIN = {"X-User": "root", "X-Role": "admin"}


class Base(SQLModel, registry=registry()):
    pass


class Doc(Base, table=True):
    __tablename__ = "cl_doc"
    id: int | None = Field(default=None, primary_key=True)
    title: str
    level: int = 0
    org_id: str = "none"
    public: bool = False


def decoded(value: Any) -> Any:
    """JSON with a few tags for what JSON lacks: ``{"$set": [...]}``, ``{"$tuple": [...]}``,
    ``{"$opaque": 1}`` (an object with no canonical text)."""
    if isinstance(value, dict):
        if "$set" in value:
            return frozenset(decoded(v) for v in value["$set"])
        if "$tuple" in value:
            return tuple(decoded(v) for v in value["$tuple"])
        if "$opaque" in value:
            return object()
        return {k: decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decoded(v) for v in value]
    return value


async def claims_auth(
    x_user: str | None = Header(None),
    x_role: str | None = Header(None),
    x_claims: str | None = Header(None),
) -> AuthContext:
    context = decoded(json.loads(x_claims)) if x_claims else {}
    return AuthContext(id=x_user, role=x_role, context=context)


def caller(claims: dict[str, Any], role: str = "reader") -> dict[str, str]:
    return {"X-User": "alice", "X-Role": role, "X-Claims": json.dumps(claims)}


BASE: dict[str, Any] = {
    "clearance": 1,
    "org_id": "acme",
    "teams": ["red"],
    "meta": {"tier": "gold", "since": 2020},
    "beta": False,
    "regions": {"$set": ["eu", "us"]},
}


def changed_values(value: Any) -> Iterator[tuple[str, Any]]:
    """Other values for a claim, each way its type allows."""
    if isinstance(value, bool):
        yield "negated", not value
        yield "as a number", int(value)
    elif isinstance(value, int):
        yield "raised", value + 2
        yield "as a float", float(value)
        yield "as text", str(value)
    elif isinstance(value, str):
        yield "another text", value + "-x"
        yield "in a list", [value]
        yield "other case", value.upper()
    elif isinstance(value, list):
        yield "grown", [*value, "blue"]
        yield "emptied", []
        yield "as a tuple", {"$tuple": value}
    elif isinstance(value, dict) and "$set" in value:
        yield "shrunk", {"$set": value["$set"][:1]}
        yield "as a list", value["$set"]
    elif isinstance(value, dict):
        for key, inner in value.items():
            for how, other in changed_values(inner):
                yield f"{key} {how}", {**value, key: other}
        yield "a key added", {**value, "extra": 1}


def claim_changes() -> Iterator[tuple[str, dict[str, Any]]]:
    for key, value in BASE.items():
        for how, other in changed_values(value):
            yield f"{key}: {how}", {**BASE, key: other}
        yield f"{key}: removed", {k: v for k, v in BASE.items() if k != key}
        yield f"{key}: null", {**BASE, key: None}
    yield "a claim added", {**BASE, "admin": True}


def make_app(db_url: str) -> tuple[FastAPI, CapeBase]:
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=claims_auth)
    cape.publish(Doc)
    cape.permission_required(Doc, role="admin", actions=["*"])
    cape.permission_required(Doc, role="reader", actions=["read"],
                             where=lambda ctx: Doc.level <= int(ctx.context["clearance"] or 0))
    cape.permission_required(Doc, role="reader", actions=["read"], context_fields=["org_id"])
    cape.permission_required(Doc, actions=["read"], where=lambda ctx: Doc.public == True)  # noqa: E712
    return app, cape


async def resume_as(
    live: LiveServer, client: httpx.AsyncClient, headers: dict[str, str], token: str
) -> list[Any]:
    """Resume ``token`` as ``headers`` on SSE and WebSocket; each stream's record once a
    public marker row written after the resume has reached it."""
    async with AsyncExitStack() as stack:
        params = {"last_event_id": token}
        streams = [
            await stack.enter_async_context(cls(base, "/cl_doc/subscribe", headers, params))
            for cls, base in ((SSEStream, live.url), (WSStream, live.ws_url))
        ]
        marker = (await client.post("/cl_doc", json={"title": "marker", "public": True},
                                    headers=ADMIN)).json()["id"]
        for s in streams:
            await wait_until(lambda s=s: marker in [m["payload"]["id"] for m in s.messages],
                             what=f"the marker on {s}")
        return streams


async def token_then_secret(
    live: LiveServer, client: httpx.AsyncClient, headers: dict[str, str]
) -> str:
    """A token of ``headers``'s stream, then a level-3 document of initech written with the
    secret title and renamed."""
    async with SSEStream(live.url, "/cl_doc/subscribe", headers) as s:
        await wait_until(lambda: s.ready, what="the ready event")
        token = s.ready[0]["id"]
    body = {"title": SECRET, "level": 3, "org_id": "initech"}
    doc = (await client.post("/cl_doc", json=body, headers=ADMIN)).json()
    await client.patch(f"/cl_doc/{doc['id']}", json={"title": "Q3 planning"}, headers=ADMIN)
    return str(token)


async def test_a_caller_whose_claims_changed_is_reset(db_url: str) -> None:
    cases = dict(claim_changes())
    assert len(cases) >= 30
    # Among them, changes that let the caller read the secret row (the leak's shape).
    assert "clearance: raised" in cases and "org_id: another text" in cases
    app, cape = make_app(db_url)
    results: dict[str, list[Any]] = {}
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        for name, after in [*cases.items(), ("a role changed", BASE)]:
            role = "guest" if name == "a role changed" else "reader"
            token = await token_then_secret(live, client, caller(BASE))
            await dispatched(cape)
            results[name] = await resume_as(live, client, caller(after, role), token)
    for name, streams in results.items():
        for s in streams:
            assert [c["event"] for c in s.controls] == ["reset"], (name, s)
            assert [m["payload"]["title"] for m in s.messages] == ["marker"], (name, s)


async def test_the_same_claims_resume(db_url: str) -> None:
    """The near-miss: equal claims, written in another order (keys, set members), replay."""
    reordered = {k: BASE[k] for k in reversed(BASE)}
    reordered["regions"] = {"$set": list(reversed(BASE["regions"]["$set"]))}
    reordered["meta"] = {k: BASE["meta"][k] for k in reversed(BASE["meta"])}
    app, cape = make_app(db_url)
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        token = await token_then_secret(live, client, caller(BASE))
        visible = {"title": "level one", "level": 1}
        await client.post("/cl_doc", json=visible, headers=ADMIN)
        await dispatched(cape)
        streams = await resume_as(live, client, caller(reordered), token)
    for s in streams:
        assert s.controls == [], s
        assert [m["payload"]["title"] for m in s.messages] == ["level one", "marker"]


async def test_claims_without_a_canonical_form_never_resume(db_url: str) -> None:
    """A claim no canonical text exists for (an arbitrary object): no replay, a reset, even
    for the very same caller."""
    claims = {**BASE, "session": {"$opaque": 1}}
    app, cape = make_app(db_url)
    async with serve(app) as live, httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        token = await token_then_secret(live, client, caller(claims))
        await dispatched(cape)
        streams = await resume_as(live, client, caller(claims), token)
    for s in streams:
        assert [c["event"] for c in s.controls] == ["reset"], s
        assert "cannot be bound" in s.controls[0]["reason"]
        assert [m["payload"]["title"] for m in s.messages] == ["marker"]
