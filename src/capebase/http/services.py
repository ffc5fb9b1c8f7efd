"""What the generated routes and streams use of a CapeBase, handed to them as one value when
a model is published: they never see the facade itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from ..auth.provider import AuthProvider
from ..crud.config import CrudConfig
from ..db.direct import DirectExecutor
from ..identity.context import AuthContext
from ..limits import LimitsConfig
from ..policy import Policy
from ..realtime.config import RealtimeConfig
from ..realtime.hub import Hub

if TYPE_CHECKING:
    from ..crud.published import PublishedModel


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteServices:
    """The parts of one CapeBase that its generated REST routes and streams work with."""

    policy: Policy
    engine: AsyncEngine
    direct: DirectExecutor | None
    """The driver connection of the generated routes' reads and writes, if the database has one."""
    hub: Hub
    user_session: Callable[[AuthContext], AsyncSession]
    """A session acting as the given caller (``CapeBase.get_session``)."""
    auth_dependency: Callable[..., Any]
    auth_provider: AuthProvider
    crud: CrudConfig
    realtime: RealtimeConfig
    limits: LimitsConfig
    published: Mapping[type[Any], PublishedModel] = field(default_factory=dict)
    """The models published so far, and later (the app's own mapping): what relations reach."""


def session_dependency(
    auth_dependency: Callable[..., Any], user_session: Callable[[AuthContext], AsyncSession]
) -> Callable[..., AsyncIterator[AsyncSession]]:
    """A FastAPI dependency yielding a session that acts as the request's caller
    (``CapeBase.get_db_dependency``)."""

    async def db_session(
        ctx: AuthContext = Depends(auth_dependency),
    ) -> AsyncIterator[AsyncSession]:
        async with user_session(ctx) as session:
            yield session

    return db_session
