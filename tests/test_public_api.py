"""The public surface: ``capebase.__all__`` and the import paths the seed and 0.1 alphas used."""

from __future__ import annotations

import importlib

import capebase

EXPECTED = [
    "FROM_AUTH_ID",
    "FROM_AUTH_ROLE",
    "AuditConfig",
    "AuthContext",
    "CapeBase",
    "CapeBaseError",
    "ConfigurationError",
    "CrudConfig",
    "DatabaseUnavailableError",
    "Explanation",
    "LimitsConfig",
    "MetricsConfig",
    "ModelChange",
    "NotFoundError",
    "NotStartedError",
    "PasswordAuth",
    "PermissionDeniedError",
    "QueryError",
    "RealtimeConfig",
    "UnfilterableStatementError",
    "from_context",
    "metadata",
    "secret_field",
]


def isort_style(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    if name.isupper():
        return 0, name
    return (1 if name[0].isupper() else 2), name


def test_all_is_sorted_and_complete() -> None:
    assert capebase.__all__ == sorted(capebase.__all__, key=isort_style)
    assert capebase.__all__ == EXPECTED


def test_every_exported_name_exists() -> None:
    namespace: dict[str, object] = {}
    exec("from capebase import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(EXPECTED)


def test_seed_and_alpha_import_paths() -> None:
    auth = importlib.import_module("capebase.auth")
    model = importlib.import_module("capebase.model")
    models = importlib.import_module("capebase.models")
    main = importlib.import_module("capebase.main")

    for module in (auth, model, models, main):
        assert module.AuthContext is capebase.AuthContext
    for module in (auth, model, models):
        assert module.FROM_AUTH_ID is capebase.FROM_AUTH_ID
        assert module.FROM_AUTH_ROLE is capebase.FROM_AUTH_ROLE
        assert module.from_context is capebase.from_context
    for module in (model, models):
        assert module.ModelChange is capebase.ModelChange
    assert main.CapeBase is capebase.CapeBase
    assert main.PermissionDeniedError is capebase.PermissionDeniedError
    for module in (model, models, main):
        assert all(hasattr(module, name) for name in module.__all__)


def test_errors_share_one_base() -> None:
    for name in EXPECTED:
        obj = getattr(capebase, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, capebase.CapeBaseError), name
