"""The README's FastAPI Users example, complete: fastapi-users signs users in, capebase enforces.

FastAPI Users owns the users (``POST /auth/register``, ``POST /auth/jwt/login``); capebase
only needs an auth provider, a FastAPI dependency that turns the current user into an
AuthContext. Run it with::

    pip install fastapi-users uvicorn
    FASTAPI_USERS_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(64))') \\
        uvicorn examples.fastapi_users_provider:app

Two differences from the seed README's snippet, both deliberate:

- ``current_user(active=True, optional=True)``: without ``optional=True`` FastAPI Users
  answers 401 to anonymous callers itself, and the provider's ``AuthContext()`` branch never
  runs. With it, a bad token also comes back as "no user", so the provider refuses a request
  that carried a token which did not resolve: a bad token must never act as anonymous.
- The user table is reached through a small FastAPI Users adapter over SQLAlchemy sessions
  (below). The ``fastapi-users-db-sqlalchemy`` package would do the same, but it requires
  SQLAlchemy < 2.1, which capebase does not use.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import BaseUserDatabase
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import Field, SQLModel
from starlette.requests import HTTPConnection

from capebase import FROM_AUTH_ID, CapeBase
from capebase.model import AuthContext

SECRET = os.environ.get("FASTAPI_USERS_SECRET") or secrets.token_urlsafe(64)


class User(SQLModel, table=True):
    """The fields FastAPI Users needs, plus the role capebase's rules use."""

    __tablename__ = "app_user"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)
    hashed_password: str = Field(max_length=1024)
    is_active: bool = True
    is_superuser: bool = False
    is_verified: bool = False
    role: str | None = Field(default=None, max_length=64)


class Note(SQLModel, table=True):
    """A note, owned by the user who wrote it."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: FROM_AUTH_ID = Field(index=True, max_length=36)
    text: str


class UserRead(schemas.BaseUser[uuid.UUID]):
    role: str | None = None


class UserCreate(schemas.BaseUserCreate):
    pass


class UserDatabase(BaseUserDatabase[User, uuid.UUID]):
    """FastAPI Users' storage interface over plain SQLAlchemy sessions.

    Plain sessions, not capebase's: the user table is not under the permission policy, and its
    rows (password hashes!) stay out of capebase's change log.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def get(self, id: uuid.UUID) -> User | None:
        async with self.sessions() as session:
            return await session.get(User, id)

    async def get_by_email(self, email: str) -> User | None:
        query = select(User).where(User.email == email.lower())
        async with self.sessions() as session:
            return (await session.execute(query)).scalar()

    async def create(self, create_dict: dict[str, Any]) -> User:
        user = User(**{**create_dict, "email": create_dict["email"].lower()})
        async with self.sessions() as session:
            session.add(user)
            await session.commit()
        return user

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        async with self.sessions() as session:
            user = await session.merge(user)
            for key, value in update_dict.items():
                setattr(user, key, value)
            await session.commit()
        return user

    async def delete(self, user: User) -> None:
        async with self.sessions() as session:
            await session.delete(await session.merge(user))
            await session.commit()


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


def create_app(db_url: str = "sqlite+aiosqlite:///app.db") -> FastAPI:
    """The app: FastAPI Users' routes, and capebase's Note routes using its users."""
    app = FastAPI()
    cape_holder: list[CapeBase] = []

    async def get_user_db() -> AsyncIterator[UserDatabase]:
        yield UserDatabase(async_sessionmaker(cape_holder[0].engine, expire_on_commit=False))

    async def get_user_manager(
        user_db: UserDatabase = Depends(get_user_db),
    ) -> AsyncIterator[UserManager]:
        yield UserManager(user_db)

    auth_backend = AuthenticationBackend(
        name="jwt",
        transport=BearerTransport(tokenUrl="auth/jwt/login"),
        get_strategy=lambda: JWTStrategy(secret=SECRET, lifetime_seconds=3600),
    )

    # Assuming you have FastAPI Users configured with your User model
    fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])
    app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt")
    app.include_router(fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth")

    # Create auth context provider
    async def get_auth_context(
        request: HTTPConnection,
        # You can use any FastAPI dependencies in your auth context provider
        user: User | None = Depends(fastapi_users.current_user(active=True, optional=True)),
    ) -> AuthContext:
        if not user:
            if "authorization" in request.headers:
                raise HTTPException(401, "Invalid or expired token", {"WWW-Authenticate": "Bearer"})
            return AuthContext()
        return AuthContext(id=str(user.id), role=user.role, context={})

    # Initialize CapeBase with the auth context
    cape = CapeBase(app=app, db_url=db_url, get_auth_context=get_auth_context)
    cape_holder.append(cape)
    cape.publish(Note, routes=["list", "get", "create", "delete"])
    cape.permission_required(Note, owner_field="user_id", actions=["read", "create", "delete"])
    cape.permission_required(Note, role="admin", actions=["*"])
    return app


app = create_app(os.environ.get("FASTAPI_USERS_DB", "sqlite+aiosqlite:///app.db"))
