"""Private names of other packages are used only in ``capebase._compat``, and every one it
relies on exists in the installed releases.

When an upgrade removes an internal, ``test_installed_releases_have_what_compat_relies_on``
fails naming it (package, version, name), before any request meets an AttributeError.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from sqlalchemy.dialects import postgresql
from starlette.routing import Match

import capebase
from capebase._compat.fastapi import request_exit_stack, served_route_path
from capebase._compat.sqlalchemy import (
    bind_processors,
    compile_cached,
    construct_params,
    expand_postcompile,
)
from capebase.testing import app_client

SRC = Path(capebase.__file__).parent
COMPAT_MODULES = ["sqlalchemy", "fastapi", "aiosqlite", "uvicorn"]
# Internal modules (no underscore in their names) and private scope keys of other packages.
INTERNAL_MODULES = ("sqlalchemy.orm.context", "sqlalchemy.sql.annotation", "fastapi.dependencies")
PRIVATE_STRINGS = {"fastapi_inner_astack", "fastapi_function_astack", "effective_route_context"}

# Underscore names that are public API of their package.
DOCUMENTED = {
    "_mapping",  # sqlalchemy Row._mapping: documented, named so to avoid clashing with columns
    "_asdict",  # namedtuple / Row._asdict
    "_replace",
    "_fields",
}


def _own_private_names() -> set[str]:
    """Underscore names capebase defines itself (its attributes, methods and functions)."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        if "_compat" in path.relative_to(SRC).parts:
            continue  # it names the foreign internals it relies on
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)
                and isinstance(node.value, ast.Tuple)
            ):
                names.update(
                    e.value for e in node.value.elts if isinstance(e, ast.Constant)
                )
    return {name for name in names if name.startswith("_")}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(own: set[str]) -> list[str]:
    """``file:line: what`` for each use of a foreign private name outside ``_compat``."""
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        if "_compat" in path.relative_to(SRC).parts:
            continue
        where = path.relative_to(SRC.parent)
        for node in ast.walk(ast.parse(path.read_text())):
            name: str | None = None
            if isinstance(node, ast.Attribute) and _is_private(node.attr):
                if node.attr not in own and node.attr not in DOCUMENTED:
                    name = node.attr
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in {"getattr", "hasattr", "setattr"}
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _is_private(node.args[1].value)
                and node.args[1].value not in own
            ):
                name = node.args[1].value
            elif isinstance(node, ast.Constant) and node.value in PRIVATE_STRINGS:
                name = str(node.value)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                parts = node.module.split(".")
                if node.module.startswith(INTERNAL_MODULES) or any(
                    _is_private(part) for part in parts
                ) or any(
                    _is_private(alias.name) for alias in node.names
                ):
                    name = node.module
            if name is not None:
                found.append(f"{where}:{getattr(node, 'lineno', '?')}: {name}")
    return found


def test_no_private_name_of_another_package_outside_compat() -> None:
    uses = private_uses(_own_private_names())
    assert not uses, "move these into capebase/_compat/<package>.py:\n" + "\n".join(uses)


def test_the_scan_finds_a_private_use() -> None:
    # The scan itself must see what it is meant to forbid.
    tree = "import sqlalchemy\nx = sqlalchemy.sql.ClauseElement._compile_w_cache\n"
    probe = SRC / "_probe_private_use.py"
    probe.write_text(tree)
    try:
        assert any("_compile_w_cache" in use for use in private_uses(_own_private_names()))
    finally:
        probe.unlink()


@pytest.mark.parametrize("package", COMPAT_MODULES)
def test_installed_releases_have_what_compat_relies_on(package: str) -> None:
    module = importlib.import_module(f"capebase._compat.{package}")
    missing = module.missing()
    assert not missing, (
        "capebase relies on internals this release no longer has; adapt "
        f"capebase/_compat/{package}.py or bound the package below this release: {missing}"
    )


async def test_fastapi_keeps_the_exit_stack_and_route_context_compat_reads() -> None:
    """The scope entries ``_compat.fastapi`` reads, seen by a real request."""
    seen: dict[str, object] = {}
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int, request: Request) -> dict[str, int]:
        seen["stack"] = request_exit_stack(request.scope)
        return {"id": item_id}

    async with app_client(app) as client:
        assert (await client.get("/items/3")).status_code == 200
    assert seen["stack"] is not None, "FastAPI no longer keeps fastapi_inner_astack"
    route = next(r for r in app.routes if getattr(r, "path", "") == "/items/{item_id}")
    scope = {"type": "http", "path": "/items/3", "method": "GET", "fastapi": {}}
    assert route.matches(scope)[0] is Match.FULL
    # served_route_path reads what FastAPI recorded; without a record it must say None.
    assert served_route_path({}) is None


def test_sqlalchemy_compiles_and_binds_as_direct_relies_on() -> None:
    """The private compile/bind calls of ``_compat.sqlalchemy`` on a real statement."""
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("n", sa.String))
    dialect = postgresql.asyncpg.dialect(paramstyle="numeric_dollar")  # type: ignore[attr-defined]
    compiled, extracted, collected = compile_cached(
        sa.select(table).where(table.c.id.in_([1, 2]), table.c.n == "x"), dialect, {}
    )
    params = construct_params(compiled, None, extracted, collected)
    assert isinstance(bind_processors(compiled), dict)
    sql, positions, _processors, values = expand_postcompile(compiled, params)
    assert "IN" in sql
    assert [values[name] for name in positions] == ["x", 1, 2]
