"""The permission policy: rules, their SQL and Python forms, and their enforcement."""

from .registry import Explanation, Policy
from .rules import ACTIONS, Action, Rule

__all__ = ["ACTIONS", "Action", "Explanation", "Policy", "Rule"]
