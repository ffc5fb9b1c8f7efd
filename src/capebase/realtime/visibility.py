"""What a subscriber sees of a change: its read rules and filters, applied to the row images.

A rule Python can evaluate reads nothing but the image and the caller, so it gives the same
answer for a past image as it gave when that image was the row, unless its ``where=`` puts a
changing value in (``datetime.now()``, ``date.today()``): a replay then judges with the value
of the moment, so the resume token binds the rule as built when the stream opened
(``fingerprint``; a clock moves one way, so a value the same at both ends was the same
between) and the stream re-checks it while replaying.
A rule only the database can judge may read other tables (a share, a team) or the clock,
which have changed since: checked today, a past image could pass that never could when it was
current (a document edited before it was shared, replayed after). A rule that reads a secret
field cannot judge an image at all: the change log leaves secret fields out (as NULL, ``IS
NULL`` would pass every protected row). So under such a rule a subscriber gets the row as it
may read it when the event is delivered, as a GET would return it then, and never a past
image; a rule the database judges from the row alone (``lower(title) LIKE ...``) still judges
the images.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.sql import elements, visitors

from ..changes.changelog import encode_image
from ..identity.context import AuthContext
from ..identity.secret_fields import secret_keys, without_secrets
from ..policy.registry import Policy
from ..policy.sqlexpr import columns_read, reads_only_the_row, with_row_values
from .canonical import rule_fingerprint
from .subscribers import Subscriber


class Executes(Protocol):
    """What delivery needs of a connection: running a statement (a policy check in SQL)."""

    async def execute(self, statement: Any, /) -> Any: ...


class Visibility:
    """Decides, per subscriber, whether a change is an INSERT, UPDATE or DELETE for it, or
    nothing: in Python, against the old and new row images, unless a ``where`` rule needs SQL.
    """

    __slots__ = ("policy",)

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def event_for(
        self, subscriber: Subscriber, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> str | None:
        """The view-relative event ``subscriber`` gets for a change from ``old`` to ``new``:
        INSERT, UPDATE, DELETE, ``None`` (nothing to see), or ASK_DATABASE when a rule's
        ``where`` needs SQL to decide (then ask ``as_read_now``)."""
        was = self._visible(subscriber, old)
        now_visible = self._visible(subscriber, new)
        if was is None or now_visible is None:
            return ASK_DATABASE
        return _EVENTS[was, now_visible]

    def judges_images(self, subscriber: Subscriber, memo: Memo | None = None) -> bool:
        """Whether the database, asked about a past image, answers as it would have when the
        image was the row: ``subscriber``'s read rule reads that row alone, and no secret
        field of it."""
        key = ("judges images", _caller(subscriber))
        if memo is not None and key in memo:
            return bool(memo[key])
        view = subscriber.view
        rule = self.policy.sql_filter(view.model, "read", subscriber.ctx)
        judges = (
            reads_only_the_row(rule, view.table)
            # A secret column is not in the change's images: the rule cannot judge them.
            and not columns_read(rule, view.table) & secret_keys(view.table)
            and self.is_steady(subscriber)
        )
        if memo is not None and key[-1] is not None:
            memo[key] = judges
        return judges

    def fingerprint(self, model: type[Any], ctx: AuthContext) -> bytes | None:
        """``canonical.rule_fingerprint`` of ``ctx``'s read rule of ``model``, built now;
        ``None`` when it has none: a stream under it is never replayed."""
        try:
            return rule_fingerprint(self.policy.sql_filter(model, "read", ctx))
        except Exception:  # NotCanonical, or the app's where= failing for this caller
            return None

    def is_steady(self, subscriber: Subscriber) -> bool:
        """Whether ``subscriber``'s read rule is the same each time it is built: a ``where=``
        that puts ``datetime.now()`` (or any other changing value) into it judges a past
        image by today's value, so a replay cannot use it."""
        view, ctx = subscriber.view, subscriber.ctx
        first = _bound_values(self.policy.sql_filter(view.model, "read", ctx))
        second = _bound_values(self.policy.sql_filter(view.model, "read", ctx))
        try:
            return bool(first == second)
        except Exception:  # values that cannot be compared: assume they change
            return False

    async def event_in_database(
        self,
        subscriber: Subscriber,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        connection: Executes,
        memo: Memo | None = None,
    ) -> str | None:
        """``event_for``, asking the database what Python cannot decide (for a rule that
        ``judges_images``)."""
        was = await self._visible_in_database(subscriber, old, connection, memo)
        now_visible = await self._visible_in_database(subscriber, new, connection, memo)
        return _EVENTS[was, now_visible]

    async def as_read_now(
        self,
        subscriber: Subscriber,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
        connection: Executes,
        memo: Memo | None = None,
    ) -> tuple[str, dict[str, Any] | None] | None:
        """For a change ``event_for`` left to the database, under a rule that does not
        ``judges_images``: the event, and the row (a JSON image, ``None`` for DELETE) as
        ``subscriber`` may read it now; ``None``: nothing.

        Whether the subscriber saw the row before only names the event (INSERT or UPDATE,
        DELETE or nothing); the old image itself is never sent.
        """
        image = new if new is not None else old
        row = await _memoized(
            memo, ("row", _caller(subscriber)),
            lambda: self._readable_row(subscriber, image, connection),
        )
        now_visible = row is not None and subscriber.passes_filters(subscriber.view.decode(row))
        was = await self._visible_in_database(subscriber, old, connection, memo)
        event = _EVENTS[was, now_visible]
        if event is None:
            return None
        return event, row if now_visible else None

    async def _readable_row(
        self, subscriber: Subscriber, image: dict[str, Any] | None, connection: Executes
    ) -> dict[str, Any] | None:
        """The stored row keyed as ``image``, if ``subscriber``'s read rules pass it now."""
        assert image is not None  # a change has an old or a new image
        view = subscriber.view
        table = view.table
        statement = select(table).where(
            *(column == image[column.key] for column in table.primary_key.columns),
            self.policy.sql_filter(view.model, "read", subscriber.ctx),
        )
        row = (await connection.execute(statement)).mappings().first()
        if row is None:
            return None
        stored = {column.key: row[column] for column in table.columns}
        # The change log's JSON form, so the event looks as it does for any other rule.
        encoded = encode_image(without_secrets(table, stored))
        assert encoded is not None
        image_now: dict[str, Any] = json.loads(encoded)
        return image_now

    def _visible(self, subscriber: Subscriber, image: dict[str, Any] | None) -> bool | None:
        """Whether ``subscriber`` sees the row ``image``; ``None`` if only SQL can tell."""
        if image is None or not subscriber.passes_filters(image):
            return False
        return self.policy.check_row(subscriber.view.model, "read", subscriber.ctx, image)

    async def _visible_in_database(
        self,
        subscriber: Subscriber,
        image: dict[str, Any] | None,
        connection: Executes,
        memo: Memo | None = None,
    ) -> bool:
        if image is None:
            return False
        verdict = self._visible(subscriber, image)
        if verdict is None:
            view = subscriber.view
            rule = self.policy.sql_filter(view.model, "read", subscriber.ctx)
            predicate = with_row_values(rule, view.table, image, only_held=True)
            statement = select(predicate)
            if not columns_read(rule, view.table) <= image.keys():
                # A column the image lacks (a secret field) is not NULL: it is read from the
                # stored row, and a row no longer stored is one the caller cannot be told of.
                statement = statement.select_from(view.table).where(
                    *(column == image[column.key] for column in view.table.primary_key.columns)
                )

            async def ask() -> bool:
                return bool((await connection.execute(statement)).scalar())

            verdict = await _memoized(memo, ("image", id(image), _caller(subscriber)), ask)
        return verdict


