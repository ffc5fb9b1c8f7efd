"""Hypothesis settings profiles of the suite, and the example counts tests scale by them.

`fast` is `make test`'s: derandomized (the same examples every run, so CI is deterministic and
its counting assertions hold every time). `deep` is `make deep`'s: a fresh seed per run and
``DEEP_FACTOR`` times the examples, to find what the fixed examples never reach. `mutate` is
`make mutate`'s: `fast` without shrinking, so a mutant fails on the same first failing example
without the minutes spent making it small. Tests set no ``derandomize`` of their own; they
take it from the profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

DEEP_FACTOR = 10
_BASE_EXAMPLES = 100


def register_profiles() -> None:
    """Register `fast`, `mutate` and `deep`; load `fast` unless CAPEBASE_HYPOTHESIS_PROFILE
    names one (pytest's ``--hypothesis-profile`` option, applied later, wins over both)."""
    common = {
        "deadline": None,
        "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
    }
    settings.register_profile("fast", max_examples=_BASE_EXAMPLES, derandomize=True, **common)
    settings.register_profile(
        "mutate",
        max_examples=_BASE_EXAMPLES,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        report_multiple_bugs=False,
        **common,
    )
    settings.register_profile(
        "deep",
        max_examples=_BASE_EXAMPLES * DEEP_FACTOR,
        derandomize=False,
        print_blob=True,
        **common,
    )
    settings.load_profile(os.environ.get("CAPEBASE_HYPOTHESIS_PROFILE", "fast"))


def scaled(count: int) -> int:
    """``count`` (examples, operations) as the loaded profile wants it: as is under `fast`,
    ``DEEP_FACTOR`` times more under `deep`."""
    return max(1, count * settings.default.max_examples // _BASE_EXAMPLES)
