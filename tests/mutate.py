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
diff. Survivors listed in ``EQUIVALENT`` (``tests/_mutants.py``, with the reason no test can
tell them apart) count as equivalent; a mutant whose tests hang (mutmut's "timeout") counts as
caught, as pytest-timeout fails such a test; it exits 1 if any other mutant survived.

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

from tests._mutants import EQUIVALENT

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

STREAM_TESTS = [
    "tests/realtime/test_subscriber_queue.py",
    "tests/realtime/test_visibility.py",
    "tests/realtime/test_visibility_sql.py",
    "tests/realtime/test_resume.py",
    "tests/realtime/test_backpressure.py",
]

SHAPES_TESTS = [
    "tests/security/test_statement_shapes.py",
    "tests/security/test_shape_details.py",
    "tests/security/test_guard_adaptation.py",
    "tests/security/test_link_tables.py",
    "tests/policy/test_refusal_messages.py",
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
    # the statement allow-list and the compile-time coverage check (issue 17), against the
    # shape tests (every legit shape answers as row-level security, every other is refused)
    # and the refusals' messages; one group each, as statements was split for time
    "shapes": (
        ["src/capebase/policy/shapes.py", "src/capebase/policy/shape_kinds.py"], SHAPES_TESTS
    ),
    "coverage": (["src/capebase/policy/coverage.py"], SHAPES_TESTS),
    "capture": (
        ["src/capebase/changes/capture.py"],
        [
            "tests/changes/test_capture.py",
            "tests/changes/test_capture_images.py",
            "tests/realtime/test_handlers.py",
            "tests/observability/test_audit.py",
        ],
    ),
    # who sees what of a change; the hub (dispatch, replay, revalidation) on its own: its
    # 600 lines made the group too slow to run whole on a shared 2-core machine (issue 17)
    "visibility": (
        [
            "src/capebase/filters/streams.py",
            "src/capebase/realtime/subscribers.py",
            "src/capebase/realtime/index.py",
            "src/capebase/realtime/visibility.py",
        ],
        STREAM_TESTS,
    ),
    # with the tests that reach its other half: holes, limits, revocation, views (issue 17)
    "hub": (
        ["src/capebase/realtime/hub.py", "src/capebase/realtime/dispatcher.py"],
        [
            *STREAM_TESTS,
            "tests/realtime/test_hub.py",
            "tests/realtime/test_lifecycle.py",
            "tests/realtime/test_eventstream.py",
            "tests/security/test_stream_tokens.py",
            "tests/security/test_stream_revocation.py",
        ],
    ),
    # the modules of the third and fourth statement-check reviews (issue 17): which terms can
    # fail and how they render, the SQL types write; test_fallible_terms pins the decisions
    # without a database (on SQLite most of the oracles' failing terms cannot fail)
    "fallible": (
        ["src/capebase/policy/fallible.py", "src/capebase/policy/fallible_marks.py",
         "src/capebase/policy/fallible_sql.py",
         "src/capebase/policy/sql_types.py"],
        [
            "tests/security/test_fallible_terms.py",
            "tests/security/test_error_oracles.py",
            "tests/security/test_error_oracles_costly.py",
            "tests/security/test_statement_shapes.py",
            "tests/security/test_type_args.py",
            "tests/security/test_guard_adaptation.py",
        ],
    ),
    "flush": (
        [
            "src/capebase/policy/flush_rows.py",
            "src/capebase/policy/cascades.py",
            "src/capebase/policy/referential.py",
        ],
        [
            "tests/security/test_relationship_writes.py",
            "tests/security/test_cascades.py",
            "tests/security/test_link_tables.py",
            "tests/security/test_referential_plans.py",
        ],
    ),
    # the SQL a model's mapping adds as a statement compiles (issue 16's third review)
    "mapper": (
        ["src/capebase/policy/mapper_sql.py"],
        ["tests/security/test_mapper_sql.py", "tests/security/test_type_args.py"],
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
        ["src/capebase/writes/direct.py"],
        [
            "tests/writes/test_direct_paths.py",
            "tests/writes/test_direct_writer.py",
            "tests/crud/test_routes.py",
            "tests/policy/test_matrix.py",
        ],
    ),
}

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
        # ``module`` may name a function too: "capebase.x.y.xǁClassǁmethod"
        within = name.startswith((module + ".", module + "__mutmut_"))
        if within and removed == [before] and added == [after]:
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
        elif outcome == "timeout":
            # The tests never ended (a walk that loops): pytest-timeout fails them in
            # `make test`, so the mutant is caught; listed, as it costs a timeout per run.
            survivors.append(f"{name}: timeout (caught: the tests hang)")
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
    return 0 if set(totals) <= {"killed", "timeout", "equivalent"} else 1


if __name__ == "__main__":
    sys.exit(main())
