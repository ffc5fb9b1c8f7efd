"""The precondition a conditional update or delete hands its writer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Precondition = Callable[[Mapping[str, Any]], None]
"""Called with the row an update or delete is about to change, locked for the write and
after the caller's read and write rules allowed it; raises (``PreconditionFailedError``) to
refuse the write. Checked on the locked row, it holds until the write commits: of two writers
with the same condition, the second sees the first one's row."""
