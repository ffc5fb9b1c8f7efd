"""The subscriber index: find the subscribers a change may concern without scanning them all.

A subscriber is filed under the values its rules or filters pin: an owner rule pins
``(owner_field, ctx.id)``, a context rule ``(field, value)``, a filter ``field=v`` or
``field__in=...`` pins its values. A pin is a necessary condition for seeing a row, so a change
only needs checking against subscribers filed under a value of its old or new image, plus the
few that no value pins (public readers, ``where`` rules).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ..filters.streams import StreamFilter
from ..identity.secret_fields import secret_keys
from ..policy.registry import Policy
from .subscribers import Subscriber

Pin = tuple[str, Any]


def pins_for(policy: Policy, subscriber: Subscriber) -> list[Pin] | None:
    """The pins of ``subscriber``: values one of which every visible row must have.

    Returns ``None`` when nothing pins it (it must see every change of its model), and an
    empty list when no rule lets it read anything.
    """
    for stream_filter in subscriber.filters:
        if not isinstance(stream_filter, StreamFilter):  # a group pins nothing
            continue
        if stream_filter.op == "eq":
            return [(stream_filter.field, stream_filter.value)]
        if stream_filter.op == "in":
            return [(stream_filter.field, v) for v in stream_filter.value]
    ctx = subscriber.ctx
    pins: list[Pin] = []
    # A secret field is not in the change's images: a rule pinning one pins nothing there.
    hidden = secret_keys(subscriber.view.table)
    for rule in policy.rules_for(subscriber.view.model, "read"):
        if not rule.applies_to(ctx):
            continue
        rule_pins = rule.pins(ctx)
        if rule_pins is None or any(field in hidden for field, _value in rule_pins):
            return None
        pins.extend(rule_pins)
    return pins


class SubscriberIndex:
    """The subscribers of one model, filed by pin."""

    def __init__(self) -> None:
        self._by_pin: dict[str, dict[Any, set[Subscriber]]] = defaultdict(lambda: defaultdict(set))
        self._unpinned: set[Subscriber] = set()
        self._pins: dict[Subscriber, list[Pin] | None] = {}

    def __len__(self) -> int:
        return len(self._pins)

    def __iter__(self) -> Any:
        return iter(list(self._pins))

    def add(self, subscriber: Subscriber, pins: list[Pin] | None) -> None:
        """File ``subscriber`` under ``pins`` (``None``: under every change)."""
        self._pins[subscriber] = pins
        if pins is None:
            self._unpinned.add(subscriber)
            return
        for field, value in pins:
            self._by_pin[field][value].add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        """Forget ``subscriber``; empty buckets are dropped so memory follows the subscribers."""
        pins = self._pins.pop(subscriber, None)
        self._unpinned.discard(subscriber)
        for field, value in pins or ():
            bucket = self._by_pin[field]
            members = bucket.get(value)
            if members is not None:
                members.discard(subscriber)
                if not members:
                    del bucket[value]
            if not bucket:
                del self._by_pin[field]

    def candidates(self, images: Iterable[dict[str, Any] | None]) -> set[Subscriber]:
        """Subscribers that might see a change whose row images are ``images``."""
        found = set(self._unpinned)
        for image in images:
            if image is None:
                continue
            for field, bucket in self._by_pin.items():
                value = image.get(field)
                if value is None:
                    continue
                try:
                    members = bucket.get(value)
                except TypeError:  # an unhashable value pins nobody
                    continue
                if members:
                    found |= members
        return found
