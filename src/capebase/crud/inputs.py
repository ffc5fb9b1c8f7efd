"""What a validated body and a path key become before a write, the same for one row
(``handlers``), a bulk create (``bulk``) and a batch (``batch``): the values a create stores,
the changes an update applies, the key a row is looked up by."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from ..errors import NotFoundError, PermissionDeniedError
from ..identity.context import AuthContext
from ..identity.fields import server_values
from ..wire.structured import json_safe
from ..wire.values import text_problem
from .published import PublishedModel

if TYPE_CHECKING:
    from ..policy import Policy


def require_create(published: PublishedModel, policy: Policy, ctx: AuthContext) -> None:
    """Refuse a caller who may create no row of ``published`` whatever its values.

    Raises:
        PermissionDeniedError: no create rule can match the caller, or an auth field has no
            value for them (an anonymous caller's FROM_AUTH_ID).
    """
    p = published
    if not policy.allows_some(p.model, "create", ctx):
        raise PermissionDeniedError("create", p.name, is_anonymous=ctx.is_anonymous)
    required = p.server_set.required_auth
    if required and None in server_values(p.model, ctx, required).values():
        # The row could not be stored, and it is the caller, not the row, that is lacking.
        raise PermissionDeniedError("create", p.name, is_anonymous=ctx.is_anonymous)


def create_values(published: PublishedModel, body: BaseModel) -> dict[str, Any]:
    """The column values a create stores from ``body``: never a field the server sets.

    Raises:
        RequestValidationError: a value the column cannot store (``loc`` ``("body", field)``).
    """
    p = published
    refused = p.server_set.on_create  # the schema refused them; never take one regardless
    values = {k: v for k, v in body.model_dump().items() if k in p.table.c and k not in refused}
    check_values(p, values)
    return values


def update_changes(published: PublishedModel, body: BaseModel) -> dict[str, Any]:
    """The changes an update applies from ``body``: the fields sent, never one the server sets.

    Raises:
        RequestValidationError: a value the column cannot store.
    """
    refused = published.server_set.on_update
    changes = {
        k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in refused
    }
    check_values(published, changes)
    return changes


def route_key(published: PublishedModel, key: Any) -> Any:
    """``key`` from a path; 404 for a key no row can have, which the database driver would
    otherwise reject with an error (an integer out of range, a text with a NUL character on
    PostgreSQL).

    Raises:
        NotFoundError: no row can have ``key``.
    """
    p = published
    if p.key_range is not None and not p.key_range[0] <= key <= p.key_range[1]:
        raise NotFoundError(p.name, key)
    if isinstance(key, str) and text_problem(key) is not None:
        raise NotFoundError(p.name, key)
    return key


def check_values(published: PublishedModel, values: dict[str, Any]) -> None:
    """Refuse values their columns cannot store alike on every database.

    Raises:
        RequestValidationError: 422, an error per value (``loc`` ``("body", field)``).
    """
    problems = published.value_checks.problems(values)
    if problems:
        raise RequestValidationError([
            {"type": "value_error", "loc": ("body", field), "msg": reason,
             "input": json_safe(value)}
            for field, value, reason in problems
        ])
