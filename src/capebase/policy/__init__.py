"""The permission policy: rules, their SQL and Python forms, and their enforcement."""

from . import cascades as _cascades  # noqa: F401  registers the referential-action hooks
from . import enforcement as _enforcement  # noqa: F401  registers the flush hook
from . import flush_rows as _flush_rows  # noqa: F401  registers the per-row write hooks
from . import statements as _statements  # noqa: F401  registers the statement hook
from .registry import Explanation, Policy
from .rules import ACTIONS, Action, Rule

__all__ = ["ACTIONS", "Action", "Explanation", "Policy", "Rule"]
