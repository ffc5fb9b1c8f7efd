"""Optional parts of capebase and the extras that install them.

The core install (``pip install capebase``) serves REST, the policy and the streams. Metrics and
the built-in auth need packages of their own; they are imported only when used, and a missing
one is reported with the command that installs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXTRAS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "metrics": ("Prometheus metrics", (("prometheus_client", "prometheus-client"),)),
    "auth": (
        "the built-in auth",
        (("jwt", "PyJWT"), ("pwdlib", "pwdlib[argon2]"), ("multipart", "python-multipart")),
    ),
}


class MissingExtraError(ImportError):
    """An optional part of capebase was used without the packages it needs."""


def require_extra(extra: str) -> None:
    """Import every package of ``extra``, or raise ``MissingExtraError`` naming the install."""
    feature, modules = EXTRAS[extra]
    missing = [package for module, package in modules if not _importable(module)]
    if missing:
        raise MissingExtraError(
            f"{feature} needs {', '.join(missing)}: pip install 'capebase[{extra}]'"
        )


def _importable(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
