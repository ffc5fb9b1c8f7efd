"""The audit trail: queries over the change log, in Python and at ``GET /_capebase/audit``.

Every committed row change is one change-log row: who (actor id and role), when, which table
and primary key, the operation, the old and new values (secret fields left out) and the id of
the request that made it.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..changes.changelog import changes, decode_pk, encode_pk, indexed_pk
from ..errors import ConfigurationError, PermissionDeniedError
from ..identity.context import AuthContext
from ..realtime.config import RealtimeConfig
from .config import AuditConfig

if TYPE_CHECKING:
    from sqlalchemy import Select

_INTEGER = re.compile(r"-?\d+")
_NO_NUL = r"^[^\x00]*$"
"""Filter texts: PostgreSQL stores no NUL character, and fails a query that carries one."""


class AuditEntry(BaseModel):
    """One committed change to one row.

    Attributes:
        id: the change-log id (also the stream event id); increases with time.
        table: the table name.
        pk: the primary key (a list for composite keys).
        op: "INSERT", "UPDATE" or "DELETE".
        old: the row before (UPDATE, DELETE), secret fields left out.
        new: the row after (INSERT, UPDATE), secret fields left out.
        actor_id / actor_role: who made the change; ``None`` for privileged sessions.
        timestamp: when the change was written (UTC).
        request_id: the id the server gave the request that made it (its responses carry it
            in ``X-Request-ID``), or the id of a job (``use_request_id``), if any.
        client_request_id: the ``X-Request-ID`` the client sent with that request, if any
            (printable ASCII, cut to 64 characters). Unverified: any client can send any value.
    """

    model_config = ConfigDict(frozen=True)

    id: int
    table: str
    pk: Any
    op: Literal["INSERT", "UPDATE", "DELETE"]
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    actor_id: str | None
    actor_role: str | None
    timestamp: datetime
    request_id: str | None
    client_request_id: str | None


class Audit:
    """Reads the audit trail. Available as ``cape.audit``."""

    def __init__(self, engine: AsyncEngine, config: AuditConfig | None) -> None:
        self.engine = engine
        self.config = config

    async def history(self, model: type[Any] | str, pk: Any) -> list[AuditEntry]:
        """Every recorded change to one row, oldest first.

        Args:
            model: the table model (or its table name).
            pk: the row's primary key (a tuple or list for a composite key).
        """
        table = _table_name(model)
        key = indexed_pk(encode_pk(_coerce_pk(model, pk)))
        query = (
            select(changes)
            .where(changes.c.table_name == table, changes.c.pk == key)
            .order_by(changes.c.id)
        )
        return await self._fetch(query)

    async def query(
        self,
        *,
        table: type[Any] | str | None = None,
        pk: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """Changes matching every filter given, newest first.

        Args:
            table: a table model or table name.
            pk: a primary key as text (``"42"``, ``"abc"``, a UUID; JSON for composite keys).
            actor: the id of the user who made the changes.
            since: only changes written at or after this time (a naive datetime is UTC).
            until: only changes written before this time (a naive datetime is UTC).
            limit: the page's size.
            offset: the changes of the result to skip.
        """
        query = select(changes)
        if table is not None:
            query = query.where(changes.c.table_name == _table_name(table))
        if pk is not None:
            query = query.where(changes.c.pk.in_(_pk_texts(pk)))
        if actor is not None:
            query = query.where(changes.c.actor_id == actor)
        if since is not None:
            query = query.where(changes.c.created_at >= _utc(since))
        if until is not None:
            query = query.where(changes.c.created_at < _utc(until))
        return await self._fetch(
            query.order_by(changes.c.id.desc()).limit(max(0, limit)).offset(max(0, offset))
        )

    async def _fetch(self, query: Select[Any]) -> list[AuditEntry]:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).mappings().all()
        return [_entry(row) for row in rows]


def retained_config(realtime: RealtimeConfig, audit: AuditConfig | None) -> RealtimeConfig:
    """``realtime`` with the change log's retention stretched to the audit's, when longer:
    pruning then waits until both windows have passed."""
    if audit is None or audit.retention <= realtime.retention:
        return realtime
    return replace(realtime, retention=audit.retention)


def audit_router(
    audit: Audit, config: AuditConfig, auth: Callable[..., Any]
) -> APIRouter:
    """``GET {config.path}``: the audit trail, to callers with one of ``config.roles``."""
    assert config.path is not None
    router = APIRouter(tags=["capebase"])
    roles = config.roles

    async def read_audit_trail(
        ctx: AuthContext = Depends(auth),
        table: str | None = Query(None, description="Only this table", pattern=_NO_NUL),
        pk: str | None = Query(
            None, description="Only this primary key (needs no table)", pattern=_NO_NUL
        ),
        actor: str | None = Query(None, description="Only changes by this user id",
                                  pattern=_NO_NUL),
        since: datetime | None = Query(None, description="Written at or after (ISO 8601)"),
        until: datetime | None = Query(None, description="Written before (ISO 8601)"),
        limit: int = Query(config.default_page_size, ge=1, le=config.max_page_size),
        offset: int = Query(0, ge=0, le=2**63 - 1),  # what every database's OFFSET takes
    ) -> list[AuditEntry]:
        if ctx.is_anonymous or ctx.role not in roles:
            raise PermissionDeniedError("read", "audit trail", is_anonymous=ctx.is_anonymous)
        return await audit.query(
            table=table, pk=pk, actor=actor, since=since, until=until, limit=limit, offset=offset
        )

    router.add_api_route(
        config.path,
        read_audit_trail,
        methods=["GET"],
        response_model=list[AuditEntry],
        summary="Read the audit trail",
        description=(
            "Committed row changes, newest first. Allowed to the roles "
            f"{', '.join(sorted(roles))}."
        ),
        operation_id="capebase_audit",
        responses={401: {"description": "Authentication required"},
                   403: {"description": "Permission denied"}},
    )
    return router


def _entry(row: Any) -> AuditEntry:
    created: datetime = row["created_at"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return AuditEntry(
        id=row["id"],
        table=row["table_name"],
        pk=decode_pk(row),
        op=row["op"],
        old=json.loads(row["old"]) if row["old"] is not None else None,
        new=json.loads(row["new"]) if row["new"] is not None else None,
        actor_id=row["actor_id"],
        actor_role=row["actor_role"],
        timestamp=created,
        request_id=row["request_id"],
        client_request_id=row["client_request_id"],
    )


def _table_name(model: type[Any] | str) -> str:
    if isinstance(model, str):
        return model
    table = getattr(model, "__table__", None)
    if not isinstance(table, Table):
        raise ConfigurationError(f"{model!r} is not a table model or a table name")
    return table.name


def _coerce_pk(model: type[Any] | str, pk: Any) -> Any:
    """``pk`` as the change log encodes it: ``"7"`` is the int 7 for an integer key."""
    if isinstance(pk, tuple | list):
        return list(pk)
    table = None if isinstance(model, str) else getattr(model, "__table__", None)
    if not isinstance(table, Table) or not isinstance(pk, str):
        return pk
    columns = list(table.primary_key.columns)
    if len(columns) != 1:
        return pk
    try:
        python_type = columns[0].type.python_type
    except NotImplementedError:
        return pk
    if python_type is int and _INTEGER.fullmatch(pk):
        return int(pk)
    if python_type is uuid.UUID:
        try:
            return uuid.UUID(pk)
        except ValueError:
            return pk
    return pk


def _pk_texts(raw: str) -> Sequence[str]:
    """The change-log encodings ``raw`` may stand for: a string key, and an integer key or a
    JSON list (composite key) when it reads as one."""
    texts = [encode_pk(raw)]
    if _INTEGER.fullmatch(raw):
        if len(raw) <= _LONGEST_INTEGER:  # no integer key is longer (nor can int() read it)
            texts.append(encode_pk(int(raw)))
    elif raw.startswith("["):
        # A list nested too deep for json (RecursionError) is no key either.
        with contextlib.suppress(ValueError, RecursionError):
            texts.append(encode_pk(json.loads(raw)))
    return [indexed_pk(text) for text in texts]


_LONGEST_INTEGER = 40
"""Digits of the longest integer primary key (a NUMERIC(38) has 38, with a sign to spare)."""


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; one an offset would take out of datetime's range is its edge."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if moment.year == datetime.min.year else datetime.max
        return edge.replace(tzinfo=UTC)
