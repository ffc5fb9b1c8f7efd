"""Placeholder secrets and passwords, which capebase refuses at start-up outside development.

A value is a placeholder when it reads like one written by hand for an example: a word such as
"secret" or "changeme", a run like "abcdefgh" or "12345678", a short pattern repeated, or very few
different characters. A value from ``secrets.token_urlsafe`` or ``token_hex`` has none of these
(the chance is below one in a million).
"""

from __future__ import annotations

import itertools
import os
import re

DEV_VARIABLE = "CAPEBASE_DEV"
"""``CAPEBASE_DEV=1`` allows placeholders, as ``PasswordAuth(dev=True)`` does."""

_WORDS = (
    "secret", "password", "passwd", "changeme", "placeholder", "replaceme", "example",
    "default", "insecure", "letmein", "qwerty",
)  # fmt: skip
_RUN = 8


def placeholder_reason(value: str) -> str | None:
    """Why ``value`` looks like a placeholder, or ``None`` when it does not."""
    folded = re.sub(r"[^0-9a-z]", "", value.lower())
    for word in _WORDS:
        if word in folded:
            return f"it contains {word!r}"
    if _longest_run(folded) >= _RUN:
        return f"it contains a run of {_RUN} such as 'abcdefgh' or '12345678'"
    if len(set(value)) < min(8, len(value) // 2):
        return "it has very few different characters"
    if (period := _period(value)) <= len(value) // 2:
        return f"it repeats a pattern of {period} characters"
    return None


def is_dev(flag: bool) -> bool:
    """Whether development mode is on: ``flag`` (``PasswordAuth(dev=True)``) or
    ``CAPEBASE_DEV=1`` in the environment."""
    return flag or os.environ.get(DEV_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def _longest_run(text: str) -> int:
    """The longest stretch of consecutive characters going up or down by one (``"cdefg"``)."""
    longest = current = 1 if text else 0
    step = 0
    for before, after in itertools.pairwise(text):
        difference = ord(after) - ord(before)
        if difference in (1, -1) and difference == step:
            current += 1
        elif difference in (1, -1):
            current, step = 2, difference
        else:
            current, step = 1, 0
        longest = max(longest, current)
    return longest


def _period(value: str) -> int:
    """The length of the shortest pattern ``value`` repeats (``len(value)`` when none)."""
    for period in range(1, len(value) // 2 + 1):
        if all(value[i] == value[i - period] for i in range(period, len(value))):
            return period
    return len(value)
