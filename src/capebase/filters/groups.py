"""Boolean groups of filter conditions: ``or=(...)``, ``and=(...)``, ``not.or=(...)`` and
``not.and=(...)``, parsed into a tree of conditions that lists compile to SQL and streams
evaluate in Python.

The grammar (PostgREST's logical operators, with capebase's ``field__op=value`` conditions)::

    parameter := GROUP "=(" items ")"            GROUP is or, and, not.or, not.and
    items     := item ("," item)*
    item      := condition | GROUP "(" items ")"
    condition := field ["__" op] "=" value
    value     := '"' text '"' | bare | "(" [value ("," value)*] ")"     a list: in, nin only

A bare value runs to the next ``,`` or ``)`` and cannot hold ``"``, ``(`` or ``)``; a quoted
one may hold anything, with ``\\"`` for ``"`` and ``\\\\`` for ``\\``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import NoReturn

from ..errors import QueryError

GROUP_KEYS = frozenset({"or", "and", "not.or", "not.and"})
"""The query parameters (and the nested names) that open a group."""
LIST_OPERATORS = frozenset({"in", "nin"})


@dataclass(frozen=True, slots=True)
class Term:
    """One ``field__op=value`` condition: ``raw`` its value as sent, ``items`` the values of
    a parenthesized list (``in``, ``nin`` inside a group), ``None`` for a plain value."""

    key: str
    name: str
    op: str
    raw: str
    items: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """Conditions combined with ``and`` or ``or``, negated when ``negated``."""

    kind: str
    negated: bool
    items: tuple[Term | Group, ...]

    def terms(self) -> Iterator[Term]:
        """Every condition of the group, at any depth."""
        for item in self.items:
            if isinstance(item, Group):
                yield from item.terms()
            else:
                yield item


def term(key: str, raw: str) -> Term:
    """The condition of a plain ``key=raw`` query parameter (``eq`` when ``key`` has no
    operator)."""
    name, separator, op = key.partition("__")
    return Term(key, name, op if separator else "eq", raw)


def parse_group(key: str, raw: str, *, max_depth: int, reserved: Collection[str]) -> Group:
    """The group of the query parameter ``key=raw`` (``key`` one of ``GROUP_KEYS``).

    Args:
        max_depth: how many groups may nest, this one included.
        reserved: parameter names that are not filters (``limit``...), refused inside.

    Raises:
        QueryError: 400 naming what is wrong: a parenthesis, an empty group, a name that is
            not a condition, a group nested deeper than ``max_depth``.
    """
    parser = _Parser(key, raw, max_depth, reserved)
    if not raw.startswith("("):
        parser.fail(f"a group is written {key}=(condition,condition,...)")
    group = parser.group(key, depth=1)
    if parser.pos != len(raw):
        parser.fail(f"unexpected {raw[parser.pos:]!r} after the group's closing ')'")
    return group


class _Parser:
    """A recursive descent over one parameter's value; ``depth`` bounds the recursion."""

    def __init__(self, key: str, text: str, max_depth: int, reserved: Collection[str]) -> None:
        self.key, self.text, self.max_depth, self.reserved = key, text, max_depth, reserved
        self.pos = 0

    def fail(self, problem: str) -> NoReturn:
        raise QueryError(f"Malformed filter group {self.key}={self.text!r}: {problem}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def group(self, name: str, depth: int) -> Group:
        """The group ``name(...)``, the position on its ``(``."""
        if depth > self.max_depth:
            raise QueryError(
                f"Filter groups nested too deep in {self.key}=...: at most {self.max_depth} "
                "levels (LimitsConfig.max_filter_depth)"
            )
        self.pos += 1
        if self.peek() == ")":
            self.fail(f"the group {name}() is empty")
        items: list[Term | Group] = []
        while True:
            items.append(self.item(depth))
            char = self.peek()
            self.pos += 1
            if char == ")":
                break
            if char != ",":
                self.fail(f"unbalanced parentheses: ')' missing to close {name}(...)")
        negated, _, kind = name.rpartition(".")
        return Group(kind=kind, negated=bool(negated), items=tuple(items))

    def item(self, depth: int) -> Term | Group:
        start = self.pos
        while self.peek() not in ("=", "(", ",", ")", '"', ""):
            self.pos += 1
        name, char = self.text[start:self.pos], self.peek()
        if char == "(":
            if name not in GROUP_KEYS:
                self.fail(f"{name!r}(...) is no group; groups are "
                          "or(...), and(...), not.or(...) and not.and(...)")
            return self.group(name, depth + 1)
        if char != "=" or not name:
            self.fail(f"expected field__op=value or a nested group at {self.text[start:]!r}")
        field, separator, op = name.partition("__")
        if name in GROUP_KEYS:
            self.fail(f"nest a group as {name}(...), without '='")
        if field in self.reserved:
            self.fail(f"{field!r} is not a filter and cannot appear inside a group")
        self.pos += 1
        op = op if separator else "eq"
        # The last part names the operator, after a related field too: project__id__in.
        is_list = name.rpartition("__")[2] in LIST_OPERATORS if separator else False
        if self.peek() == "(":
            if not is_list:
                self.fail(f"a parenthesized list is a value of in and nin only, not of {name!r}; "
                          'quote a value holding parentheses: name="(a)"')
            items = self.values(name)
            return Term(name, field, op, ",".join(items), items)
        if is_list:
            self.fail(f"inside a group, {name} takes a parenthesized list: {name}=(a,b)")
        return Term(name, field, op, self.value(name))

    def values(self, name: str) -> tuple[str, ...]:
        """The list ``(a,"b,c")``, the position on its ``(``."""
        self.pos += 1
        items: list[str] = []
        if self.peek() == ")":
            self.pos += 1
            return ()
        while True:
            items.append(self.value(name))
            char = self.peek()
            self.pos += 1
            if char == ")":
                return tuple(items)
            if char != ",":
                self.fail(f"unbalanced parentheses: ')' missing to close the list of {name}")

    def value(self, name: str) -> str:
        if self.peek() == '"':
            return self.quoted(name)
        start = self.pos
        while self.peek() not in (",", ")", ""):
            if self.peek() in ('"', "("):
                self.fail(f"the value of {name} holds {self.peek()!r}: quote it, "
                          f'{name}="..." (with \\" for a quote)')
            self.pos += 1
        return self.text[start:self.pos]

    def quoted(self, name: str) -> str:
        self.pos += 1
        chars: list[str] = []
        while True:
            char = self.peek()
            if char == "":
                self.fail(f"the quoted value of {name} has no closing '\"'")
            self.pos += 1
            if char == '"':
                break
            if char == "\\" and self.peek() in ('"', "\\"):
                char = self.peek()
                self.pos += 1
            chars.append(char)
        if self.peek() not in (",", ")"):
            self.fail(f"expected ',' or ')' after the quoted value of {name}")
        return "".join(chars)


def split_params(
    params: Iterable[tuple[str, str]],
    *,
    reserved: Collection[str],
    max_terms: int,
    max_depth: int,
) -> tuple[list[Term], list[Group]]:
    """A query string's plain conditions and groups (names in ``reserved`` are not filters).

    Raises:
        QueryError: a malformed group, more than ``max_terms`` conditions, groups nested
            deeper than ``max_depth`` (400).
    """
    terms: list[Term] = []
    groups: list[Group] = []
    for key, raw in params:
        if key in GROUP_KEYS:
            groups.append(parse_group(key, raw, max_depth=max_depth, reserved=reserved))
        elif key not in reserved:
            terms.append(term(key, raw))
    check_size(len(terms), groups, max_terms=max_terms)
    return terms, groups


def check_size(terms: int, groups: list[Group], *, max_terms: int) -> None:
    """Refuse a request whose conditions, plain (``terms``) and in ``groups``, number more
    than ``max_terms``.

    Raises:
        QueryError: 400 naming the limit.
    """
    total = terms + sum(1 for group in groups for _ in group.terms())
    if total > max_terms:
        raise QueryError(
            f"Too many filter conditions: {total} given, at most {max_terms} "
            "(LimitsConfig.max_filter_terms)"
        )
