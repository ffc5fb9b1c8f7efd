"""What OpenAPI declares of a published model's list and stream routes beyond their
signatures: each filter a field takes as a query parameter, the filter groups, the streams'
own parameters, and the list's response headers.

The routes read their filters from the query string themselves (``filters.query``,
``filters.streams``), so FastAPI never sees them; these declarations go in through
``openapi_extra``. Each filter is its own parameter, typed by its field, because that is what
generators turn into typed query objects (openapi-typescript: ``task__startswith?: string``,
``id__gt?: number``); a single ``deepObject`` parameter would be serialized as
``filter[task]=...``, which is not this grammar.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..filters.query import OPERATORS, TEXT_OPERATORS
from ..filters.streams import STREAM_OPERATORS
from .published import PublishedModel

Parameter = dict[str, Any]
"""An OpenAPI parameter object."""

GROUP_PARAMETERS = (
    ("or", "Any of the conditions: `(field__op=value,...)`; nest `and(...)`, `or(...)`, "
     "`not.and(...)`, `not.or(...)`; quote a value holding `,` `(` `)` or `\"`: "
     "`name=\"a, b\"`; `in`/`nin` take a list: `id__in=(1,2)`"),
    ("and", "All of the conditions: `(field__op=value,...)`, nestable as for `or`"),
    ("not.or", "None of the conditions: `(field__op=value,...)`"),
    ("not.and", "Not all of the conditions: `(field__op=value,...)`"),
)
"""The filter groups lists and streams take (their grammar: ``filters.groups``)."""

_MEANINGS = {
    "eq": "equals this value",
    "ne": "differs from this value",
    "gt": "is greater than this value",
    "gte": "is this value or greater",
    "lt": "is less than this value",
    "lte": "is this value or less",
    "in": "is one of these comma-separated values",
    "nin": "is none of these comma-separated values",
    "like": "matches this LIKE pattern (`%` any text, `_` one character, `\\` escapes)",
    "ilike": "matches this LIKE pattern, ignoring case",
    "contains": "contains this text",
    "icontains": "contains this text, ignoring case",
    "startswith": "starts with this text",
    "isnull": "is null (`true`) or is not (`false`)",
}
_TEXT = {"type": "string"}
_LIST = {"type": "string", "minLength": 1}
_BOOLEAN = {"type": "boolean"}

LIST_HEADERS: dict[str, Any] = {
    "Link": {
        "description": 'The next page: `<...?after=cursor>; rel="next"`, when there is one',
        "schema": {"type": "string"},
    },
    "X-Total-Count": {
        "description": "With `count=true`: how many rows the caller may read match the "
        "filters, whatever `limit`, `offset` and `after`",
        "schema": {"type": "integer", "minimum": 0},
    },
}
"""The headers of a list's answer."""


def error_content(model: type[BaseModel], description: str) -> dict[str, Any]:
    """A JSON error answer with its schema inline, for a route whose own answers are not
    JSON (FastAPI declares a response ``model`` with the route's media type)."""
    return {"description": description,
            "content": {"application/json": {"schema": model.model_json_schema()}}}


def list_parameters(published: PublishedModel) -> list[Parameter]:
    """The query parameters a list reads from the request itself, for OpenAPI: one per
    field and operator (``?task__startswith=``), and ``?field=`` for equality.

    The list's other parameters (``limit``, ``select``, the groups...) are its endpoint's
    own, validated by FastAPI. A new parameter the list reads from the request itself
    (``expand=``, filters on related fields) is declared here.
    """
    return filter_parameters(published, OPERATORS, list_schema=_LIST)


