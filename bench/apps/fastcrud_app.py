"""Contender (c): FastCRUD's ``crud_router`` on the same model, configured as its docs say for
an owner rule: a ``PolicyConfig`` (public read, owner-only update/delete, created rows must
belong to the caller) and ``CreateConfig`` filling ``user_id`` from the caller.

``select_schema`` makes create and update return the row, as every other contender does.
FastCRUD's list endpoint also runs a COUNT query (its ``total_count``): that is its behaviour.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from fastcrud import CreateConfig, FilterConfig, PolicyConfig, crud_router
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from .common import database_url, tune_sqlite
from .model import Todo, TodoCreate, TodoRead, TodoUpdate

engine = create_async_engine(database_url())
tune_sqlite(engine)
sessions = async_sessionmaker(engine, expire_on_commit=False)
app = FastAPI(title="FastCRUD crud_router")


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


async def require_user(x_user_id: Annotated[str | None, Header()] = None) -> str:
    if not x_user_id:
        raise HTTPException(status_code=401, detail="Authentication required")
    return x_user_id


async def policy(x_user_id: Annotated[str | None, Header()] = None) -> PolicyConfig:
    if not x_user_id:
        return PolicyConfig(read=True)
    return PolicyConfig(
        read=True,
        create=True,
        create_check=Todo.user_id == x_user_id,
        update=Todo.user_id == x_user_id,
        delete=Todo.user_id == x_user_id,
    )


app.include_router(
    crud_router(
        session=get_session,
        model=Todo,
        create_schema=TodoCreate,
        update_schema=TodoUpdate,
        path="/todo",
        tags=["todo"],
        filter_config=FilterConfig(user_id=None),
        create_config=CreateConfig(auto_fields={"user_id": require_user}),
        select_schema=TodoRead,
        policy=policy,
    )
)
