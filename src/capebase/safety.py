"""Start-up warnings about settings that are allowed but probably not what was meant."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .errors import ConfigurationError
from .observability.config import MetricsConfig
from .placeholders import DEV_VARIABLE, is_dev, placeholder_reason
from .policy import Policy
from .realtime.config import RealtimeConfig

logger = logging.getLogger("capebase")


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


def check_resume_secret(config: RealtimeConfig, *, dev: bool) -> None:
    """Refuse a placeholder ``RealtimeConfig.resume_token_secret`` outside development mode:
    whoever knows it can sign resume tokens.

    Raises:
        ConfigurationError: a placeholder, and neither ``dev`` nor ``CAPEBASE_DEV=1``.
    """
    secret = config.resume_token_secret
    why = None if secret is None else placeholder_reason(secret)
    if why is None:
        return
    if is_dev(dev):
        logger.warning(
            "capebase: development mode: RealtimeConfig.resume_token_secret is a placeholder; "
            "never run this configuration in production"
        )
        return
    raise ConfigurationError(
        f"RealtimeConfig.resume_token_secret looks like a placeholder ({why}): anyone who "
        "knows it can sign resume tokens. Use secrets.token_urlsafe(32), or leave it None to "
        f"have capebase generate and store one. For development only, set {DEV_VARIABLE}=1."
    )
