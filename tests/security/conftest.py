"""Every security test starts from cold policy caches (issue 17).

The checks of types (``policy.sql_types``), of mappings (``policy.mapper_sql``) and the
foreign keys of a table (``policy.referential``) are worked out once and cached in the module.
mutmut runs each mutant in a process forked from the one that ran the tests on the code as it
is, so those caches hold the right answers already and a mutant of the check was never run:
every mutant of ``mapper_sql._problem`` survived its first run. Cleared before each test, a
check runs (as it does in a fresh process) in every test that needs it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from capebase.policy import mapper_sql, referential, sql_types


@pytest.fixture(autouse=True)
def _cold_policy_caches() -> Iterator[None]:
    mapper_sql._CHECKED.clear()
    sql_types._CHECKED.clear()
    referential._referrers.cache_clear()
    referential._model_of.cache_clear()
    yield
