"""The reference write path: create, update and delete of one row in the caller's session.

Everything a write means happens here through the ORM: model defaults, auth fields, the flush
checks of the policy, change capture, the row read back as stored. The driver path
(``writes.direct``) is an optimisation that must give the same answers; where it cannot decide
it hands the write to this one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..db.sessions import INTERNAL
from ..errors import NotFoundError, PermissionDeniedError
from ..identity.context import AuthContext
from ..policy.enforcement import check_in_database, row_image
from ..policy.sqlexpr import equals
from .conditions import Precondition

if TYPE_CHECKING:
    from ..crud.published import PublishedModel
    from ..policy import Policy


class SessionWriter:
    """Create, update and delete of one published model in sessions opened by ``session_for``
    (a session acting as the given caller), checked by ``policy``."""

    def __init__(
        self,
        policy: Policy,
        session_for: Callable[[AuthContext], AsyncSession],
        published: PublishedModel,
    ) -> None:
        self.policy = policy
        self.session_for = session_for
        self.published = published

    async def create(self, ctx: AuthContext, values: dict[str, Any]) -> dict[str, Any]:
        """Insert ``Model(**values)`` as ``ctx``; the row as stored."""
        obj = self.published.model(**values)
        async with self.session_for(ctx) as session:
            session.add(obj)
            return await _save(session, self.published, obj)

    async def update(
        self,
        ctx: AuthContext,
        key: Any,
        changes: dict[str, Any],
        precondition: Precondition | None = None,
    ) -> dict[str, Any]:
        """Set ``changes`` on the row ``key`` as ``ctx`` if ``precondition`` holds on it;
        the row as stored.

        Raises:
            NotFoundError: no row ``key`` the caller may read.
            PermissionDeniedError: the caller may not update it (or not to these values).
            PreconditionFailedError: ``precondition`` does not hold.
        """
        async with self.session_for(ctx) as session:
            obj = await self._load(session, key, locked=precondition is not None)
            await self._require(session, "update", ctx, row_image(obj))
            if precondition is not None:
                precondition(row_image(obj))
            for field, value in changes.items():
                if field in self.published.table.c:
                    setattr(obj, field, value)
            return await _save(session, self.published, obj)

    async def delete(
        self, ctx: AuthContext, key: Any, precondition: Precondition | None = None
    ) -> None:
        """Delete the row ``key`` as ``ctx`` if ``precondition`` holds on it.

        Raises:
            NotFoundError: no row ``key`` the caller may read.
            PermissionDeniedError: the caller may not delete it.
            PreconditionFailedError: ``precondition`` does not hold.
        """
        async with self.session_for(ctx) as session:
            obj = await self._load(session, key, locked=precondition is not None)
            await self._require(session, "delete", ctx, row_image(obj))
            if precondition is not None:
                precondition(row_image(obj))
            await session.delete(obj)
            await _commit(session)

    async def _load(self, session: AsyncSession, key: Any, *, locked: bool = False) -> Any:
        """The row with primary key ``key`` that the session's user can read, or 404;
        ``locked``: locked until the session commits (a conditional write compares it)."""
        p = self.published
        if locked:
            connection = await session.connection()
            if connection.dialect.name == "sqlite":
                # SQLite has no row locks and the driver begins only before a write: take the
                # database's write lock before reading, as the driver path's BEGIN IMMEDIATE.
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
        obj = await session.get(p.model, key, with_for_update=locked, populate_existing=locked)
        # MySQL finds 'abc' for the key 'ABC' under its default collations.
        if obj is None or getattr(obj, p.pk.key) != key:
            raise NotFoundError(p.name, key)
        return obj

    async def _require(
        self, session: AsyncSession, action: str, ctx: AuthContext, row: dict[str, Any]
    ) -> None:
        """Deny early, before any change is made: the flush checks again, on the stored row."""
        p = self.published
        verdict = self.policy.check_row(p.model, action, ctx, row)
        if verdict is None:
            verdict = await session.run_sync(
                lambda s: check_in_database(s, self.policy, p.model, action, ctx, row)
            )
        if not verdict:
            raise PermissionDeniedError(action, p.name, is_anonymous=ctx.is_anonymous)


async def _save(session: AsyncSession, published: PublishedModel, obj: Any) -> dict[str, Any]:
    """Commit ``obj`` and return its row as stored: server defaults filled in, values as the
    database keeps them (MySQL's DATETIME drops microseconds, for one)."""
    model, pk = published.model, published.pk
    # Read back past the caller's read rules: the write was allowed, and its answer is the row
    # as written even when the change moves it out of the caller's view (as on the direct path).
    read_back = select(model).execution_options(populate_existing=True, **INTERNAL)

    async def flush_and_read() -> None:
        await session.flush()
        await session.execute(read_back.where(equals(pk, getattr(obj, pk.key))))

    await _commit(session, before=flush_and_read)
    return row_image(obj)


async def _commit(
    session: AsyncSession, before: Callable[[], Awaitable[None]] | None = None
) -> None:
    try:
        if before is not None:
            await before()
        await session.commit()
    except (IntegrityError, DataError):
        await session.rollback()
        raise
