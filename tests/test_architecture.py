"""Import contracts of the package: which module may depend on which, checked on the source.

The layers, bottom to top (``LAYERS``): a module imports only from its own layer and the ones
below it, so each layer can be read, tested and changed without the ones above it.

An import under ``if TYPE_CHECKING:`` is for annotations only and never runs; every other
import (at module level or inside a function) counts.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "capebase"
ERROR_MAP = "capebase.http.errors"
EXCEPTIONS = frozenset({"capebase.errors", "capebase.auth.builtin.errors"})
HTTP_ERROR_TYPES = frozenset({"HTTPException", "WebSocketException", "JSONResponse"})
HTTP_MODULES = frozenset(
    {"fastapi", "fastapi.exceptions", "fastapi.responses", "starlette.exceptions",
     "starlette.responses"}
)


LAYERS: tuple[tuple[str, ...], ...] = (
    # the exception tree, settings of limits, optional extras, other packages' internals
    ("capebase.errors", "capebase.limits", "capebase.placeholders", "capebase.extras",
     "capebase._compat"),
    # who is acting and through which request; the hooks that report what capebase does
    ("capebase.identity", "capebase.observer"),
    ("capebase.db",),
    # errors to HTTP answers: low, so every HTTP-facing piece above answers through it
    ("capebase.http.errors",),
    ("capebase.policy",),
    ("capebase.wire",),
    ("capebase.filters",),
    ("capebase.changes",),
    # every SQLAlchemy event hook of the policy and of capture, in one visible order
    ("capebase.hooks",),
    ("capebase.writes",),
    ("capebase.realtime",),
    ("capebase.observability",),
    ("capebase.auth",),
    # the HTTP surface: generated REST routes, streams, middleware, the app's lifespan
    ("capebase.http", "capebase.crud"),
    # what CapeBase runs as it is built and started; migrations for the user's Alembic
    ("capebase.safety", "capebase.startup"),
    ("capebase.app",),
    # the public API and the deprecated 0.1 paths
    ("capebase", "capebase.main", "capebase.model", "capebase.models", "capebase._moved"),
    # tools built on the public API (a CapeBase is their argument)
    ("capebase.cli", "capebase.testing", "capebase.migrations"),
)
"""Every module of the package, by layer from the bottom; a module belongs to the layer of the
longest prefix that names it (``capebase.http.errors`` sits far below ``capebase.http``)."""


@dataclass(frozen=True)
class Import:
    module: str
    """The imported module, absolute (``from .x import y`` in capebase.a → ``capebase.x``)."""
    names: tuple[str, ...]
    """The names imported from it (empty for ``import module``)."""
    line: int
    runtime: bool
    """False under ``if TYPE_CHECKING:``."""


@dataclass(frozen=True)
class Module:
    name: str
    source: str
    is_package: bool


def imports_of(module: Module) -> list[Import]:
    """Every import statement of ``module``, with its target made absolute."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    tree = ast.parse(module.source, module.name)
    found: list[Import] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runtime)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, (), node.lineno, runtime) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = tuple(a.name for a in node.names)
            found.append(Import(base, names, node.lineno, runtime))
            # ``from capebase import errors`` imports the submodule capebase.errors
            found.extend(
                Import(f"{base}.{n}", (), node.lineno, runtime)
                for n in names
                if _is_module(f"{base}.{n}")
            )
        for child in ast.iter_child_nodes(node):
            visit(child, runtime)

    visit(tree, True)
    return found


def _is_module(name: str) -> bool:
    path = SRC.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or path.is_dir()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = Module(name, path.read_text(), is_package)
    return modules


def _is_within(module: str, target: str) -> bool:
    return module == target or module.startswith(f"{target}.")


