"""Model field markers filled from the auth context: FROM_AUTH_ID, FROM_AUTH_ROLE, from_context."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic_core import PydanticUndefined

from .context import AuthContext


@dataclass(frozen=True, slots=True)
class AuthValue:
    """Marks a model field whose value comes from the AuthContext on create.

    ``source`` is "id", "role" or "context"; ``key`` names the context entry for "context".
    """

    source: str
    key: str | None = None

    def value_from(self, ctx: AuthContext) -> Any:
        """The value this field takes for ``ctx`` (``None`` when the context lacks it)."""
        if self.source == "id":
            return ctx.id
        if self.source == "role":
            return ctx.role
        return ctx.context.get(self.key or "")


FROM_AUTH_ID = Annotated[str, AuthValue("id")]
"""A ``str`` field set to the caller's ``AuthContext.id`` when a row is created."""

FROM_AUTH_ROLE = Annotated[str | None, AuthValue("role")]
"""A field set to the caller's ``AuthContext.role`` when a row is created."""


def from_context(key: str, type_: Any = str) -> Any:
    """A field type whose value is ``AuthContext.context[key]`` when a row is created.

    Example: ``org_id: from_context("org_id") = Field(index=True)``.
    """
    return Annotated[type_, AuthValue("context", key)]


def auth_fields(model: type[Any]) -> dict[str, AuthValue]:
    """The fields of ``model`` filled from the auth context, by field name."""
    found: dict[str, AuthValue] = {}
    for name, info in getattr(model, "model_fields", {}).items():
        for meta in info.metadata:
            if isinstance(meta, AuthValue):
                found[name] = meta
    return found


def server_values(
    model: type[Any], ctx: AuthContext, markers: Mapping[str, AuthValue] | None = None
) -> dict[str, Any]:
    """The value each auth field of ``model`` takes in a row ``ctx`` creates.

    The context's value, or, where the context has none (an anonymous caller's id, a missing
    ``context`` key), the field's own default, else ``None``: never a value the caller chose.
    ``markers`` is ``auth_fields(model)``, when the caller has it at hand.
    """
    values: dict[str, Any] = {}
    for name, marker in (auth_fields(model) if markers is None else markers).items():
        value = marker.value_from(ctx)
        if value is None:
            info = model.model_fields[name]
            default = info.get_default(call_default_factory=True, validated_data={})
            value = None if default is PydanticUndefined else default
        values[name] = value
    return values
