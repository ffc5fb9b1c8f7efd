"""Mutation testing (mutmut) of the modules whose bugs cost most, each against its fast tests.

    python -m tests.mutate [GROUP ...]      # `make mutate` (MUTATE="lockout" for one group)

Each group mutates a few modules and runs only the tests written for them, on SQLite
(CAPEBASE_TEST_DBS=sqlite, CI unset) with the `mutate` Hypothesis profile (no shrinking):
mutmut's own test selection then runs, per mutant, only the tests that reached the mutated
function. A group works in ``build/mutate/<group>/``: the project
seen through symlinks plus a pyproject.toml with the group's ``[tool.mutmut]`` section, so
groups keep separate results and a rerun only retries what changed. For each group it prints
the counts by outcome and the surviving mutants, and writes them to
``build/mutate/<group>/report.txt``; ``mutmut show NAME`` in that directory shows a mutant's
diff. Survivors listed in ``EQUIVALENT`` (with the reason no test can tell them apart) count as
equivalent; it exits 1 if any other mutant survived.

mutmut is CPU-heavy: every group together takes hours on a small machine; run one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "mutate"

POLICY_TESTS = [
    "tests/policy/test_matrix.py",
    "tests/policy/test_sessions.py",
    "tests/policy/test_predicates_agree.py",
    "tests/policy/test_stateful.py",
    "tests/policy/test_insert_values.py",
    "tests/policy/test_refusal_messages.py",
    "tests/policy/test_bulk_set_values.py",
    "tests/policy/test_rule_pins.py",
    "tests/policy/test_evaluate.py",
    "tests/policy/test_explain.py",
]

GROUPS: dict[str, tuple[list[str], list[str]]] = {
    # group: (modules to mutate, the tests written for them; those that exist are run)
    # rules.py and evaluate.py against the tests of rules and predicates only: the statement
    # tests and test_stateful (sessions end to end) made a survivor cost a minute (issue 17)
    "policy": (
        ["src/capebase/policy/rules.py", "src/capebase/policy/evaluate.py"],
        [
            "tests/policy/test_evaluate.py",
            "tests/policy/test_rule_pins.py",
            "tests/policy/test_predicates_agree.py",
            "tests/policy/test_matrix.py",
            "tests/policy/test_sessions.py",
        ],
    ),
    # statements.py alone: the policy group took too long on a shared 2-core machine (issue 17)
    "statements": (["src/capebase/policy/statements.py"], POLICY_TESTS),
    "capture": (
        ["src/capebase/realtime/capture.py"],
        [
            "tests/realtime/test_capture.py",
            "tests/realtime/test_capture_images.py",
            "tests/realtime/test_handlers.py",
            "tests/observability/test_audit.py",
        ],
    ),
    "visibility": (
        [
            "src/capebase/realtime/hub.py",
            "src/capebase/realtime/subscribers.py",
            "src/capebase/realtime/index.py",
            "src/capebase/realtime/visibility.py",
        ],
        [
            "tests/realtime/test_visibility.py",
            "tests/realtime/test_resume.py",
            "tests/realtime/test_backpressure.py",
        ],
    ),
    "lockout": (
        ["src/capebase/auth/builtin/lockout.py"],
        [
            "tests/auth/test_lockout.py",
            "tests/auth/test_lockout_limiter.py",
            "tests/security/test_lockout.py",
        ],
    ),
    "writes": (
        ["src/capebase/crud/direct_writes.py"],
        [
            "tests/crud/test_direct_paths.py",
            "tests/crud/test_direct_writer.py",
            "tests/crud/test_routes.py",
            "tests/policy/test_matrix.py",
        ],
    ),
}

EQUIVALENT: list[tuple[str, str, str, str]] = [
    # (module, line as written, line as mutated, why no test can tell them apart): survivors
    # that match are reported as equivalent and do not fail the run. Matched by the change,
    # not by mutmut's numbering, which shifts when the code does.
    (
        "capebase.auth.builtin.lockout",
        "if account is None",
        "if (account is None) and False",
        "accounts are strings: the extra key ('account', None) is never stored",
    ),
    (
        "capebase.auth.builtin.lockout",
        "self._counters.popitem(last=False)",
        "self._counters.popitem(last=None)",
        "OrderedDict.popitem tests `last` for truth, and None is false",
    ),
]

EQUIVALENT += [
    (
        "capebase.realtime.capture",
        "if key is None or any(value is None for value in key):",
        after,
        "never true: the objects looked up are persistent ones (an identity) before the flush "
        "and ones this flush wrote (a full primary key) after it",
    )
    for after in ("if key is None and any(value is None for value in key):",)
] + [
    (
        "capebase.realtime.capture",
        "continue",
        "break",
        "in _stored_rows: reached only for a key with a NULL, which no object looked up has "
        "(see the `if` above it)",
    ),
]

EQUIVALENT += [
    (
        "capebase.policy.rules",
        "if isinstance(column, Column) and column.table is mapper.local_table:",
        "if isinstance(column, Column) or column.table is mapper.local_table:",
        "the columns it adds (an inherited table's) are never looked up: build_rule accepts "
        "only fields of the model's own table",
    ),
    (
        "capebase.policy.rules",
        "return conditions[0] if len(conditions) == 1 else _and(conditions)",
        "return conditions[0] if (len(conditions) == 1) and False else _and(conditions)",
        "and_() of one condition is that condition",
    ),
    (
        "capebase.policy.evaluate",
        'if table is not None and plain(getattr(expr, "table", None)) is not table:',
        'if table is not None and plain(getattr(expr, "table", )) is not table:',
        "every ColumnClause has a table attribute (None for a lightweight column): getattr's "
        "default is never used",
    ),
] + [
    (
        "capebase.policy.evaluate",
        "raise NotEvaluable(f\"cannot evaluate operator {getattr(op, '__name__', op)!r} in "
        "Python\")",
        f"raise NotEvaluable(f\"cannot evaluate operator {{getattr(op, '__name__', {default})!r}}"
        " in Python\")",
        "SQLAlchemy's operators (functions, custom_op) all have a __name__: getattr's default "
        "is never used",
    )
    for default in ("None", "")
] + [
    (
        "capebase.policy.evaluate",
        'raise NotEvaluable(f"cannot evaluate clause list with {expr.operator}")',
        "raise NotEvaluable(None)",
        "unreachable: SQLAlchemy builds a BooleanClauseList with and_ or or_ only",
    ),
    (
        "capebase.policy.evaluate",
        'raise NotEvaluable(f"cannot evaluate {expr.operator}")',
        "raise NotEvaluable(None)",
        "unreachable: SQLAlchemy builds an AsBoolean with is_true or is_false only",
    ),
]

EQUIVALENT += [
    (
        "capebase.policy.statements",
        before,
        before.replace("False)", after),
        "parent entities are Mappers or AliasedInsps, which both define is_aliased_class: "
        "getattr's default is never used",
    )
    for before in (
        'getattr(entity, "is_aliased_class", False) or entity.mapper is not target',
        'if getattr(entity, "is_aliased_class", False):',
        'if not getattr(entity, "is_aliased_class", False):',
    )
    for after in ("None)", ")", "True)")
] + [
    (
        "capebase.policy.statements",
        'uncovered = sorted({getattr(t, "name", str(t)) for t in refused})',
        f'uncovered = sorted({{getattr(t, "name", {default}) for t in refused}})',
        "the refused tables and aliases all have a name: getattr's default is never used",
    )
    for default in ("None", "", "str(None)")
] + [
    (
        "capebase.policy.statements",
        "return None if entity is None else sa_inspect(entity).mapper",
        "return None if (entity is None) and False else sa_inspect(entity).mapper",
        "_require_filterable runs on ORM statements only, and an ORM UPDATE or DELETE always "
        "has an entity",
    ),
    (
        "capebase.policy.statements",
        'predicate = and_(policy.sql_filter(model, "read", ctx), policy.sql_filter(model, '
        "action, ctx))",
        "predicate = and_(policy.sql_filter(model, action, ctx))",
        "the read criteria also reach the UPDATE/DELETE as loader criteria; change capture, "
        "which reads the WHERE alone, then reads (and locks) more rows but logs only those "
        "that changed or went",
    ),
    (
        "capebase.policy.statements",
        "return literal(value)",
        "return literal(None)",
        "unreachable: SQLAlchemy stores every .values() entry as a bind parameter or a clause",
    ),
    (
        "capebase.policy.statements",
        "return column if isinstance(column, str) else str(column.key)",
        "return column if (isinstance(column, str)) and False else str(column.key)",
        "unreachable: SQLAlchemy keys .values() entries (VALUES lists too) by column objects",
    ),
] + [
    (
        "capebase.policy.statements",
        before,
        after,
        "with no SET column in the predicate, the 'new image' is the action predicate again: "
        "AND-ing it twice selects the same rows",
    )
    for before, after in (
        ("substituted = False", "substituted = None"),
        ("substituted = False", "substituted = True"),
        (
            "return result if substituted else None",
            "return result if (substituted) or True else None",
        ),
    )
]

EQUIVALENT += [
    (
        "capebase.crud.direct_writes",
        before,
        after,
        "the key is compared with the primary key (`pk == bindparam`), which gives an untyped "
        "bind the column's type; DirectWriter runs only where UPDATE ... RETURNING exists, "
        "never on MySQL, whose exact_equals also renders the bare bind",
    )
    for before, after in [
        ("key = bindparam(KEY, type_=published.pk.type)", "key = bindparam(KEY, type_=None)"),
        ("key = bindparam(KEY, type_=published.pk.type)", "key = bindparam(KEY, )"),
        (
            ".where(equals(p.pk, bindparam(KEY, type_=p.pk.type)))",
            ".where(equals(p.pk, bindparam(KEY, type_=None)))",
        ),
        (
            ".where(equals(p.pk, bindparam(KEY, type_=p.pk.type)))",
            ".where(equals(p.pk, bindparam(KEY, )))",
        ),
    ]
] + [
    (
        "capebase.crud.direct_writes",
        before,
        after,
        "server_values(model, ctx, None) computes auth_fields(model) itself: the same markers",
    )
    for before, after in [
        ("self._auth_fields = auth_fields(published.model)", "self._auth_fields = None"),
        (
            "image.update(server_values(self.published.model, ctx, self._auth_fields))",
            "image.update(server_values(self.published.model, ctx, None))",
        ),
        (
            "image.update(server_values(self.published.model, ctx, self._auth_fields))",
            "image.update(server_values(self.published.model, ctx, ))",
        ),
    ]
] + [
    (
        "capebase.crud.direct_writes",
        'readable = False if old is None else self.cape.policy.check_row(p.model, "read", ctx, '
        "old)",
        'readable = True if old is None else self.cape.policy.check_row(p.model, "read", ctx, '
        "old)",
        "a missing row (old is None) raises NotFoundError on the next line whatever `readable` is",
    ),
    (
        "capebase.crud.direct_writes",
        "raise NotFoundError(p.name, key)",
        "raise NotFoundError(p.name, None)",
        "the writer's NotFoundError only reaches the HTTP handler, whose 404 says "
        "'{model} not found' without the key",
    ),
] + [
    (
        "capebase.crud.direct_writes",
        "return dict(zip(self.columns, row, strict=True))",
        f"return dict(zip(self.columns, row, {strict}))",
        "every row has exactly the table's columns (select(table), RETURNING *table.c): "
        "strict=True only guards against a future change",
    )
    for strict in ("strict=None", "", "strict=False")
] + [
    (
        "capebase.crud.direct_writes",
        "return cast(Callable[[], Any], field.default_factory)  # `supports` refused the others",
        "return cast(None, field.default_factory)  # `supports` refused the others",
        "typing.cast returns its second argument whatever the first",
    ),
    (
        "capebase.crud.direct_writes",
        "return lambda: copy.deepcopy(default)",
        "return lambda: copy.copy(default)",
        "the image's values are only bound and compared, never changed in place: a shallow "
        "copy of a mutable default is as safe as a deep one",
    ),
]

LINKED = ["src", "tests", "README.md", "LICENSE", "examples", "spec"]
"""What a group's directory sees of the project (mutmut copies src and tests into mutants/)."""


