"""The Policy: every rule, by model and action, and the decisions made from them."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, or_, true
from sqlalchemy.sql.elements import False_, True_

from ..identity.context import AuthContext
from ..identity.secret_fields import secret_keys
from .evaluate import NotEvaluable, evaluate
from .rules import Action, Rule, WhereClause, build_rule
from .sqlexpr import columns_read

logger = logging.getLogger("capebase.policy")


class _ProbeContext(dict[str, Any]):
    """A context that has every key, so a ``where`` callable can be called at registration."""

    def __missing__(self, key: str) -> Any:
        return 0

    def __contains__(self, key: object) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why ``explain`` allowed or denied: the deciding rule (if any) and every rule considered."""

    allowed: bool
    action: str
    model: str
    rule: str | None
    considered: tuple[str, ...]
    reason: str

    def __str__(self) -> str:
        verdict = "ALLOW" if self.allowed else "DENY"
        return f"{verdict} {self.action} {self.model}: {self.reason}"


class Policy:
    """All permission rules. Default deny: no rule for an action means nobody may do it."""

    def __init__(self) -> None:
        self._rules: dict[tuple[type[Any], str], list[Rule]] = defaultdict(list)
        self._count = 0
        self.version = 0
        """Bumped on every change, so compiled forms can tell they are stale."""

    def add(
        self,
        model: type[Any],
        *,
        actions: Sequence[str] | str,
        role: str | Sequence[str] | None = None,
        owner_field: str | None = None,
        context_fields: Sequence[str] | Mapping[str, str] | None = None,
        where: WhereClause | None = None,
    ) -> Rule:
        """Validate and add one rule; it applies at once. See ``CapeBase.permission_required``."""
        self._count += 1
        rule = build_rule(
            model,
            actions=actions,
            role=role,
            owner_field=owner_field,
            context_fields=context_fields,
            where=where,
            index=self._count,
        )
        expression = _probe_where(rule) if where is not None else None
        if "read" in rule.actions:
            _warn_of_secret_fields(rule, expression)
        for action in rule.actions:
            self._rules[(model, action)].append(rule)
        self.version += 1
        return rule

    def rules_for(self, model: type[Any], action: Action | str) -> list[Rule]:
        """The rules for ``model`` and ``action``, in registration order."""
        return self._rules.get((model, action), [])

    def has_rules(self, model: type[Any]) -> bool:
        """Whether any rule names ``model``."""
        return any(m is model for m, _ in self._rules)

    def models(self) -> list[type[Any]]:
        """Every model some rule names, in registration order."""
        return list(dict.fromkeys(model for model, _ in self._rules))

    def governed_tables(self) -> frozenset[Any]:
        """The tables of the models some rule names."""
        tables = (getattr(model, "__table__", None) for model, _ in self._rules)
        return frozenset(table for table in tables if table is not None)

    def sql_filter(self, model: type[Any], action: str, ctx: AuthContext) -> ColumnElement[bool]:
        """The SQL predicate of the rows ``ctx`` may ``action`` (``false()`` when none)."""
        predicates = []
        for rule in self.rules_for(model, action):
            if not rule.applies_to(ctx):
                continue
            predicate = rule.sql(ctx)
            if isinstance(predicate, True_):
                return true()
            if not isinstance(predicate, False_):
                predicates.append(predicate)
        if not predicates:
            return false()
        return predicates[0] if len(predicates) == 1 else or_(*predicates)

    def allows_some(self, model: type[Any], action: str, ctx: AuthContext) -> bool:
        """Whether any rule for ``action`` applies to ``ctx``'s role (rows aside)."""
        return any(rule.applies_to(ctx) for rule in self.rules_for(model, action))

    def check_row(
        self, model: type[Any], action: str, ctx: AuthContext, row: Mapping[str, Any]
    ) -> bool | None:
        """Whether ``ctx`` may ``action`` the row image ``row``.

        Returns ``None`` when the answer depends on a ``where`` expression Python cannot
        evaluate; the caller then asks the database (``enforcement.check_in_database``).
        """
        undecided = False
        for rule in self.rules_for(model, action):
            if not rule.applies_to(ctx):
                continue
            verdict = rule.matches(ctx, row)
            if verdict is True:
                return True
            if verdict is None:
                undecided = True
        return None if undecided else False

    def explain(
        self,
        ctx: AuthContext,
        action: str,
        model: type[Any],
        row: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Which rule allows ``ctx`` to ``action`` on ``model`` (or ``row``), or why none does."""
        rules = self.rules_for(model, action)
        considered = tuple(rule.describe() for rule in rules)
        name = model.__name__
        if not rules:
            return Explanation(False, action, name, None, considered,
                               f"no rule grants {action} on {name} (default deny)")
        applicable = [rule for rule in rules if rule.applies_to(ctx)]
        if not applicable:
            return Explanation(False, action, name, None, considered,
                               f"no rule for {action} applies to role {ctx.role!r}")
        if row is None:
            for rule in applicable:
                predicate = rule.sql(ctx)
                if isinstance(predicate, True_):
                    return Explanation(True, action, name, rule.describe(), considered,
                                       f"allowed on every row by {rule.describe()}")
                if not isinstance(predicate, False_):
                    return Explanation(True, action, name, rule.describe(), considered,
                                       f"{rule.describe()} applies; rows are filtered by its "
                                       "conditions")
            return Explanation(False, action, name, None, considered,
                               "the applicable rules match no row for this caller (anonymous "
                               "caller with owner_field, or a context key it lacks)")
        undecided: list[Rule] = []
        for rule in applicable:
            verdict = rule.matches(ctx, row)
            if verdict is True:
                return Explanation(True, action, name, rule.describe(), considered,
                                   f"allowed by {rule.describe()}")
            if verdict is None:
                undecided.append(rule)
        if undecided:
            return Explanation(False, action, name, undecided[0].describe(), considered,
                               "undecided in Python: the where expression needs the database")
        return Explanation(False, action, name, None, considered,
                           "the row matches no applicable rule's conditions")


def _probe_where(rule: Rule) -> Any:
    """Call a ``where`` callable once with a stand-in context; warn if Python can't evaluate
    it. Returns its expression (``None`` if the probe failed)."""
    probe = AuthContext(id="probe", role="probe", context=_ProbeContext())
    try:
        expression = rule.where(probe) if rule.where else None
    except Exception as exc:  # the user's callable; any failure only means "can't probe"
        logger.info("%s: could not probe where= at registration (%s)", rule.describe(), exc)
        return None
    if expression is None:
        return None
    row = {column.key: None for column in rule.table.c}
    try:
        evaluate(expression, row)
    except NotEvaluable as exc:
        logger.warning(
            "%s: the where expression cannot be evaluated in Python (%s); row checks for it "
            "(writes, realtime delivery) will ask the database instead",
            rule.describe(),
            exc,
        )
    return expression


def _warn_of_secret_fields(rule: Rule, expression: Any) -> None:
    """Warn of a read rule that reads a secret field: streams cannot judge it from changes."""
    read = {rule.owner_field, *rule.context_fields}
    if isinstance(expression, ColumnElement):
        read |= columns_read(expression, rule.table)
    secret = sorted(name for name in read if name is not None and name in secret_keys(rule.table))
    if secret:
        logger.warning(
            "%s reads the secret field(s) %s, which change events do not hold: streams re-read "
            "each changed row under it (a query per change and caller), resumes reset, and a "
            "row deleted or hidden by a change to the field sends its former readers nothing",
            rule.describe(),
            ", ".join(secret),
        )
