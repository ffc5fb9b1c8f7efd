"""Every use of another package's private names, one module per package.

capebase relies on a few internals where the public API is slower or missing. Each is wrapped
here with a comment naming what it relies on, and ``REQUIRED`` lists the names each module
needs: ``tests/compat`` checks them against the installed release, so an upgrade that removes
one fails with a message naming it instead of an AttributeError at request time. pyproject.toml
bounds each of these packages below its next minor (or major) release.
"""

from __future__ import annotations

from collections.abc import Iterable


class IncompatibleReleaseError(RuntimeError):
    """An installed package lacks a private name capebase relies on."""


def missing_names(package: str, version: str, required: Iterable[tuple[object, str]]) -> list[str]:
    """The ``(owner, name)`` pairs of ``required`` that the installed release lacks, named."""
    return [
        f"{package} {version}: {getattr(owner, '__qualname__', owner)}.{name}"
        for owner, name in required
        if not hasattr(owner, name)
    ]
