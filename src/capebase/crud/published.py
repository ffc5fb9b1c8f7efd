"""A model as published: its routes, schemas, filter fields and value checks, computed once
when it is published (``describe_model``); requests only read it."""

from __future__ import annotations

import logging
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, TypeAdapter
from sqlalchemy import Column, Table

from ..db.mapping import require_plain_columns, require_table
from ..errors import ConfigurationError
from ..filters.groups import GROUP_KEYS
from ..filters.query import (
    RESERVED,
    STREAM_PARAMETERS,
    FilterField,
    filter_fields,
)
from ..identity.secret_fields import secret_keys
from ..wire.declarations import annotation_problem, declaration_problem, schema_field_problem
from ..wire.schemas import (
    create_schema_for,
    input_schema,
    read_schema_for,
    row_type,
    update_schema_for,
)
from ..wire.server_fields import ServerFields, refusing, schema_warnings, server_fields
from ..wire.values import ValueChecks, integer_range, unserved_problem

logger = logging.getLogger("capebase")

RouteName = Literal["list", "get", "create", "update", "delete", "subscribe"]
ROUTE_NAMES: tuple[RouteName, ...] = get_args(RouteName)


@dataclass(frozen=True, eq=False)
class PublishedModel:
    """Everything computed once when a model is published; requests only read it."""

    model: type[Any]
    table: Table
    path: str
    routes: frozenset[RouteName]
    pk: Column[Any]
    create_schema: type[BaseModel]
    update_schema: type[BaseModel]
    read_schema: type[BaseModel]
    row_json: TypeAdapter[Any]
    rows_json: TypeAdapter[Any]
    fields: dict[str, FilterField]
    value_checks: ValueChecks
    key_range: tuple[int, int] | None
    server_set: ServerFields

    @property
    def name(self) -> str:
        """The model's class name, used in messages."""
        return self.model.__name__


QUERY_PARAMETERS = RESERVED | STREAM_PARAMETERS | GROUP_KEYS
"""Query parameters the list and stream routes read for themselves, never as filters."""


def describe_model(
    model: type[Any],
    routes: Sequence[str] | None,
    create_schema: type[BaseModel] | None,
    update_schema: type[BaseModel] | None,
    *,
    dialect: str = "",
) -> PublishedModel:
    """Validate a ``publish`` call and precompute schemas, serializers and filters
    (``dialect``: the database's, for the types it stores differently).

    Raises:
        ConfigurationError: not a table model, composite primary key, unknown route name, a
            column type the routes cannot serve exactly, a field annotation its column does
            not store exactly, a user schema changing a column's field type.
    """
    table = require_table(model, "Cannot publish {name}: it is not a table model")
    require_plain_columns(model, "publish")
    pk_columns = list(table.primary_key.columns)
    if len(pk_columns) != 1:
        raise ConfigurationError(
            f"Cannot publish {model.__name__}: generated routes need exactly one primary-key "
            f"column, it has {len(pk_columns)}"
        )
    for column in table.c:
        if column.key in QUERY_PARAMETERS or "__" in column.key:
            raise ConfigurationError(
                f"Cannot publish {model.__name__}: field {column.key!r} cannot be filtered as "
                f"?{column.key}=... (names the routes read for themselves: "
                f"{', '.join(sorted(QUERY_PARAMETERS))}; and '__' separates a field from its "
                "operator); rename the field"
            )
        field = getattr(model, "model_fields", {}).get(column.key)
        problem = (
            unserved_problem(column, dialect)
            or declaration_problem(column.type)
            or (annotation_problem(field.annotation, column.type) if field else None)
        )
        if problem is not None:
            raise ConfigurationError(
                f"Cannot publish {model.__name__}: field {column.key!r} ({column.type!r}) "
                f"cannot be served: {problem}"
            )
    chosen = list(ROUTE_NAMES) if routes is None else list(routes)
    unknown = [r for r in chosen if r not in ROUTE_NAMES]
    if unknown:
        raise ConfigurationError(
            f"Unknown route {unknown[0]!r} for {model.__name__}; "
            f"choose from {', '.join(ROUTE_NAMES)}"
        )
    row = row_type(model)
    server = server_fields(model)
    columns = table.c.keys()
    for schema, refused, route in (
        (create_schema, server.on_create, "create"),
        (update_schema, server.on_update, "update"),
    ):
        if schema is not None:
            _check_schema(model, schema, refused, route)
        for warning in schema_warnings(schema, refused, columns, route) if schema else ():
            logger.warning("capebase: %s", warning)
    return PublishedModel(
        model=model,
        table=table,
        path=f"/{table.name}",
        routes=frozenset(chosen),  # type: ignore[arg-type]  # validated above
        pk=pk_columns[0],
        create_schema=refusing(
            input_schema(create_schema, model, dialect) if create_schema
            else create_schema_for(model, dialect),
            server.on_create,
        ),
        update_schema=refusing(
            input_schema(update_schema, model, dialect) if update_schema
            else update_schema_for(model, dialect),
            server.on_update,
        ),
        server_set=server,
        read_schema=read_schema_for(model, dialect),
        row_json=TypeAdapter(row),
        rows_json=TypeAdapter(list[row]),  # type: ignore[valid-type]
        # Secret columns can be neither filtered nor sorted on: either would reveal their values.
        fields={k: f for k, f in filter_fields(table).items() if k not in secret_keys(table)},
        value_checks=ValueChecks(table, dialect),
        key_range=integer_range(pk_columns[0].type),
    )


def _check_schema(
    model: type[Any], schema: type[BaseModel], refused: Container[str], route: str
) -> None:
    """Refuse a user's schema whose field for a column is not what the column stores: its
    values would be changed or fail in the database (``declarations``).

    Raises:
        ConfigurationError: naming the schema, the field and the annotations.
    """
    table = model.__table__
    for name, info in schema.model_fields.items():
        field = getattr(model, "model_fields", {}).get(name)
        if name not in table.c or name in refused or field is None:  # ignored, or a 422
            continue
        column = table.c[name]
        problem = annotation_problem(info.annotation, column.type) or schema_field_problem(
            info.annotation, field.annotation
        )
        if problem is not None:
            raise ConfigurationError(
                f"Cannot publish {model.__name__} with {route}_schema={schema.__name__}: "
                f"field {name!r} ({column.type!r}) cannot be served: {problem}"
            )