def app_importers(modules: dict[str, Module]) -> list[str]:
    """Modules below the public API that import the facade, even for annotations only: the
    layers get what they use of a CapeBase as narrow arguments, never the whole of it."""
    tools = LAYERS[-1]
    return [
        f"{name}:{imp.line}"
        for name, module in modules.items()
        if name != "capebase" and not any(_is_within(name, tool) for tool in tools)
        for imp in imports_of(module)
        if _is_within(imp.module, "capebase.app")
    ]


def capebase_imports_of_exceptions(modules: dict[str, Module]) -> list[str]:
    return [
        f"{imp.module}:{imp.line}"
        for imp in imports_of(modules["capebase.errors"])
        if _is_within(imp.module, "capebase")
    ]


def error_converters(modules: dict[str, Module]) -> list[str]:
    """Modules that import capebase's exceptions and an HTTP error type both: each one turns
    errors into HTTP answers, which only the error map may do. capebase.errors itself imports
    HTTPException as PermissionDeniedError's base class (0.1 compatibility)."""
    found = []
    for name, module in modules.items():
        if name == ERROR_MAP:
            continue
        imports = [imp for imp in imports_of(module) if imp.runtime]
        uses_exceptions = any(imp.module in EXCEPTIONS for imp in imports)
        http_types = sorted(
            {n for imp in imports if imp.module in HTTP_MODULES for n in imp.names}
            & HTTP_ERROR_TYPES
        )
        if (uses_exceptions or name in EXCEPTIONS) and http_types:
            found.append(f"{name}: {', '.join(http_types)}")
    return found


