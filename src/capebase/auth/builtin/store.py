"""The built-in auth's database access: users and refresh-token families.

It uses plain SQLAlchemy sessions, not capebase's: the permission policy does not apply to these
tables, and their changes (password hashes included) never reach the change log or its streams.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from ...db.schema import create_all
from ...policy.sqlexpr import equals
from .errors import AccountExistsError, InvalidTokenError
from .models import RefreshToken, User, as_utc, metadata, new_id
from .tokens import new_refresh_token, refresh_token_digest

CHECK_BATCH = 500
"""Sign-ins checked per query when open streams are re-checked."""


class TokenReuseError(InvalidTokenError):
    """A refresh token that was already rotated came back: its family has been revoked."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__()


@dataclass(frozen=True, slots=True)
class IssuedRefresh:
    """A new refresh token (shown to the client once) and the sign-in it belongs to."""

    token: str
    session_id: str
    user: User


class UserStore:
    """Reads and writes ``capebase_users`` and ``capebase_refresh_tokens`` on ``engine``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def create_tables(self) -> None:
        """Create the two tables if they are missing."""
        await create_all(self.engine, [metadata])

    async def missing_tables(self) -> list[str]:
        """The names of the two tables that do not exist."""

        def missing(connection: Any) -> list[str]:
            names = set(inspect(connection).get_table_names())
            return [name for name in metadata.tables if name not in names]

        async with self.engine.connect() as connection:
            return await connection.run_sync(missing)

    # -- users -------------------------------------------------------------------------------

    async def add_user(self, user: User) -> User:
        """Insert ``user``.

        Raises:
            AccountExistsError: its email or username is taken.
        """
        taken = col(User.email) == user.email
        if user.username is not None:
            taken = taken | (col(User.username) == user.username)
        async with self._sessions() as session:
            if (await session.execute(select(col(User.id)).where(taken))).first() is not None:
                raise AccountExistsError()
            session.add(user)
            try:
                await session.commit()
            except IntegrityError as exc:  # a concurrent sign-up took it since the check
                raise AccountExistsError() from exc
        return user

    async def find_login(self, login: str) -> User | None:
        """The user whose email (when ``login`` has an ``@``) or username is exactly ``login``.

        Exact on every database: MySQL and MariaDB would otherwise compare with the column's
        collation, where ``alícé@example.com`` is ``alice@example.com``.
        """
        column = col(User.email) if "@" in login else col(User.username)
        async with self._sessions() as session:
            return (await session.execute(select(User).where(equals(column, login)))).scalar()

    async def get(self, user_id: str) -> User | None:
        """The user with id ``user_id``."""
        async with self._sessions() as session:
            return await session.get(User, user_id)

    async def update_user(self, user_id: str, **values: Any) -> bool:
        """Set columns of one user; False when there is no such user."""
        async with self._sessions() as session, session.begin():
            result: Any = await session.execute(
                update(User).where(col(User.id) == user_id).values(**values)
            )
            return bool(result.rowcount)

    async def session_user(self, user_id: str, session_id: str) -> tuple[bool, str | None] | None:
        """``(is_active, role)`` of ``user_id`` if sign-in ``session_id`` is still open."""
        is_open = exists().where(
            col(RefreshToken.family_id) == session_id,
            col(RefreshToken.user_id) == user_id,
            col(RefreshToken.revoked_at).is_(None),
        )
        query = select(col(User.is_active), col(User.role)).where(col(User.id) == user_id, is_open)
        async with self.engine.connect() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else (bool(row[0]), row[1])

    async def open_sign_ins(self, sessions: set[str]) -> dict[str, tuple[str, str | None]]:
        """``{sign-in id: (user id, role)}`` of ``sessions`` still open, of active users."""
        found: dict[str, tuple[str, str | None]] = {}
        ordered = sorted(sessions)
        async with self.engine.connect() as connection:
            for start in range(0, len(ordered), CHECK_BATCH):
                query = (
                    select(col(RefreshToken.family_id), col(User.id), col(User.role))
                    .join(User, col(User.id) == col(RefreshToken.user_id))
                    .where(
                        col(RefreshToken.family_id).in_(ordered[start : start + CHECK_BATCH]),
                        col(RefreshToken.revoked_at).is_(None),
                        col(User.is_active).is_(True),
                    )
                    .distinct()
                )
                for family, user_id, role in await connection.execute(query):
                    found[family] = (user_id, role)
        return found

    # -- refresh tokens ----------------------------------------------------------------------

    async def start_session(self, user: User, now: datetime, expires_at: datetime) -> IssuedRefresh:
        """Open a sign-in for ``user``: a new family with its first refresh token."""
        token, family = new_refresh_token(), new_id()
        async with self._sessions() as session, session.begin():
            session.add(_token_row(user.id, family, token, now, expires_at))
        return IssuedRefresh(token=token, session_id=family, user=user)

    async def rotate(self, token: str, now: datetime, expires_at: datetime) -> IssuedRefresh:
        """Revoke ``token`` and issue the next one of its family.

        Raises:
            TokenReuseError: ``token`` was already rotated; the family is now revoked.
            InvalidTokenError: unknown, expired or revoked token, or a disabled user.
        """
        async with self._sessions() as session, session.begin():
            row = await _find(session, token)
            if row is None:
                raise InvalidTokenError()
            if row.revoked_at is None:
                issued = await _rotate(session, row, now, expires_at)
                if issued is not None:
                    return issued
            # Already rotated, before this request or concurrently with it (the other
            # request's revoke won): a reuse either way. Revoke (and commit) before raising:
            # raising inside the transaction would undo it.
            await _revoke(session, col(RefreshToken.family_id) == row.family_id, now)
        raise TokenReuseError(row.user_id)

    async def end_session(self, token: str | None, session_id: str | None, now: datetime) -> str:
        """Revoke the family of ``token`` (or sign-in ``session_id``); returns its user's id.

        Raises:
            InvalidTokenError: no such token or sign-in.
        """
        async with self._sessions() as session, session.begin():
            if token is not None:
                row = await _find(session, token)
            else:
                query = select(RefreshToken).where(col(RefreshToken.family_id) == session_id)
                row = (await session.execute(query.limit(1))).scalar()
            if row is None:
                raise InvalidTokenError()
            await _revoke(session, col(RefreshToken.family_id) == row.family_id, now)
            return row.user_id

    async def end_all_sessions(self, user_id: str, now: datetime) -> None:
        """Revoke every refresh token of ``user_id``."""
        async with self._sessions() as session, session.begin():
            await _revoke(session, col(RefreshToken.user_id) == user_id, now)


async def _rotate(
    session: AsyncSession, row: RefreshToken, now: datetime, expires_at: datetime
) -> IssuedRefresh | None:
    """The next token of ``row``'s family, or None when a concurrent request rotated ``row``
    first."""
    user = await session.get(User, row.user_id)
    if as_utc(row.expires_at) <= now or user is None or not user.is_active:
        raise InvalidTokenError()
    # Conditional on still being unrevoked, so two concurrent refreshes with one token cannot
    # both succeed.
    if await _revoke(session, col(RefreshToken.id) == row.id, now) != 1:
        return None
    successor = new_refresh_token()
    session.add(_token_row(user.id, row.family_id, successor, now, expires_at))
    return IssuedRefresh(token=successor, session_id=row.family_id, user=user)


async def _find(session: AsyncSession, token: str) -> RefreshToken | None:
    digest = refresh_token_digest(token)
    query = select(RefreshToken).where(col(RefreshToken.token_hash) == digest)
    return (await session.execute(query)).scalar()


async def _revoke(session: AsyncSession, condition: Any, now: datetime) -> int:
    result: Any = await session.execute(
        update(RefreshToken)
        .where(condition, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)


def _token_row(
    user_id: str, family: str, token: str, now: datetime, expires_at: datetime
) -> RefreshToken:
    return RefreshToken(
        user_id=user_id,
        family_id=family,
        token_hash=refresh_token_digest(token),
        created_at=now,
        expires_at=expires_at,
    )
