"""Every code block of the seed README (``tests/seed_readme.md``, a verbatim copy of the user's
original README) runs here and does what its comments say, on each database.

The blocks run as written, in one namespace per test, as a reader pasting them into one file
would, with only:

- the corrections DESIGN.md lists ("Known seed slips"): ``datetime.utcnow`` becomes
  ``datetime.now(timezone.utc)``;
- the database URL literal replaced by the test's database on PostgreSQL and MariaDB (on SQLite
  the literal is kept and the test runs in a temporary directory);
- names a block uses but leaves to the reader (``auth_provider``, "your auth provider"; the
  ``session`` and ``todo_id`` of the last fragment) supplied by the test;
- ``from sqlmodel import SQLModel`` giving a SQLModel base with its own registry, so that each
  test's ``Todo`` (table ``todo``) does not collide with other tables named ``todo`` in
  ``SQLModel.metadata``, such as the example app's.
"""

from __future__ import annotations

import ast
import builtins
import re
import sys
import types
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlmodel
from fastapi import Depends, Request
from sqlalchemy.orm import registry

from capebase import AuthContext, ModelChange
from capebase.testing import app_client
from tests._databases import DbKind
from tests.apps import as_user, header_auth

README = Path(__file__).with_name("seed_readme.md")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS: list[tuple[str, str]] = FENCE.findall(README.read_text(encoding="utf-8"))
PYTHON = [code for language, code in BLOCKS if language == "python"]

# The python blocks, in README order, and the line each starts with.
(
    MODEL,
    SETUP,
    CUSTOM_ROUTE,
    SUBSCRIBE,
    ROUTE_SUBSET,
    CUSTOM_SCHEMAS,
    AUTH_PROVIDER,
    FASTAPI_USERS,
    PROMETHEUS,
    RECOMMENDED,
    NOT_RECOMMENDED,
) = range(11)
FIRST_LINES = [
    "from datetime import datetime",
    "from fastapi import FastAPI, Depends",
    "from sqlalchemy import select",
    "@cape.subscribe(Todo)",
    'cape.publish(Todo, routes=["list", "get", "create"])',
    "# Define custom schema for creation",
    "from capebase.auth import AuthContext",
    "from fastapi import Request, Depends",
    "from starlette_prometheus import PrometheusMiddleware, metrics",
    '@app.patch("/todo/{todo_id}")',
    "# Use ORM-style operations instead",
]

# DESIGN.md, "Known seed slips": datetime.utcnow is naive.
CORRECTIONS = [
    ("from datetime import datetime\n", "from datetime import datetime, timezone\n"),
    ("default_factory=datetime.utcnow", "default_factory=lambda: datetime.now(timezone.utc)"),
]
URLS = ["sqlite+aiosqlite:///todos.db", "sqlite+aiosqlite:///app.db"]

ALICE = as_user("alice")
BOB = as_user("bob")
ADMIN = as_user("root", role="admin")


def test_the_readme_has_the_blocks_this_file_runs() -> None:
    """If the README changes, this file must change with it."""
    assert [language for language, _ in BLOCKS] == ["bash", *["python"] * 11]
    assert [code.splitlines()[0].strip() for code in PYTHON] == FIRST_LINES
    for old, _new in CORRECTIONS:
        assert old in PYTHON[MODEL]


def is_publish(statement: ast.stmt, *, with_schemas: bool) -> bool:
    """Whether ``statement`` is ``cape.publish(Todo)`` (or, with schemas, the custom call)."""
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Call)
        and ast.unparse(statement.value.func) == "cape.publish"
        and bool(statement.value.keywords) == with_schemas
    )


def is_definition(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.ClassDef | ast.Import | ast.ImportFrom)


