"""Contender (b): the same endpoints written by hand, the way the FastAPI and SQLModel tutorials
write them: an AsyncSession per request, ``session.get``, ``add``/``commit``/``refresh``.

Reads are public; update checks the owner in the WHERE clause, as capebase's rule does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from .common import database_url, tune_sqlite
from .model import Todo, TodoCreate, TodoRead, TodoUpdate

engine = create_async_engine(database_url())
tune_sqlite(engine)
app = FastAPI(title="hand-written FastAPI + SQLModel")


async def get_session() -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session:
        yield session


async def current_user(x_user_id: Annotated[str | None, Header()] = None) -> str | None:
    return x_user_id or None


async def require_user(user: Annotated[str | None, Depends(current_user)]) -> str:
    if user is None:
        raise HTTPException(status_code=401, detail="Authentication required")
    return user


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@app.get("/todo/{todo_id}", response_model=TodoRead)
async def get_todo(todo_id: int, session: SessionDep) -> Todo:
    todo = await session.get(Todo, todo_id)
    if todo is None:
        raise HTTPException(status_code=404, detail="Todo not found")
    return todo


@app.get("/todo", response_model=list[TodoRead])
async def list_todos(
    session: SessionDep,
    user_id: str | None = None,
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[Todo]:
    statement = select(Todo)
    if user_id is not None:
        statement = statement.where(Todo.user_id == user_id)
    statement = statement.order_by(Todo.id).offset(offset).limit(limit)
    return list((await session.exec(statement)).all())


@app.post("/todo", response_model=TodoRead, status_code=201)
async def create_todo(
    body: TodoCreate, session: SessionDep, user: Annotated[str, Depends(require_user)]
) -> Todo:
    todo = Todo(**body.model_dump(), user_id=user)
    session.add(todo)
    await session.commit()
    await session.refresh(todo)
    return todo


@app.patch("/todo/{todo_id}", response_model=TodoRead)
async def update_todo(
    todo_id: int,
    body: TodoUpdate,
    session: SessionDep,
    user: Annotated[str, Depends(require_user)],
) -> Todo:
    statement = select(Todo).where(Todo.id == todo_id, Todo.user_id == user)
    todo = (await session.exec(statement)).first()
    if todo is None:
        raise HTTPException(status_code=404, detail="Todo not found")
    todo.sqlmodel_update(body.model_dump(exclude_unset=True))
    session.add(todo)
    await session.commit()
    await session.refresh(todo)
    return todo