def present(tests: list[str]) -> list[str]:
    return [test for test in tests if (ROOT / test).exists()]


def prepare(group: str) -> Path:
    """The group's working directory, with its pyproject.toml written afresh."""
    modules, tests = GROUPS[group][0], present(GROUPS[group][1])
    directory = WORK / group
    directory.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = directory / name
        if (ROOT / name).exists() and not link.is_symlink():
            link.symlink_to(ROOT / name)
    settings = {
        "source_paths": ["src"],
        "only_mutate": modules,
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider"],
    }
    section = "\n[tool.mutmut]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in settings.items()
    )
    (directory / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + section)
    return directory


def changed_lines(diff: str) -> str:
    return "\n".join(
        f"    {line}" for line in diff.splitlines()
        if line[:1] in "-+" and not line.startswith(("---", "+++"))
    )


def equivalent(name: str, diff: str) -> str | None:
    """Why the survivor ``name`` (whose ``mutmut show`` is ``diff``) is equivalent, if listed."""
    removed = [line[1:].strip() for line in diff.splitlines()
               if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in diff.splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    for module, before, after, reason in EQUIVALENT:
        if name.startswith(module + ".") and removed == [before] and added == [after]:
            return reason
    return None


def run(group: str, jobs: int) -> Counter[str]:
    """Run mutmut on ``group``; print and write its report; return the counts by outcome."""
    directory = prepare(group)
    environment = {
        **os.environ,
        "CAPEBASE_TEST_DBS": "sqlite",
        "CI": "",
        "CAPEBASE_HYPOTHESIS_PROFILE": "mutate",  # tests/_hypothesis.py: no shrinking
    }
    mutmut = [sys.executable, "-m", "mutmut"]
    subprocess.run([*mutmut, "run", "--max-children", str(jobs)], cwd=directory,
                   env=environment, check=True)
    listing = subprocess.run([*mutmut, "results", "--all", "true"], cwd=directory,
                             env=environment, check=True, capture_output=True, text=True)
    outcomes: Counter[str] = Counter()
    survivors = []
    for line in listing.stdout.splitlines():
        name, _, outcome = line.strip().rpartition(": ")
        if not name:
            continue
        if outcome == "survived":
            shown = subprocess.run([*mutmut, "show", name], cwd=directory, env=environment,
                                   check=True, capture_output=True, text=True).stdout
            reason = equivalent(name, shown)
            if reason is not None:
                outcome = "equivalent"
                survivors.append(f"{name}: equivalent ({reason})")
            else:
                survivors.append(f"{name}: survived\n{changed_lines(shown)}")
        elif outcome != "killed":
            survivors.append(f"{name}: {outcome}")
        outcomes[outcome] += 1
    lines = [
        f"mutmut on {', '.join(GROUPS[group][0])}",
        f"tests: {' '.join(present(GROUPS[group][1]))} (SQLite)",
        "outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        *survivors,
    ]
    report = "\n".join(lines) + "\n"
    (directory / "report.txt").write_text(report)
    print(report)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("groups", nargs="*", choices=list(GROUPS), default=list(GROUPS))
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once (default 1)")
    arguments = parser.parse_args()
    totals: Counter[str] = Counter()
    for group in arguments.groups or GROUPS:
        totals += run(group, arguments.jobs)
    return 0 if set(totals) <= {"killed", "equivalent"} else 1


if __name__ == "__main__":
    sys.exit(main())
