"""Several writes as one caller in one transaction: the bulk create and the batch route.

Each write is the reference path's (``writes.session``): the ORM in the caller's session, the
policy checked at flush, the change captured by the flush. Each is flushed on its own, so a
failure names its write, and the row it leaves is read back before the next one runs; nothing
is committed until every write succeeded, so a failure anywhere leaves neither a row nor a
change-log entry (the session rolls back as it closes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.sessions import INTERNAL
from ..errors import NotFoundError, PermissionDeniedError
from ..identity.context import AuthContext
from ..policy.enforcement import check_in_database, row_image
from ..policy.sqlexpr import equals

if TYPE_CHECKING:
    from ..crud.published import PublishedModel
    from ..policy import Policy


class WriteBatch:
    """Creates, updates and deletes of published models in ``session`` (acting as ``ctx``),
    each flushed and checked as ``SessionWriter``'s; ``commit`` stores them all."""

    def __init__(self, policy: Policy, session: AsyncSession, ctx: AuthContext) -> None:
        self.policy = policy
        self.session = session
        self.ctx = ctx

    async def create(self, published: PublishedModel, values: dict[str, Any]) -> dict[str, Any]:
        """Insert ``Model(**values)``; the row as stored."""
        obj = published.model(**values)
        self.session.add(obj)
        return await self._flush(published, obj)

    async def update(
        self, published: PublishedModel, key: Any, changes: dict[str, Any]
    ) -> dict[str, Any]:
        """Set ``changes`` on the row ``key``; the row as stored.

        Raises:
            NotFoundError: no row ``key`` the caller may read (now, after the earlier writes).
            PermissionDeniedError: the caller may not update it (or not to these values).
        """
        obj = await self._load(published, key)
        await self._require(published, "update", row_image(obj))
        for field, value in changes.items():
            if field in published.table.c:
                setattr(obj, field, value)
        return await self._flush(published, obj)

    async def delete(self, published: PublishedModel, key: Any) -> None:
        """Delete the row ``key``.

        Raises:
            NotFoundError: no row ``key`` the caller may read.
            PermissionDeniedError: the caller may not delete it.
        """
        obj = await self._load(published, key)
        await self._require(published, "delete", row_image(obj))
        await self.session.delete(obj)
        await self.session.flush()

    async def commit(self) -> None:
        """Store every write of the batch, and publish their changes."""
        await self.session.commit()

    async def _load(self, published: PublishedModel, key: Any) -> Any:
        # populate_existing: a row an earlier write of the batch loaded (or created) is read
        # again through the caller's read rules, not taken from the identity map, so a row
        # the batch moved out of the caller's view is a 404 as it would be to the next request.
        obj = await self.session.get(published.model, key, populate_existing=True)
        if obj is None or getattr(obj, published.pk.key) != key:  # MySQL: 'abc' for 'ABC'
            raise NotFoundError(published.name, key)
        return obj

    async def _require(
        self, published: PublishedModel, action: str, row: dict[str, Any]
    ) -> None:
        """Deny before any change is made, as ``SessionWriter`` does; the flush checks again."""
        model, ctx = published.model, self.ctx
        verdict = self.policy.check_row(model, action, ctx, row)
        if verdict is None:
            verdict = await self.session.run_sync(
                lambda s: check_in_database(s, self.policy, model, action, ctx, row)
            )
        if not verdict:
            raise PermissionDeniedError(action, published.name, is_anonymous=ctx.is_anonymous)

    async def _flush(self, published: PublishedModel, obj: Any) -> dict[str, Any]:
        """Flush ``obj`` and read its row back as stored (server defaults, the database's
        rounding), past the caller's read rules: the write was allowed."""
        await self.session.flush()
        pk = published.pk
        read_back = select(published.model).execution_options(
            populate_existing=True, **INTERNAL
        )
        await self.session.execute(read_back.where(equals(pk, getattr(obj, pk.key))))
        return row_image(obj)


@asynccontextmanager
async def write_batch(
    policy: Policy, session_for: Callable[[AuthContext], AsyncSession], ctx: AuthContext
) -> AsyncIterator[WriteBatch]:
    """A ``WriteBatch`` acting as ``ctx``; whatever it did is rolled back unless committed."""
    async with session_for(ctx) as session:
        try:
            yield WriteBatch(policy, session, ctx)
        except Exception:
            await session.rollback()  # as SessionWriter does, before the error is answered
            raise
