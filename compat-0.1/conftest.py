"""Runs next to capebase 0.1.0a3's own test files (``make compat``): they must import this
checkout's capebase, never the 0.1 package their sdist ships."""

from __future__ import annotations

from pathlib import Path

import capebase

CHECKOUT = Path(__file__).resolve().parents[2]
"""The repository root: ``make compat`` copies this file into ``.cache/compat-run/``."""


def pytest_report_header() -> str:
    return f"capebase under test: {capebase.__file__}"


def pytest_configure() -> None:
    imported = Path(capebase.__file__).resolve()
    if not imported.is_relative_to(CHECKOUT / "src"):
        raise RuntimeError(f"compat tests must run against {CHECKOUT / 'src'}, not {imported}")
