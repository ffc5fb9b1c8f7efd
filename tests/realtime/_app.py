"""The realtime tests' model, rules and auth provider, and a CapeBase built from them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Header
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import FROM_AUTH_ID, AuthContext, CapeBase
from capebase.realtime.config import RealtimeConfig


class RealtimeModel(SQLModel, registry=registry()):
    """Tables of the realtime tests, in a registry (so a MetaData) of their own."""

    __test__ = False


class Task(RealtimeModel, table=True):
    """Owned by a user, in an org, at a clearance level; public rows everyone may read."""

    __tablename__ = "rt_task"

    id: int | None = Field(default=None, primary_key=True)
    owner_id: FROM_AUTH_ID = Field(index=True)
    title: str
    is_complete: bool = False
    org_id: str = "none"
    level: int = 0
    public: bool = False


async def header_auth(
    x_user: str | None = Header(None),
    x_role: str | None = Header(None),
    x_org: str | None = Header(None),
    x_clearance: int | None = Header(None),
) -> AuthContext:
    """``X-User``, ``X-Role``, ``X-Org`` and ``X-Clearance`` headers → AuthContext.

    Header parameters work for HTTP requests and WebSocket handshakes alike.
    """
    context: dict[str, Any] = {}
    if x_org is not None:
        context["org_id"] = x_org
    if x_clearance is not None:
        context["clearance"] = x_clearance
    return AuthContext(id=x_user, role=x_role, context=context)


def who(
    user: str | None = None,
    *,
    role: str | None = None,
    org: str | None = None,
    clearance: int | None = None,
) -> dict[str, str]:
    """The headers that make a request or a stream act as this caller."""
    headers: dict[str, str] = {}
    if user is not None:
        headers["X-User"] = user
    if role is not None:
        headers["X-Role"] = role
    if org is not None:
        headers["X-Org"] = org
    if clearance is not None:
        headers["X-Clearance"] = str(clearance)
    return headers


def make_app(db_url: str, **realtime: Any) -> tuple[FastAPI, CapeBase]:
    """A FastAPI app publishing Task with every kind of read rule.

    - owners may do anything with their rows;
    - role ``admin`` reads everything;
    - a caller whose context has ``org_id`` reads that org's rows;
    - role ``reader`` reads rows whose ``level`` is at most its ``clearance``;
    - roles ``reader`` and ``guest`` read public rows.

    The ``where`` rules are for some roles only, so that every rule applying to a caller
    without a role pins a column (the owner, the org): the hub finds such subscribers through
    its index, as a real app's would, rather than checking every change against them.
    """
    app = FastAPI()
    cape = CapeBase(
        app=app,
        db_url=db_url,
        get_auth_context=header_auth,
        realtime=RealtimeConfig(**realtime),
    )
    cape.publish(Task)
    cape.permission_required(Task, owner_field="owner_id", actions=["*"])
    cape.permission_required(Task, role="admin", actions=["read"])
    cape.permission_required(Task, context_fields=["org_id"], actions=["read"])
    cape.permission_required(
        Task,
        role="reader",
        where=lambda ctx: Task.level <= ctx.context.get("clearance", -1),
        actions=["read"],
    )
    cape.permission_required(
        Task, role=["reader", "guest"], where=lambda ctx: Task.public == True, actions=["read"]  # noqa: E712
    )
    return app, cape
