"""Schemas derived from a table model: what create and update accept, what reads return."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic.fields import FieldInfo
from typing_extensions import TypedDict

from ..auth.fields import auth_fields
from ..observability.secret_fields import secret_keys


def primary_key_fields(model: type[Any]) -> list[str]:
    """Names of the primary-key columns of ``model``."""
    return [column.key for column in model.__table__.primary_key.columns]


def _input_fields(model: type[Any]) -> dict[str, FieldInfo]:
    hidden = set(primary_key_fields(model)) | set(auth_fields(model))
    columns = set(model.__table__.c.keys())
    return {
        name: info
        for name, info in model.model_fields.items()
        if name in columns and name not in hidden
    }


def create_schema_for(model: type[Any]) -> type[BaseModel]:
    """``{Model}Create``: every column but the primary key and auth-filled fields."""
    fields: dict[str, Any] = {
        name: (info.annotation, _plain_field(info)) for name, info in _input_fields(model).items()
    }
    return create_model(
        f"{model.__name__}Create", __config__=ConfigDict(extra="forbid"), **fields
    )


def update_schema_for(model: type[Any]) -> type[BaseModel]:
    """``{Model}Update``: the create fields, each optional; only the fields sent are applied."""
    fields: dict[str, Any] = {}
    for name, info in _input_fields(model).items():
        field = _plain_field(info)
        field.default = None
        field.default_factory = None
        fields[name] = (info.annotation, field)
    return create_model(
        f"{model.__name__}Update", __config__=ConfigDict(extra="forbid"), **fields
    )


def read_schema_for(model: type[Any]) -> type[BaseModel]:
    """``{Model}Read``: the response model shown in OpenAPI, one field per non-secret column."""
    columns = set(model.__table__.c.keys()) - secret_keys(model.__table__)
    fields: dict[str, Any] = {
        name: (info.annotation, ...)
        for name, info in model.model_fields.items()
        if name in columns
    }
    return create_model(f"{model.__name__}Read", **fields)


def row_type(model: type[Any]) -> Any:
    """A TypedDict of the model's non-secret columns: TypeAdapters of it turn row dicts
    straight into JSON bytes, with no model instances."""
    columns = set(model.__table__.c.keys()) - secret_keys(model.__table__)
    row = TypedDict(  # type: ignore[misc]  # a TypedDict built from the model's fields
        f"{model.__name__}Row",
        {name: info.annotation for name, info in model.model_fields.items() if name in columns},
    )
    return row



def forbid_extra(schema: type[BaseModel]) -> type[BaseModel]:
    """``schema``, or a subclass of it that rejects unknown fields."""
    if schema.model_config.get("extra") == "forbid":
        return schema
    return type(
        schema.__name__,
        (schema,),
        {
            "model_config": {**schema.model_config, "extra": "forbid"},
            "__module__": schema.__module__,
        },
    )


def _plain_field(info: FieldInfo) -> FieldInfo:
    """A copy of ``info`` without SQLModel's column settings, for a plain pydantic model."""
    field = copy.copy(info)
    field.metadata = [m for m in info.metadata if type(m).__module__.split(".")[0] != "sqlmodel"]
    return field
