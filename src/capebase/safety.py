"""Start-up warnings about settings that are allowed but probably not what was meant."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .observability.config import MetricsConfig
from .policy import Policy


def unsafe_settings(
    published: Iterable[type[Any]], policy: Policy, metrics: MetricsConfig | None
) -> list[str]:
    """A warning for each published model with no permission rule (its routes answer
    ``200 []``, 404 and 403 to everyone, which looks like an empty table rather than a
    missing rule) and for metrics served without a guard."""
    found = [
        f"capebase: {model.__name__} is published but has no permission rule, so nobody may "
        f"read or write it (lists answer 200 []); add cape.permission_required({model.__name__}"
        ", ...)"
        for model in published
        if not policy.has_rules(model)
    ]
    if metrics is not None and metrics.guard is None:
        found.append(
            f"capebase: the metrics at {metrics.path} are served to anyone who can reach the "
            "app (table names, routes, error rates); pass MetricsConfig(guard=...) to restrict "
            "them"
        )
    return found
