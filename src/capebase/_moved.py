"""The deprecated import paths of the seed and 0.1 alphas: each name now comes from ``capebase``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any


def moved_name(module: str, name: str, names: Sequence[str]) -> Any:
    """``capebase.<name>``, asked for as ``<module>.<name>``, with a DeprecationWarning naming
    the import to write instead (a module's ``__getattr__`` returns this).

    Raises:
        AttributeError: ``name`` is not one of the module's ``names``.
    """
    if name not in names:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(
        f"{module} is deprecated: write `from capebase import {name}` "
        f"instead of `from {module} import {name}`",
        DeprecationWarning,
        stacklevel=3,  # the importing line, past __getattr__
    )
    import capebase

    return getattr(capebase, name)