Memo = dict[Any, Any]
"""What the database said of one change, per caller: every stream of one caller (a user may
keep many open) costs one query per change, not one per stream."""


async def _memoized(memo: Memo | None, key: Any, ask: Callable[[], Awaitable[Any]]) -> Any:
    if memo is None or key[-1] is None:
        return await ask()
    if key not in memo:
        memo[key] = await ask()
    return memo[key]


def _caller(subscriber: Subscriber) -> Any:
    """What a rule may read of the caller, hashable; ``None`` when it cannot be made so."""
    ctx = subscriber.ctx
    try:
        key = (ctx.id, ctx.role, tuple(sorted(ctx.context.items())))
        hash(key)
    except TypeError:
        return None
    return key


def _bound_values(expr: Any) -> list[Any]:
    return [
        element.effective_value
        for element in visitors.iterate(expr)
        if isinstance(element, elements.BindParameter)
    ]


ASK_DATABASE = "ASK_DATABASE"
"""``Visibility.event_for``'s answer when a rule's ``where`` expression needs SQL to decide."""

_EVENTS: dict[tuple[bool, bool], str | None] = {
    (True, True): "UPDATE",
    (False, True): "INSERT",
    (True, False): "DELETE",
    (False, False): None,
}
"""The event a subscriber gets, by whether it saw the row before and after the change."""