class Readme:
    """One reader's file: README blocks run one after another in a shared namespace."""

    def __init__(self, db_url: str, db_kind: DbKind, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.db_url = db_url
        self.db_kind = db_kind
        if db_kind == "sqlite":
            monkeypatch.chdir(tmp_path)  # the README's own sqlite:///todos.db, in a scratch dir
        self.namespace: dict[str, Any] = {
            "__name__": "seed_readme",
            "__builtins__": _builtins_with_own_sqlmodel_registry(),
        }

    def source(self, index: int) -> str:
        code = PYTHON[index]
        if index == MODEL:
            for old, new in CORRECTIONS:
                code = code.replace(old, new)
        if self.db_kind != "sqlite":
            for url in URLS:
                code = code.replace(f'"{url}"', repr(self.db_url))
        return code

    async def run(self, index: int, keep: Callable[[ast.stmt], bool] | None = None) -> None:
        """Run block ``index``, or only its statements ``keep`` accepts."""
        tree = ast.parse(self.source(index))
        if keep is not None:
            tree.body = [statement for statement in tree.body if keep(statement)]
        # dont_inherit: this file's `from __future__ import annotations` must not leak into
        # the README's code (SQLModel needs real annotations).
        code = compile(tree, f"<README python block {index}>", "exec",
                       flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        result = eval(code, self.namespace)  # a coroutine when the block awaits at top level
        if result is not None:
            await result

    def __getitem__(self, name: str) -> Any:
        return self.namespace[name]

    def define(self, **names: Any) -> None:
        self.namespace.update(names)


def _builtins_with_own_sqlmodel_registry() -> dict[str, Any]:
    class SQLModel(sqlmodel.SQLModel, registry=registry()):
        pass

    shim = types.ModuleType("sqlmodel")
    shim.__dict__.update(sqlmodel.__dict__)
    shim.SQLModel = SQLModel  # type: ignore[attr-defined]
    real_import = builtins.__import__

    def import_(name: str, globals: Any = None, locals: Any = None,
                fromlist: Any = (), level: int = 0) -> Any:
        if name == "sqlmodel" and level == 0:
            return shim
        return real_import(name, globals, locals, fromlist, level)

    return {**builtins.__dict__, "__import__": import_}


@pytest.fixture
def readme(db_url: str, db_kind: DbKind, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Readme:
    return Readme(db_url, db_kind, tmp_path, monkeypatch)


async def quick_start(readme: Readme, *, with_schemas: bool) -> None:
    """Blocks 1-4, with one of the two ``publish`` calls of block 2 (see below)."""
    await readme.run(MODEL)
    readme.define(auth_provider=header_auth)  # "Your auth provider"
    await readme.run(CUSTOM_SCHEMAS, keep=is_definition)  # CreateTodo and UpdateTodo
    await readme.run(SETUP, keep=lambda s: not is_publish(s, with_schemas=not with_schemas))
    await readme.run(CUSTOM_ROUTE)
    await readme.run(SUBSCRIBE)


async def test_quick_start_with_custom_schemas(readme: Readme) -> None:
    await quick_start(readme, with_schemas=True)
    app, cape, todo_model = readme["app"], readme["cape"], readme["Todo"]
    assert app.title == "Real-time Todo App"
    async with app_client(app) as client:
        assert (await client.get("/todo")).json() == []  # public read access
        assert (await client.post("/todo", json={"task": "write"})).status_code == 401

        response = await client.post("/todo", json={"task": "write"}, headers=ALICE)
        assert response.status_code == 201, response.text
        written = response.json()
        assert written["user_id"] == "alice"  # populated from the auth context
        assert written["is_complete"] is False
        inserted = datetime.fromisoformat(written["inserted_at"])
        assert inserted.tzinfo is not None
        assert abs((datetime.now(UTC) - inserted).total_seconds()) < 60
        for body in ({"task": "x", "user_id": "bob"}, {"task": "x", "inserted_at": "2024"}):
            assert (await client.post("/todo", json=body, headers=ALICE)).status_code == 422
        bobs = (await client.post("/todo", json={"task": "bob's"}, headers=BOB)).json()
        assert bobs["user_id"] == "bob"

        # UpdateTodo: only the completion status may change, by the owner or an admin
        mine = f"/todo/{written['id']}"
        assert (await client.patch(mine, json={"task": "x"}, headers=ALICE)).status_code == 422
        response = await client.patch(mine, json={"is_complete": True}, headers=BOB)
        assert response.status_code == 403
        assert (await client.delete(mine, headers=BOB)).status_code == 403
        response = await client.patch(mine, json={"is_complete": True}, headers=ALICE)
        assert response.status_code == 200
        assert response.json() == {**written, "is_complete": True}

        # the custom route, through get_db_dependency, is not shadowed by /todo/{id}
        response = await client.get("/todo/filter", params={"completed": "true"})
        assert response.status_code == 200, response.text
        assert [t["id"] for t in response.json()] == [written["id"]]
        response = await client.get("/todo/filter", params={"completed": "false"})
        assert [t["id"] for t in response.json()] == [bobs["id"]]

        # admins have full access to all todos
        theirs = f"/todo/{bobs['id']}"
        response = await client.patch(theirs, json={"is_complete": True}, headers=ADMIN)
        assert response.status_code == 200
        assert response.json()["user_id"] == "bob"
        assert (await client.delete(theirs, headers=ADMIN)).status_code == 204
        assert [t["id"] for t in (await client.get("/todo")).json()] == [written["id"]]

    assert cape.handlers.for_model(todo_model) == [readme["on_todo_change"]]


async def test_quick_start_with_basic_publish(readme: Readme) -> None:
    await quick_start(readme, with_schemas=False)
    async with app_client(readme["app"]) as client:
        body = {"task": "plan", "is_complete": True, "inserted_at": "2024-05-01T09:00:00Z"}
        response = await client.post("/todo", json=body, headers=ALICE)
        assert response.status_code == 201, response.text
        todo = response.json()
        assert todo == {**body, "id": todo["id"], "user_id": "alice"}
        response = await client.post("/todo", json={"task": "x", "user_id": "bob"}, headers=ALICE)
        assert response.status_code == 422
        response = await client.patch(f"/todo/{todo['id']}", json={"task": "re-plan"},
                                      headers=ALICE)
        assert response.json() == {**todo, "task": "re-plan"}
        response = await client.get("/todo/filter", params={"completed": "true"})
        assert [t["task"] for t in response.json()] == ["re-plan"]


async def test_setup_block_exactly_as_written(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Block 2 publishes Todo twice (plain, then with custom schemas): the second replaces the
    first, so the custom schemas apply."""
    readme = Readme(sqlite_url, "sqlite", tmp_path, monkeypatch)
    await readme.run(MODEL)
    readme.define(auth_provider=header_auth)
    await readme.run(CUSTOM_SCHEMAS, keep=is_definition)
    await readme.run(SETUP)
    async with app_client(readme["app"]) as client:
        response = await client.post("/todo", json={"task": "a", "is_complete": True},
                                     headers=ALICE)
        assert response.status_code == 201  # the custom schema, published last, applies
        response = await client.patch(f"/todo/{response.json()['id']}", json={"task": "b"},
                                      headers=ALICE)
        assert response.status_code == 422


async def test_subscribe_handler_and_privileged_session(
    readme: Readme, capsys: pytest.CaptureFixture[str]
) -> None:
    """Block 4 registers the handler; here it is also called directly (delivery of changes is
    tested with the realtime package). No rule lets anyone read todos: only the privileged
    session inside the handler can count them."""
    await readme.run(MODEL)
    from fastapi import FastAPI

    from capebase import CapeBase

    app = FastAPI()
    cape = CapeBase(app=app, db_path=readme.db_url, get_auth_context=header_auth)
    readme.define(app=app, cape=cape)
    await readme.run(CUSTOM_ROUTE, keep=is_definition)  # its `from sqlalchemy import select`
    await readme.run(SUBSCRIBE)
    todo_model, handler = readme["Todo"], readme["on_todo_change"]
    assert cape.handlers.for_model(todo_model) == [handler]

    async with app_client(app):
        # Todo is neither published nor named by a rule, and its registry is the test's own
        # (see the module docstring): capebase does not know to create its table.
        async with cape.engine.begin() as connection:
            await connection.run_sync(todo_model.metadata.create_all)
        async with cape.get_privileged_session() as session:
            todos = [todo_model(user_id=user, task=task) for user, task in
                     [("alice", "first"), ("alice", "second"), ("bob", "third")]]
            session.add_all(todos)
            await session.commit()
        async with cape.get_session(AuthContext(id="alice")) as session:
            from sqlalchemy import select

            assert (await session.execute(select(todo_model))).scalars().all() == []
        capsys.readouterr()
        for event, todo in [("INSERT", todos[1]), ("UPDATE", todos[0]), ("DELETE", todos[2])]:
            change = ModelChange(id=1, table="todo", event=event, payload=todo, old=None,
                                 timestamp=datetime.now(UTC))
            await handler(change)
        out = capsys.readouterr().out.splitlines()
    assert "New todo created: second" in out
    assert "Todo updated: first" in out
    assert "Todo deleted: third" in out
    assert out.count("User has created 2 todos") >= 2
    assert "User has created 1 todos" in out


async def test_route_subset_and_custom_schema_blocks(readme: Readme) -> None:
    from fastapi import FastAPI

    from capebase import CapeBase

    await readme.run(MODEL)
    todo_model = readme["Todo"]

    def fresh_cape() -> None:
        app = FastAPI()
        cape = CapeBase(app=app, db_path=readme.db_url, get_auth_context=header_auth)
        cape.permission_required(todo_model, owner_field="user_id", actions=["*"])
        readme.define(app=app, cape=cape)

    fresh_cape()
    await readme.run(ROUTE_SUBSET)
    async with app_client(readme["app"]) as client:
        created = await client.post("/todo", json={"task": "a"}, headers=ALICE)
        assert created.status_code == 201
        url = f"/todo/{created.json()['id']}"
        assert (await client.get(url, headers=ALICE)).json() == created.json()
        assert len((await client.get("/todo", headers=ALICE)).json()) == 1
        assert (await client.patch(url, json={"task": "b"}, headers=ALICE)).status_code == 405
        assert (await client.delete(url, headers=ALICE)).status_code == 405

    fresh_cape()
    await readme.run(CUSTOM_SCHEMAS)
    async with app_client(readme["app"]) as client:
        created = await client.post("/todo", json={"task": "b"}, headers=ALICE)
        assert created.status_code == 201
        todo = created.json()
        assert todo["is_complete"] is False
        response = await client.post("/todo", json={"task": "c", "user_id": "x"}, headers=ALICE)
        assert response.status_code == 422
        url = f"/todo/{todo['id']}"
        assert (await client.patch(url, json={"task": "c"}, headers=ALICE)).status_code == 422
        response = await client.patch(url, json={"is_complete": True}, headers=ALICE)
        assert response.json() == {**todo, "is_complete": True}
        # "Other endpoints use the base Todo model"
        assert set((await client.get(url, headers=ALICE)).json()) == {
            "id", "user_id", "task", "is_complete", "inserted_at"
        }


async def test_auth_context_provider_block(readme: Readme) -> None:
    from fastapi import FastAPI

    await readme.run(MODEL)
    await readme.run(SETUP, keep=is_definition)  # the imports of block 2: FastAPI, CapeBase
    # The block uses Request without importing it; a reader has it from their app.
    readme.define(app=FastAPI(), Request=Request)
    await readme.run(AUTH_PROVIDER)
    cape, todo_model = readme["cape"], readme["Todo"]
    cape.publish(todo_model)
    cape.permission_required(todo_model, role="user_role", actions=["*"])
    async with app_client(readme["app"]) as client:
        response = await client.post("/todo", json={"task": "a"})
        assert response.status_code == 201, response.text
        assert response.json()["user_id"] == "user_id"
        assert len((await client.get("/todo")).json()) == 1


async def test_fastapi_users_block_against_a_stand_in(
    readme: Readme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fastapi-users is not a capebase dependency, so its block runs against a stand-in
    ``fastapi_users`` module. What it shows about capebase is real: the provider is a FastAPI
    dependency that itself uses ``Depends``, and ``AuthContext()`` means anonymous."""
    monkeypatch.setitem(sys.modules, "fastapi_users", _stand_in_fastapi_users())

    class User:
        def __init__(self, id: int, role: str) -> None:
            self.id, self.role = id, role

    await readme.run(MODEL)
    await readme.run(SETUP, keep=is_definition)
    readme.define(User=User, get_user_manager=object(), auth_backend=object())
    await readme.run(FASTAPI_USERS)
    cape, todo_model = readme["cape"], readme["Todo"]
    cape.publish(todo_model)
    cape.permission_required(todo_model, role="*", actions=["read"])
    cape.permission_required(todo_model, owner_field="user_id", actions=["create"])
    async with app_client(readme["app"]) as client:
        response = await client.post("/todo", json={"task": "a"}, headers={"X-User-Id": "7"})
        assert response.status_code == 201
        assert response.json()["user_id"] == "7"  # str(user.id)
        assert (await client.post("/todo", json={"task": "b"})).status_code == 401
        assert len((await client.get("/todo")).json()) == 1


def _stand_in_fastapi_users() -> types.ModuleType:
    """``FastAPIUsers[User, int](...).current_user(active=True)``: a dependency reading the
    user from an ``X-User-Id`` header, or None."""

    class FastAPIUsers:
        def __class_getitem__(cls, _params: Any) -> type[FastAPIUsers]:
            return cls

        def __init__(self, get_user_manager: Any, backends: list[Any]) -> None:
            self.backends = backends

        def current_user(self, active: bool = False) -> Callable[[Request], Any]:
            def current(request: Request) -> Any:
                user_id = request.headers.get("X-User-Id")
                if user_id is None:
                    return None
                return types.SimpleNamespace(id=int(user_id), role="member")

            return current

    module = types.ModuleType("fastapi_users")
    module.FastAPIUsers = FastAPIUsers  # type: ignore[attr-defined]
    return module


async def test_prometheus_block(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """starlette-prometheus is not a capebase dependency, only the dev extra's: the block adds
    its middleware to the app, beside capebase's own metrics."""
    from fastapi import FastAPI

    from capebase import CapeBase

    readme = Readme(sqlite_url, "sqlite", tmp_path, monkeypatch)
    app = FastAPI()
    CapeBase(app=app, db_path=sqlite_url)
    readme.define(app=app)
    await readme.run(PROMETHEUS)
    async with app_client(app) as client:
        await client.get("/nothing")
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "starlette_requests_total" in response.text


async def test_database_operations_blocks(readme: Readme) -> None:
    """The recommended ORM-style update route, and the 'not recommended' bulk update, which a
    user session also checks against the policy."""
    from fastapi import FastAPI
    from sqlalchemy import update

    from capebase import CapeBase

    await readme.run(MODEL)
    todo_model = readme["Todo"]
    app = FastAPI()
    cape = CapeBase(app=app, db_path=readme.db_url, get_auth_context=header_auth)
    cape.publish(todo_model)
    cape.permission_required(todo_model, role="*", actions=["read"])
    cape.permission_required(todo_model, owner_field="user_id",
                             actions=["create", "update", "delete"])
    readme.define(app=app, cape=cape, Depends=Depends)
    await readme.run(RECOMMENDED)
    async with app_client(app) as client:
        todos = []
        for headers in (ALICE, ALICE, BOB):
            response = await client.post("/todo", json={"task": "t"}, headers=headers)
            todos.append(response.json())
        url = f"/todo/{todos[0]['id']}"
        # the user's PATCH route, declared after publish, is the one that answers
        assert (await client.patch(url, headers=BOB)).status_code == 403
        assert (await client.patch(url)).status_code == 401
        assert (await client.get(url)).json()["is_complete"] is False
        response = await client.patch(url, headers=ALICE)
        assert response.status_code == 200
        assert response.json() is None
        assert (await client.get(url)).json()["is_complete"] is True

        for user, todo, expected in [("bob", todos[1], False), ("alice", todos[1], True),
                                     ("alice", todos[2], False)]:
            async with cape.get_session(AuthContext(id=user)) as session:
                readme.define(session=session, todo_id=todo["id"], update=update)
                await readme.run(NOT_RECOMMENDED)
                await session.commit()
            stored = (await client.get(f"/todo/{todo['id']}")).json()
            assert stored["is_complete"] is expected, (user, todo)