def stream_parameters(published: PublishedModel) -> list[Parameter]:
    """The query parameters of ``GET /{table}/subscribe`` (and of its WebSocket): the
    filters streams evaluate, the groups, ``select``, the resume token and the built-in
    auth's ways in."""
    fields = ", ".join(published.fields)
    return [
        # A stream reads ?field__in= (nothing after it) as the one value "", a list as none.
        *filter_parameters(published, STREAM_OPERATORS, list_schema=_TEXT),
        *group_parameters(),
        _query("select", f"Comma-separated fields the events carry (default all): {fields}"),
        _query("last_event_id", "Resume after this event: the `id:` of the last event "
               "received (the `Last-Event-ID` header does the same, and wins)"),
        _query("ticket", "Built-in auth (`PasswordAuth`) only: a single-use ticket from "
               "`POST /auth/stream-ticket`"),
        _query("access_token", "Built-in auth (`PasswordAuth`) only: the access token, for "
               "clients that cannot send `Authorization`"),
    ]


def group_parameters() -> list[Parameter]:
    """``or``, ``and``, ``not.or`` and ``not.and``."""
    return [_query(name, description) for name, description in GROUP_PARAMETERS]


def filter_parameters(
    published: PublishedModel, operators: tuple[str, ...], *, list_schema: dict[str, Any]
) -> list[Parameter]:
    """``field`` and ``field__op`` for every filterable field and each of ``operators``
    that applies to its type, typed as the field's values are (``in``/``nin``:
    ``list_schema``, text)."""
    values = value_schemas(published.read_schema)
    parameters = []
    for name, field in published.fields.items():
        applicable = [op for op in operators if op in field.operators]
        if "eq" in applicable:
            parameters.append(_query(name, f"`{name}` equals this value (as `{name}__eq`)",
                                     _value_schema(name, "eq", values, list_schema)))
        parameters.extend(
            _query(f"{name}__{op}", f"`{name}` {_MEANINGS[op]}",
                   _value_schema(name, op, values, list_schema))
            for op in applicable
        )
    return parameters


def value_schemas(read_schema: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """The JSON schema of each field's values as a client may send them (a decimal as a
    number or a string of one, as bodies take it), references inlined, ``null`` left out."""
    document = read_schema.model_json_schema(mode="validation")
    definitions = document.get("$defs", {})
    return {
        name: _plain(_inlined(schema, definitions, depth=0))
        for name, schema in document.get("properties", {}).items()
    }


def _value_schema(
    name: str, op: str, values: dict[str, dict[str, Any]], list_schema: dict[str, Any]
) -> dict[str, Any]:
    if op == "isnull":
        return _BOOLEAN
    if op in ("in", "nin"):
        # Text, not an array, which generators send as repeated parameters
        # (?id__in=1&id__in=2): two conditions, not one list.
        return list_schema
    if op in TEXT_OPERATORS:
        return _TEXT
    return values.get(name, _TEXT)


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> Parameter:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": _TEXT if schema is None else schema}


_DROPPED = frozenset({"title", "default", "description", "examples"})
_MAX_DEPTH = 8  # a value schema is shallow; JSON fields, which nest, take isnull only


def _inlined(schema: Any, definitions: dict[str, Any], *, depth: int) -> Any:
    """``schema`` with its ``#/$defs/...`` references replaced by their definitions."""
    if depth > _MAX_DEPTH:
        return {}
    if isinstance(schema, list):
        return [_inlined(item, definitions, depth=depth + 1) for item in schema]
    if not isinstance(schema, dict):
        return schema
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        target = definitions.get(reference.removeprefix("#/$defs/"), {})
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _inlined({**target, **rest}, definitions, depth=depth + 1)
    return {key: _inlined(value, definitions, depth=depth + 1) for key, value in schema.items()}


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A field's schema as a filter value's: without its ``null`` alternative (``isnull``
    asks for that), nor its title, default and description (the parameter's own)."""
    members = schema.get("anyOf")
    rest = {key: value for key, value in schema.items() if key not in _DROPPED}
    if not isinstance(members, list):
        return rest
    kept = [_plain(member) for member in members if member != {"type": "null"}]
    rest.pop("anyOf")
    if len(kept) == 1:
        return {**rest, **kept[0]}
    return {**rest, "anyOf": kept}
