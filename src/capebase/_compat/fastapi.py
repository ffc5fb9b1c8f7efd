"""FastAPI internals capebase relies on (bounded below FastAPI's next minor in pyproject.toml).

The generated item and list routes solve only the caller's auth provider instead of every
parameter (see ``capebase.crud.lean``). That needs FastAPI's dependency solver, which is not
public API, and the per-request exit stack FastAPI keeps in the ASGI scope.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import fastapi
from fastapi.dependencies import utils as dependency_utils
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant, request_params_to_args, solve_dependencies

from . import missing_names

__all__ = [
    "Dependant",
    "bound_exit_stacks",
    "get_dependant",
    "request_exit_stack",
    "request_params_to_args",
    "solve_dependencies",
    "validate_field",
]

# FastAPI keeps the exit stacks of a request's dependencies under these scope keys.
_INNER_STACK = "fastapi_inner_astack"
_FUNCTION_STACK = "fastapi_function_astack"

REQUIRED: list[tuple[object, str]] = [
    (dependency_utils, "get_dependant"),
    (dependency_utils, "request_params_to_args"),
    (dependency_utils, "solve_dependencies"),
    # Dataclass fields with factories exist on instances only (unless slotted).
    (Dependant(), "query_params"),
    (Dependant(), "header_params"),
    (Dependant(), "cookie_params"),
]


def missing() -> list[str]:
    """The internals of ``REQUIRED`` that the installed FastAPI lacks."""
    from fastapi._compat import ModelField

    return missing_names("fastapi", fastapi.__version__, [*REQUIRED, (ModelField, "validate")])


def request_exit_stack(scope: Mapping[str, Any]) -> AsyncExitStack:
    """The exit stack FastAPI closes after the response of the request of ``scope``."""
    stack: AsyncExitStack = scope[_INNER_STACK]
    return stack


@contextmanager
def bound_exit_stacks(scope: MutableMapping[str, Any], stack: AsyncExitStack) -> Iterator[None]:
    """Make ``stack`` the request's dependency exit stacks while outside FastAPI's handling."""
    scope[_INNER_STACK] = scope[_FUNCTION_STACK] = stack
    try:
        yield
    finally:
        del scope[_INNER_STACK], scope[_FUNCTION_STACK]


def validate_field(
    field: Any, raw: Any, values: dict[str, Any], loc: tuple[str, ...]
) -> tuple[Any, list[Any]]:
    """Validate one request parameter with the route's own field (FastAPI's ``ModelField``):
    the value and FastAPI's error dicts (an empty list when valid)."""
    value, errors = field.validate(raw, values, loc=loc)
    return value, list(errors or [])


def served_route_path(scope: Mapping[str, Any]) -> str | None:
    """The path template of the route that served a request, include prefixes applied, as
    FastAPI records it in its private ``scope["fastapi"]["effective_route_context"]``; None
    where this FastAPI records none."""
    effective = scope.get("fastapi", {}).get("effective_route_context")
    # A plain Starlette route of an included router (the SSE and WebSocket streams) has an
    # empty ``path`` there; its route, as included, has the template.
    for source in (effective, getattr(effective, "starlette_route", None)):
        path = getattr(source, "path", None)
        if isinstance(path, str) and path:
            return path
    return None


def included_routes(route: Any) -> list[Any] | None:
    """The routes of an included router as requests meet them (FastAPI's private
    ``effective_route_contexts``), or None for a plain route."""
    contexts = getattr(route, "effective_route_contexts", None)
    if not callable(contexts):
        return None
    # A plain Starlette route's context carries no path or pattern; its route, as included,
    # does (FastAPI matches it the same way).
    return [getattr(context, "starlette_route", None) or context for context in contexts()]
