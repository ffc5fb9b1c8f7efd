"""The rows a database's own referential actions write when a row is deleted or its key changes.

``ForeignKey(..., ondelete="CASCADE")`` (or ``SET NULL``, ``SET DEFAULT``, and ``onupdate=`` the
same for a changed key) makes the database itself delete or update the referencing rows, in the
same statement, where no flush event or statement hook sees them. Before such a write, capebase
reads those rows (locked), checks each as the caller, and records each in the change log.

``on_delete`` and ``on_key_change`` are plans: generators that yield the SELECTs they need and
receive their rows (by column key), so the session paths (sync) and the generated routes'
driver path (async) run the same traversal with ``run`` and ``run_async``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Column, Table, cast, literal, select, tuple_
from sqlalchemy.exc import NoReferencedTableError
from sqlalchemy.sql import Select

from ..identity.context import AuthContext
from .registry import Policy

_ACTIONS = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})

Image = dict[str, Any]
Plan = Generator[Select[Any], list[Image], list["Effect"]]
Key = tuple[Table, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Referrer:
    """A foreign key of ``table`` (its ``columns``, referring to ``referred`` of the parent)
    with an action the database runs itself."""

    table: Table
    columns: tuple[str, ...]
    referred: tuple[str, ...]
    ondelete: str | None
    onupdate: str | None


@dataclass(frozen=True, slots=True)
class Effect:
    """One row a referential action deletes (``new`` is None) or updates."""

    table: Table
    op: str  # "DELETE" or "UPDATE"
    old: Image
    new: Image | None


def referrers(table: Table) -> tuple[Referrer, ...]:
    """The foreign keys referring to ``table`` that carry an ON DELETE / ON UPDATE action.

    Worked out once per table (and again only if tables are added to its metadata): a table
    nothing refers to that way costs one cache lookup per write.
    """
    return _referrers(table, len(table.metadata.tables))


@lru_cache(maxsize=4096)
def _referrers(table: Table, _tables: int) -> tuple[Referrer, ...]:
    found = []
    for child in table.metadata.tables.values():
        for constraint in child.foreign_key_constraints:
            try:
                if constraint.referred_table is not table:
                    continue
            except NoReferencedTableError:
                continue
            ondelete, onupdate = _action(constraint.ondelete), _action(constraint.onupdate)
            if ondelete is None and onupdate is None:
                continue
            found.append(Referrer(
                child,
                tuple(fk.parent.key for fk in constraint.elements),
                tuple(fk.column.key for fk in constraint.elements),
                ondelete,
                onupdate,
            ))
    return tuple(found)


def has_delete_actions(table: Table) -> bool:
    """Whether deleting a row of ``table`` can make the database write other rows."""
    return any(r.ondelete for r in referrers(table))


def key_columns(table: Table) -> frozenset[str]:
    """The columns of ``table`` whose change makes the database write other rows."""
    return frozenset(c for r in referrers(table) if r.onupdate for c in r.referred)


def _action(value: str | None) -> str | None:
    action = " ".join((value or "").upper().split())
    return action if action in _ACTIONS else None


def on_delete(
    table: Table, rows: Sequence[Mapping[str, Any]], exclude: Iterable[Key] = ()
) -> Plan:
    """What the database writes when ``rows`` of ``table`` are deleted. Rows keyed in
    ``exclude`` (being deleted by the same write) are left out."""
    return _traverse(table, [(dict(row), None) for row in rows], exclude)


def on_key_change(
    table: Table, changes: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> Plan:
    """What the database writes when rows of ``table`` change from old to new images."""
    return _traverse(table, [(dict(old), dict(new)) for old, new in changes], ())


def _traverse(
    table: Table, seed: list[tuple[Image, Image | None]], exclude: Iterable[Key]
) -> Plan:
    effects: list[Effect] = []
    gone: set[Key] = set(exclude)
    for old, new in seed:
        if new is None:
            gone.add(_key(table, old))
    current: dict[Key, Image] = {}  # a row's image after the updates found so far
    queue: list[tuple[Table, list[tuple[Image, Image | None]]]] = [(table, seed)]
    while queue:
        parent, changes = queue.pop(0)
        for ref in referrers(parent):
            action = ref.ondelete if changes[0][1] is None else ref.onupdate
            if action is None:
                continue
            targets: dict[tuple[Any, ...], tuple[Any, ...] | None] = {}
            for old, new in changes:
                old_key = tuple(old[c] for c in ref.referred)
                new_key = None if new is None else tuple(new[c] for c in ref.referred)
                if None not in old_key and old_key != new_key:
                    targets[old_key] = new_key
            if not targets:
                continue
            children = yield _children(ref, list(targets))
            defaults = (yield _defaults(ref)) if action == "SET DEFAULT" else None
            deleted: list[tuple[Image, Image | None]] = []
            updated: list[tuple[Image, Image | None]] = []
            for child in children:
                key = _key(ref.table, child)
                if key in gone:
                    continue
                old = current.get(key, child)
                if action == "CASCADE" and changes[0][1] is None:
                    gone.add(key)
                    effects.append(Effect(ref.table, "DELETE", old, None))
                    deleted.append((old, None))
                    continue
                if action == "CASCADE":
                    values: tuple[Any, ...] = _new_key(targets, child, ref.columns)
                elif action == "SET NULL":
                    values = (None,) * len(ref.columns)
                else:
                    assert defaults is not None
                    values = tuple(defaults[0][c] for c in ref.columns)
                new = {**old, **dict(zip(ref.columns, values, strict=True))}
                if new != old:
                    current[key] = new
                    effects.append(Effect(ref.table, "UPDATE", old, new))
                    updated.append((old, new))
            if deleted:
                queue.append((ref.table, deleted))
            if updated:
                queue.append((ref.table, updated))
    return effects


def _new_key(
    targets: Mapping[tuple[Any, ...], tuple[Any, ...] | None],
    child: Mapping[str, Any],
    columns: tuple[str, ...],
) -> tuple[Any, ...]:
    """The key ON UPDATE CASCADE gives ``child``: its parent's new key. The child may hold
    the old key in another spelling the database matched ('abc' for 'ABC' on MySQL)."""
    held = tuple(child[c] for c in columns)
    if held in targets:
        return targets[held] or ()
    folded = _fold(held)
    for old, new in targets.items():
        if _fold(old) == folded:
            return new or ()
    raise LookupError(f"no parent key for {held!r}")


def _fold(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.casefold().rstrip() if isinstance(v, str) else v for v in key)


def _children(ref: Referrer, keys: list[tuple[Any, ...]]) -> Select[Any]:
    columns = [ref.table.c[c] for c in ref.columns]
    if len(columns) == 1:
        condition = columns[0].in_([k[0] for k in keys])
    else:
        condition = tuple_(*columns).in_(keys)
    return select(ref.table).where(condition).with_for_update()


def _defaults(ref: Referrer) -> Select[Any]:
    """The values the database sets for SET DEFAULT: each column's server default."""
    return select(*(_server_default(ref.table.c[c]).label(c) for c in ref.columns))