def handcrafted_answers(modules: dict[str, Module]) -> list[str]:
    """Error answers written outside the error map: an exception handler registered, a
    WebSocket closed with a literal code, a literal error status (400 and up) passed as
    ``status_code=``."""
    found = []
    for name, module in modules.items():
        if name == ERROR_MAP:
            continue
        for node in ast.walk(ast.parse(module.source, name)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("add_exception_handler", "exception_handler"):
                found.append(f"{name}:{node.lineno} registers an exception handler")
            for keyword in node.keywords:
                value = keyword.value
                if not (isinstance(value, ast.Constant) and isinstance(value.value, int)):
                    continue
                if keyword.arg == "code" and called in ("close", "WebSocketException"):
                    found.append(f"{name}:{node.lineno} closes with the literal {value.value}")
                if keyword.arg == "status_code" and value.value >= 400:
                    found.append(f"{name}:{node.lineno} answers the literal {value.value}")
    return found


def layer_of(module: str) -> int:
    found = [
        (len(prefix), rank)
        for rank, layer in enumerate(LAYERS)
        for prefix in layer
        if _is_within(module, prefix)
    ]
    if not found:
        raise LookupError(f"{module} is in no layer of LAYERS: add it")
    return max(found)[1]


def upward_imports(modules: dict[str, Module]) -> list[str]:
    """Imports that run (not annotations) from a module into a layer above its own."""
    return [
        f"{name}:{imp.line} imports {imp.module}"
        for name, module in modules.items()
        for imp in imports_of(module)
        if imp.runtime
        and _is_within(imp.module, "capebase")
        and layer_of(imp.module) > layer_of(name)
    ]


def private_imports(modules: dict[str, Module]) -> list[str]:
    """A private name (``_x``) imported from another top-level package, or a private module
    (``a._m``) imported from outside ``a``."""
    found = []
    for name, module in modules.items():
        for imp in imports_of(module):
            if not _is_within(imp.module, "capebase"):
                continue
            if imp.module.split(".")[:2] != name.split(".")[:2]:
                found.extend(
                    f"{name}:{imp.line} imports {imp.module}.{n}"
                    for n in imp.names
                    if n.startswith("_") and not n.startswith("__")
                )
            parts = imp.module.split(".")
            for index, part in enumerate(parts):
                owner = ".".join(parts[:index])
                if part.startswith("_") and not _is_within(name, owner):
                    found.append(f"{name}:{imp.line} imports the private {imp.module}")
    return found


def test_every_module_has_a_layer() -> None:
    for name in _modules():
        layer_of(name)


def test_imports_point_down_the_layers() -> None:
    assert upward_imports(_modules()) == []


def test_private_names_stay_in_their_package() -> None:
    assert private_imports(_modules()) == []


def test_only_the_package_imports_the_app_module() -> None:
    """capebase.app (the facade) sits on top: a module below it that imported it would make
    a cycle, and one that took a CapeBase (annotations included) could reach into all of it."""
    assert app_importers(_modules()) == []


def test_the_exceptions_import_no_other_capebase_module() -> None:
    """The exception tree is the bottom layer: every layer raises its errors, none of them
    (HTTP, crud, realtime...) is needed to define them."""
    assert capebase_imports_of_exceptions(_modules()) == []


def test_only_the_error_map_turns_errors_into_http() -> None:
    assert error_converters(_modules()) == ["capebase.errors: HTTPException"]


def test_no_error_answer_is_handcrafted_outside_the_map() -> None:
    assert handcrafted_answers(_modules()) == []


@pytest.mark.parametrize(
    ("module", "source", "check", "expected"),
    [
        ("capebase.filters.query", "from ..app import CapeBase", app_importers,
         "capebase.filters.query:"),
        ("capebase.startup", "def f():\n    from capebase.app import CapeBase",
         app_importers, "capebase.startup:"),
        ("capebase.realtime.hub", "from .. import app", app_importers, "capebase.realtime.hub:"),
        ("capebase.crud.router", "if TYPE_CHECKING:\n    from ..app import CapeBase",
         app_importers, "capebase.crud.router:"),
        ("capebase.errors", "def f():\n    from .http.errors import http_status",
         capebase_imports_of_exceptions, "capebase.http.errors:"),
        ("capebase.errors", "from .realtime import hub", capebase_imports_of_exceptions,
         "capebase.realtime:"),
        ("capebase.http.streams.sse", "from fastapi.responses import JSONResponse",
         error_converters, "capebase.http.streams.sse: JSONResponse"),
        ("capebase.auth.builtin.provider", "from fastapi import WebSocketException",
         error_converters, "capebase.auth.builtin.provider: WebSocketException"),
        ("capebase.http.streams.websocket",
         "async def f(ws):\n    await ws.close(code=1013)",
         handcrafted_answers, "closes with the literal 1013"),
        ("capebase.http.streams.sse", "JSONResponse({}, status_code=429)",
         handcrafted_answers, "answers the literal 429"),
        ("capebase.auth.builtin.auth", "app.add_exception_handler(AuthError, f)",
         handcrafted_answers, "capebase.auth.builtin.auth:"),
        ("capebase.policy.rules", "def f():\n    from ..realtime import hub",
         upward_imports, "capebase.policy.rules:"),
        ("capebase.db.engine", "from ..wire.values import value_check",
         upward_imports, "imports capebase.wire.values"),
        ("capebase.realtime.subscribers", "from ..filters.query import _parse",
         private_imports, "imports capebase.filters.query._parse"),
        ("capebase.crud.handlers", "def f():\n    import capebase.auth.builtin._x",
         private_imports, "the private capebase.auth.builtin._x"),
    ],
    ids=["app", "app-deferred", "app-from-package", "app-annotation", "errors-deferred",
         "errors-layer", "sse-json", "ws-exception", "close-code", "status-literal", "handler",
         "upward-deferred", "upward", "private-name", "private-module"],
)
def test_each_contract_fails_when_broken(
    module: str, source: str, check: Callable[[dict[str, Module]], list[str]], expected: str
) -> None:
    """Each check finds a violation put into one module's source (the checks are not
    vacuous)."""
    modules = _modules()
    real = modules[module]
    broken = Module(real.name, f"{real.source}\n{source}", real.is_package)
    found = check({**modules, module: broken})
    assert any(expected in item for item in found), found
