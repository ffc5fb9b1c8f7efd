"""The messages of a model's change stream as pydantic models, for OpenAPI: what the
``data:`` of each Server-Sent Event holds, and each WebSocket text message (the wire format:
docs/reference/streams.md). The streams write their JSON themselves; nothing validates
against these."""

from __future__ import annotations

import operator
from datetime import datetime
from functools import reduce
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, Field, RootModel, create_model
from pydantic.json_schema import SkipJsonSchema

from ...crud.published import PublishedModel


class StreamReady(BaseModel):
    """First, on a stream opened without a resume token: its position, to resume from if
    it drops before the first change."""

    event: Literal["ready"]
    id: str = Field(description="A resume token")


class StreamReset(BaseModel):
    """First, on a stream opened with a token that cannot be replayed: reload, then follow
    the live events."""

    event: Literal["reset"]
    id: int = Field(description="The change id the stream goes on from")
    resume: str = Field(description="A resume token for that position")
    reason: str


class StreamOverflow(BaseModel):
    """Last (Server-Sent Events; a WebSocket closes with 1013): the subscriber fell behind
    and was dropped; reconnect with ``resume``."""

    event: Literal["overflow"]
    resume: str | None
    reason: str


class StreamUnavailable(BaseModel):
    """Last: the database went away; reconnect with ``resume`` later."""

    event: Literal["unavailable"]
    resume: str
    reason: str


class StreamExpired(BaseModel):
    """Last (Server-Sent Events; a WebSocket closes with 1008): the caller's credentials
    expired or were revoked."""

    event: Literal["expired"]
    reason: str


class StreamHeartbeat(BaseModel):
    """WebSocket only, on a quiet stream (Server-Sent Events send a comment)."""

    event: Literal["heartbeat"]


_RESUME = Field(
    default=None,
    description="WebSocket only: the token to resume after this change (Server-Sent Events "
    "carry it as the event's `id:`)",
)


def _model(name: str, doc: str, fields: dict[str, Any]) -> type[BaseModel]:
    return create_model(name, __doc__=doc, __module__=__name__, **fields)


def stream_message(published: PublishedModel) -> type[RootModel[Any]]:
    """``{Model}StreamMessage``: one message of ``published``'s stream, a change of a row
    (``{Model}Inserted``, ``{Model}Updated``, ``{Model}Deleted``) or the stream's own
    (``StreamReady``...), told apart by ``event``.

    A change's ``payload`` and ``old`` are rows as the list returns them, with the fields
    of ``select=`` only where the stream asked for some; a deletion's ``payload`` is the
    primary key.
    """
    name, read = published.name, published.read_schema
    key = published.pk.key
    key_schema = _model(f"{name}Key", f"The primary key of a {name}.",
                        {key: (read.model_fields[key].annotation, ...)})
    common: dict[str, Any] = {
        "id": (int, Field(description="The change id (increasing, shared by every table)")),
        "table": (Literal[published.table.name], ...),
        "timestamp": (datetime, Field(description="When the change was written")),
        # an optional string, not a nullable one (pydantic's stub types it as no generic)
        "resume": (str | SkipJsonSchema[None], _RESUME),  # type: ignore[misc]
    }
    before = (read | None, Field(description="The row before the change, when the "
                                 "subscriber could see it and its rule reads only the row"))
    variants: list[Any] = [
        _model(f"{name}Inserted", "A row entered the subscriber's view.", {
            "event": (Literal["INSERT"], ...), "payload": (read, ...), "old": (None, ...),
            **common}),
        _model(f"{name}Updated", "A row the subscriber sees changed.", {
            "event": (Literal["UPDATE"], ...), "payload": (read, ...), "old": before,
            **common}),
        _model(f"{name}Deleted", "A row left the subscriber's view.", {
            "event": (Literal["DELETE"], ...), "payload": (key_schema, ...), "old": before,
            **common}),
        StreamReady, StreamReset, StreamOverflow, StreamUnavailable, StreamExpired,
        StreamHeartbeat,
    ]
    union: Any = Annotated[reduce(operator.or_, variants), Field(discriminator="event")]
    doc = (f"A message of the {published.table.name} stream: a change, or the stream's own "
           "(ready, reset...), told apart by `event`.")
    message = type(f"{name}StreamMessage", (RootModel[union],),
                   {"__doc__": doc, "__module__": __name__})
    return cast(type[RootModel[Any]], message)