def _server_default(column: Column[Any]) -> Any:
    default = column.server_default
    arg = getattr(default, "arg", None)
    if arg is None:
        return literal(None, type_=column.type)
    # A str server default is rendered as a quoted literal in the DDL; an expression as is.
    return cast(literal(arg) if isinstance(arg, str) else arg, column.type)


def _key(table: Table, row: Mapping[str, Any]) -> Key:
    return table, tuple(row[c.key] for c in table.primary_key.columns)


def run(plan: Plan, fetch: Callable[[Select[Any]], list[Image]]) -> list[Effect]:
    """Run ``plan``, reading with ``fetch``; the effects."""
    try:
        statement = next(plan)
        while True:
            statement = plan.send(fetch(statement))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(
    plan: Plan, fetch: Callable[[Select[Any]], Awaitable[list[Image]]]
) -> list[Effect]:
    """Run ``plan``, reading with the coroutine function ``fetch``; the effects."""
    try:
        statement = next(plan)
        while True:
            statement = plan.send(await fetch(statement))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def model_of(policy: Policy, table: Table) -> type[Any] | None:
    """The mapped class of ``table`` (``None``: a plain table, such as an association table
    no model maps, which no rule can govern)."""
    return _model_of(policy, policy.version, table)


@lru_cache(maxsize=1024)
def _model_of(policy: Policy, _version: int, table: Table) -> type[Any] | None:
    models = policy.models()
    for model in models:
        if getattr(model, "__table__", None) is table:
            return model
    for model in models:
        for mapper in model.__mapper__.registry.mappers:
            if mapper.local_table is table:
                return mapper.class_  # type: ignore[no-any-return]
    return None


Undecided = Callable[[type[Any], str, Image], bool]
"""Asks the database whether a caller may act on a row image Python cannot decide."""


def denial(
    policy: Policy, ctx: AuthContext, effects: Iterable[Effect], undecided: Undecided
) -> tuple[str, type[Any]] | None:
    """The first effect ``ctx`` may not cause, as (action, model); ``None`` if all are allowed.

    A cascaded delete needs the delete rule on the row; a SET NULL / SET DEFAULT / ON UPDATE
    CASCADE update needs the update rule on its old and its new image, as any update does.
    Rows of plain tables no model maps are free (as their own writes are).
    """
    for effect in effects:
        model = model_of(policy, effect.table)
        if model is None:
            continue
        action = "delete" if effect.op == "DELETE" else "update"
        images = [effect.old] if effect.new is None else [effect.old, effect.new]
        for image in images:
            verdict = policy.check_row(model, action, ctx, image)
            if verdict is None:
                verdict = undecided(model, action, image)
            if not verdict:
                return action, model
    return None
