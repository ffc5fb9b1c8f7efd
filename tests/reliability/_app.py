"""The reliability tests' model, rules and header auth, an independent model of the rules,
and a CapeBase built from them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase


class ReliabilityModel(SQLModel, registry=registry()):
    """Tables of the reliability tests, in a registry (so a MetaData) of their own."""

    __test__ = False


class Memo(ReliabilityModel, table=True):
    """Owned by a user, in an org, at a level."""

    __tablename__ = "rel_memo"

    id: int | None = Field(default=None, primary_key=True)
    owner: FROM_AUTH_ID = Field(index=True, max_length=40)
    org: str = Field(default="red", max_length=20)
    level: int = Field(default=0, ge=0, le=9)
    body: str = Field(default="", max_length=200)


PATH = "/rel_memo"
FIELDS = ("owner", "org", "level", "body")


async def header_auth(
    x_user: str | None = Header(None),
    x_role: str | None = Header(None),
    x_org: str | None = Header(None),
) -> AuthContext:
    """``X-User``, ``X-Role`` and ``X-Org`` (comma-separated) → AuthContext; works for HTTP
    requests and WebSocket handshakes alike."""
    context: dict[str, Any] = {}
    if x_org:
        context["org"] = x_org.split(",")
    return AuthContext(id=x_user or None, role=x_role or None, context=context)


def who(
    user: str | None = None, role: str | None = None, orgs: str | None = None
) -> dict[str, str]:
    """The headers that make a request or a stream act as this caller."""
    headers: dict[str, str] = {}
    if user is not None:
        headers["X-User"] = user
    if role is not None:
        headers["X-Role"] = role
    if orgs is not None:
        headers["X-Org"] = orgs
    return headers


def memo_rules(cape: CapeBase) -> None:
    """Owners do anything with their memos; org members read their orgs' memos; admins do
    anything; nobody else, anonymous callers included, reads or writes anything."""
    cape.permission_required(Memo, owner_field="owner", actions=["*"])
    cape.permission_required(Memo, context_fields=["org"], actions=["read"])
    cape.permission_required(Memo, role="admin", actions=["*"])


def context_of(headers: dict[str, str]) -> AuthContext:
    """The AuthContext ``header_auth`` makes of ``headers`` (for the model of the rules)."""
    orgs = headers.get("X-Org")
    return AuthContext(
        id=headers.get("X-User"),
        role=headers.get("X-Role"),
        context={"org": orgs.split(",")} if orgs else {},
    )


def may_read(ctx: AuthContext, row: dict[str, Any]) -> bool:
    """The read rule, written independently of capebase."""
    if ctx.role == "admin":
        return True
    if ctx.id is not None and row.get("owner") == ctx.id:
        return True
    return row.get("org") in ctx.context.get("org", [])


def may_write(ctx: AuthContext, row: dict[str, Any]) -> bool:
    """The create/update/delete rule, written independently of capebase."""
    return ctx.role == "admin" or (ctx.id is not None and row.get("owner") == ctx.id)


def make_app(db_url: str, **options: Any) -> tuple[FastAPI, CapeBase]:
    """A fresh app on ``db_url`` publishing Memo under ``memo_rules``."""
    app = FastAPI()
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=header_auth, **options)
    cape.publish(Memo)
    memo_rules(cape)
    return app, cape
