"""Writes of the generated routes as a given caller: create, update and delete of one row,
behind one interface (``RowWriter``), whichever path runs them.

``session.SessionWriter`` is the reference: the ORM in the caller's session. ``direct``'s
``DirectWriter`` does the same in one short transaction on the driver connection, where the
database and the model allow it (``CrudConfig(fast_path=False)`` turns it off), and hands a
write it cannot decide to the reference (``row_writer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from ..db.direct import DirectExecutor
from ..db.sessions import ChangeSink
from ..identity.context import AuthContext
from .conditions import Precondition
from .direct import DirectWriter, Undecided
from .session import SessionWriter

if TYPE_CHECKING:
    from ..crud.published import PublishedModel
    from ..policy import Policy


class RowWriter(Protocol):
    """Create, update and delete of one model's rows as a caller; each returns the row as
    stored (its column keys and values) and raises ``NotFoundError`` or
    ``PermissionDeniedError`` as the generated routes answer them."""

    async def create(self, ctx: AuthContext, values: dict[str, Any]) -> dict[str, Any]: ...

    async def update(
        self,
        ctx: AuthContext,
        key: Any,
        changes: dict[str, Any],
        precondition: Precondition | None = None,
    ) -> dict[str, Any]: ...

    async def delete(
        self, ctx: AuthContext, key: Any, precondition: Precondition | None = None
    ) -> None: ...


class DriverFirst:
    """The driver path, and the reference for the writes it cannot decide."""

    def __init__(self, fast: DirectWriter, reference: SessionWriter) -> None:
        self.fast = fast
        self.reference = reference

    async def create(self, ctx: AuthContext, values: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.fast.create(ctx, values)
        except Undecided:
            return await self.reference.create(ctx, values)

    async def update(
        self,
        ctx: AuthContext,
        key: Any,
        changes: dict[str, Any],
        precondition: Precondition | None = None,
    ) -> dict[str, Any]:
        try:
            return await self.fast.update(ctx, key, changes, precondition)
        except Undecided:
            return await self.reference.update(ctx, key, changes, precondition)

    async def delete(
        self, ctx: AuthContext, key: Any, precondition: Precondition | None = None
    ) -> None:
        try:
            await self.fast.delete(ctx, key, precondition)
        except Undecided:
            await self.reference.delete(ctx, key, precondition)


def row_writer(
    published: PublishedModel,
    policy: Policy,
    sink: ChangeSink,
    session_for: Callable[[AuthContext], AsyncSession],
    direct: DirectExecutor | None,
) -> RowWriter:
    """The writer of ``published``'s rows: the driver path first where ``direct`` (``None``:
    off or unavailable) can write the model, the session path alone otherwise."""
    reference = SessionWriter(policy, session_for, published)
    if direct is None or not DirectWriter.supports(published, direct):
        return reference
    return DriverFirst(DirectWriter(policy, sink, published, direct), reference)


__all__ = ["DriverFirst", "Precondition", "RowWriter", "SessionWriter", "row_writer"]
