"""Fields a client never sets through the generated routes, and the schemas that refuse them.

The auth fields (``FROM_AUTH_ID``, ``FROM_AUTH_ROLE``, ``from_context``) come from the caller's
context. The primary key is the client's to choose on create only when nothing else would
choose it: not when the database assigns it (an autoincrement integer, an identity, a server
default) nor when the model does (a default or ``default_factory``); a client-chosen value there
would collide with the next assigned one. No update changes a primary key.

A user's schema may declare such fields; the schema the route uses refuses them with a 422
naming the field, and leaves them out of OpenAPI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError, PydanticUndefined
from sqlalchemy import Column, Integer, Table

from ..identity.fields import AuthValue, auth_fields
from .values import storage_type

REFUSED_ERROR = "server_set_field"
"""The ``type`` of the 422 error item for a field the client may not send."""


@dataclass(frozen=True)
class ServerFields:
    """The fields of one model a client may not send, each with the reason it is told, and
    the auth fields a row cannot be stored without (NOT NULL, no default)."""

    on_create: Mapping[str, str]
    on_update: Mapping[str, str]
    required_auth: Mapping[str, AuthValue]


def server_fields(model: type[Any]) -> ServerFields:
    """The fields of ``model`` that create and update refuse."""
    table: Table = model.__table__
    auth = {
        name: f"{name} is set by the server from the caller's identity"
        for name in auth_fields(model)
    }
    create = dict(auth)
    update = dict(auth)
    for column in table.primary_key.columns:
        if key_is_assigned(model, column):
            create[column.key] = f"{column.key} is the primary key, which the server assigns"
        update[column.key] = f"{column.key} is the primary key, which cannot be changed"
    columns = table.c
    required = {
        name: marker
        for name, marker in auth_fields(model).items()
        if name in columns
        and not columns[name].nullable
        and columns[name].default is None
        and columns[name].server_default is None
    }
    return ServerFields(on_create=create, on_update=update, required_auth=required)


def key_is_assigned(model: type[Any], column: Column[Any]) -> bool:
    """Whether the model or the database chooses ``column``'s value when a row leaves it out."""
    info = getattr(model, "model_fields", {}).get(column.key)
    if info is not None and (
        info.default_factory is not None or info.default not in (None, PydanticUndefined)
    ):
        return True
    if column.default is not None or column.server_default is not None:
        return True
    if column.identity is not None or column.autoincrement is True:
        return True
    # SQLAlchemy's "auto": the one integer primary key column, not a foreign key, autoincrements.
    return (
        column.autoincrement == "auto"
        and len(column.table.primary_key.columns) == 1
        and isinstance(storage_type(column.type), Integer)
        and not column.foreign_keys
    )


def refusing(schema: type[BaseModel], refused: Mapping[str, str]) -> type[BaseModel]:
    """A subclass of ``schema`` that refuses each field named in ``refused``, declared by
    ``schema`` or not, with a 422 carrying ``refused[field]``; the JSON schema leaves them out
    (a client sending one gets this message rather than "Extra inputs are not permitted")."""
    if not refused:
        return schema
    # pydantic types SkipJsonSchema as a generic alias; at run time it is this marker class.
    hidden = SkipJsonSchema()  # type: ignore[type-arg]
    annotations: dict[str, Any] = {
        name: Annotated[Any, BeforeValidator(_refuse(reason)), hidden]
        for name, reason in refused.items()
    }
    return type(
        schema.__name__,
        (schema,),
        {
            "__annotations__": annotations,
            **dict.fromkeys(refused),
            "__module__": schema.__module__,
            "__qualname__": schema.__qualname__,
        },
    )


def schema_warnings(
    schema: type[BaseModel], refused: Mapping[str, str], columns: Iterable[str], route: str
) -> list[str]:
    """What ``publish`` says about a user's ``schema`` for ``route``: the fields it declares
    that are refused, and those that are ignored (not columns)."""
    columns = set(columns)
    said = []
    for name in schema.model_fields:
        if name in refused:
            said.append(f"{schema.__name__}.{name} is refused on {route} (422): {refused[name]}")
        elif name not in columns:
            said.append(f"{schema.__name__}.{name} is ignored on {route}: it is not a column")
    return said


def _refuse(reason: str) -> Any:
    def refuse(_value: Any) -> Any:
        raise PydanticCustomError(REFUSED_ERROR, reason)  # a field name has no braces

    return refuse
