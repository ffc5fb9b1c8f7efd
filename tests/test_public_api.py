"""The public surface: ``capebase.__all__`` and the import paths the seed and 0.1 alphas used."""

from __future__ import annotations

import importlib

import pytest

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
    "PreconditionFailedError",
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


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("capebase.main", ["AuthContext", "CapeBase", "PermissionDeniedError"]),
        ("capebase.model", ["FROM_AUTH_ID", "FROM_AUTH_ROLE", "AuthContext", "ModelChange",
                            "from_context"]),
        ("capebase.models", ["FROM_AUTH_ID", "FROM_AUTH_ROLE", "AuthContext", "ModelChange",
                             "from_context"]),
    ],
)
def test_seed_and_alpha_import_paths_work_and_warn(module: str, names: list[str]) -> None:
    """The seed's and 0.1's ``capebase.main``, ``capebase.model`` and ``capebase.models`` still
    give the same objects, each with a DeprecationWarning naming the import to write instead."""
    shim = importlib.import_module(module)
    assert shim.__all__ == names
    for name in names:
        with pytest.warns(DeprecationWarning) as warned:
            namespace: dict[str, object] = {}
            exec(f"from {module} import {name}", namespace)
        assert namespace[name] is getattr(capebase, name)
        [warning] = warned
        assert str(warning.message) == (
            f"{module} is deprecated: write `from capebase import {name}` "
            f"instead of `from {module} import {name}`"
        )
        assert warning.filename == "<string>"  # the importing line, not capebase's
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        shim.nothing  # noqa: B018


def test_capebase_auth_import_path() -> None:
    auth = importlib.import_module("capebase.auth")
    assert auth.AuthContext is capebase.AuthContext
    assert auth.FROM_AUTH_ID is capebase.FROM_AUTH_ID
    assert auth.FROM_AUTH_ROLE is capebase.FROM_AUTH_ROLE
    assert auth.from_context is capebase.from_context


def test_errors_share_one_base() -> None:
    for name in EXPECTED:
        obj = getattr(capebase, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, capebase.CapeBaseError), name
