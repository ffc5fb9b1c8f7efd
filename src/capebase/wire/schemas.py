"""Schemas derived from a table model: what create and update accept, what reads return."""

from __future__ import annotations

import copy
import operator
from functools import reduce
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, create_model
from pydantic.fields import FieldInfo
from typing_extensions import TypedDict

from ..identity.fields import auth_fields
from ..identity.secret_fields import secret_keys
from .grammar import wire_annotation
from .server_fields import key_is_assigned


def _input_fields(model: type[Any], *, chosen_keys: bool = False) -> dict[str, FieldInfo]:
    """The columns a client sends; with ``chosen_keys``, also a primary key nothing else
    would choose (see ``server_fields``)."""
    table = model.__table__
    hidden = {
        c.key for c in table.primary_key.columns if not chosen_keys or key_is_assigned(model, c)
    } | set(auth_fields(model))
    columns = set(model.__table__.c.keys())
    return {
        name: info
        for name, info in model.model_fields.items()
        if name in columns and name not in hidden
    }


# Unknown fields are refused; so are NaN and infinities, which are no JSON numbers. Strict:
# JSON types are as the schema says (``false`` is no integer); see ``wire`` for strings.
_INPUT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


def create_schema_for(model: type[Any], dialect: str = "") -> type[BaseModel]:
    """``{Model}Create``: every column but auth-filled fields and a primary key the model or
    database assigns (``dialect``: the database's, whose column limits it publishes)."""
    columns = model.__table__.c
    fields: dict[str, Any] = {
        name: (
            wire_annotation(info.annotation, columns[name], info.metadata, dialect),
            _plain_field(info),
        )
        for name, info in _input_fields(model, chosen_keys=True).items()
    }
    return create_model(f"{model.__name__}Create", __config__=_INPUT, **fields)


def update_schema_for(model: type[Any], dialect: str = "") -> type[BaseModel]:
    """``{Model}Update``: the create fields, each optional; only the fields sent are applied."""
    columns = model.__table__.c
    fields: dict[str, Any] = {}
    for name, info in _input_fields(model).items():
        # A new FieldInfo, not a changed copy: pydantic merges the one it is given with the
        # annotation's metadata from the attributes it was created with.
        field = FieldInfo.merge_field_infos(_plain_field(info), default=None, default_factory=None)
        fields[name] = (
            wire_annotation(info.annotation, columns[name], info.metadata, dialect), field
        )
    return create_model(f"{model.__name__}Update", __config__=_INPUT, **fields)


def read_schema_for(model: type[Any], dialect: str = "") -> type[BaseModel]:
    """``{Model}Read``: the response model shown in OpenAPI, one field per non-secret column,
    the primary key never null (``id: int | None`` lets the database choose it; a stored row
    has one)."""
    table = model.__table__
    columns = set(table.c.keys()) - secret_keys(table)
    keys = set(table.primary_key.columns.keys())
    fields: dict[str, Any] = {
        name: (
            wire_annotation(
                _not_none(info.annotation) if name in keys else info.annotation,
                table.c[name], info.metadata, dialect,
            ),
            ...,
        )
        for name, info in model.model_fields.items()
        if name in columns
    }
    return create_model(f"{model.__name__}Read", **fields)


def _not_none(annotation: Any) -> Any:
    """``annotation`` without ``None``: ``int`` for ``int | None``."""
    if get_origin(annotation) not in (Union, UnionType):
        return annotation
    members = [member for member in get_args(annotation) if member is not type(None)]
    return reduce(operator.or_, members) if members else annotation


def input_schema(schema: type[BaseModel], model: type[Any], dialect: str = "") -> type[BaseModel]:
    """A user's create or update ``schema`` as the routes validate it, like the generated
    ones: unknown fields refused, strict, and the strings of its fields held to their grammar
    (``wire``; a field that is a column of ``model`` by the column's)."""
    schema = strict_input(schema)
    columns = model.__table__.c
    wired: dict[str, Any] = {}
    for name, info in schema.model_fields.items():
        annotation = wire_annotation(info.annotation, columns.get(name), info.metadata, dialect)
        if annotation is not info.annotation:
            wired[name] = (annotation, copy.copy(info))
    if not wired:
        return schema
    return create_model(
        schema.__name__, __base__=schema, __module__=schema.__module__, **wired
    )


def row_type(model: type[Any]) -> Any:
    """A TypedDict of the model's non-secret columns: TypeAdapters of it turn row dicts
    straight into JSON bytes, with no model instances."""
    columns = set(model.__table__.c.keys()) - secret_keys(model.__table__)
    row = TypedDict(  # type: ignore[misc]  # a TypedDict built from the model's fields
        f"{model.__name__}Row",
        {name: info.annotation for name, info in model.model_fields.items() if name in columns},
    )
    return row


def strict_input(schema: type[BaseModel]) -> type[BaseModel]:
    """``schema``, or a subclass of it that rejects unknown fields and validates strictly."""
    config = schema.model_config
    if config.get("extra") == "forbid" and config.get("strict"):
        return schema
    return type(
        schema.__name__,
        (schema,),
        {
            "model_config": {**config, "extra": "forbid", "strict": True},
            "__module__": schema.__module__,
        },
    )


def _plain_field(info: FieldInfo) -> FieldInfo:
    """A copy of ``info`` without SQLModel's column settings, for a plain pydantic model."""
    field = copy.copy(info)
    field.metadata = [m for m in info.metadata if type(m).__module__.split(".")[0] != "sqlmodel"]
    return field
