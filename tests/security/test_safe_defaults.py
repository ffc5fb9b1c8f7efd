"""Safe defaults: a configuration that exposes or hides data by accident says so at start-up.

OWASP API Security Top 10 (2023): API8 Security Misconfiguration. Issue 16, item 10:

- a published model with no permission rule silently answered ``200 []``: now a warning,
  logged once, names the model;
- metrics served without a guard: a warning, logged once;
- the built-in auth started with a placeholder secret or admin password: now it refuses to
  start outside development mode (``PasswordAuth(dev=True)`` or ``CAPEBASE_DEV=1``). The README
  example runs as written (tests/test_readme.py) and the demo starts without either.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import secrets
import string
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from capebase import CapeBase, ConfigurationError, MetricsConfig, PasswordAuth, RealtimeConfig
from capebase.placeholders import DEV_VARIABLE, placeholder_reason
from capebase.testing import app_client
from tests.auth._support import FAST_HASH, SECRET

ROOT = Path(__file__).resolve().parents[2]


class SafetyModel(SQLModel, registry=registry()):
    """Tables of these tests, in a registry of their own."""

    __test__ = False


class Widget(SafetyModel, table=True):
    __tablename__ = "safety_widget"

    id: int | None = Field(default=None, primary_key=True)
    name: str


class Gadget(SafetyModel, table=True):
    __tablename__ = "safety_gadget"

    id: int | None = Field(default=None, primary_key=True)
    name: str


def _guard(request: Request) -> None:
    if request.headers.get("x-scraper") != "yes":
        raise HTTPException(401)


RULES = ["none", "after publish", "another model only"]
METRICS = ["off", "unguarded", "guarded"]


@pytest.mark.parametrize(("rules", "metrics"), list(itertools.product(RULES, METRICS)))
async def test_start_up_warns_once_about_rule_less_models_and_open_metrics(
    sqlite_url: str, rules: str, metrics: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings: dict[str, Any] = {
        "off": {},
        "unguarded": {"metrics": True},
        "guarded": {"metrics": MetricsConfig(guard=_guard)},
    }[metrics]
    app = FastAPI()
    cape = CapeBase(app, sqlite_url, **settings)
    cape.publish(Widget)
    cape.publish(Gadget)
    cape.permission_required(Gadget, role="*", actions=["read"])
    if rules == "after publish":
        cape.permission_required(Widget, role="admin", actions=["read"])
    elif rules == "another model only":
        cape.permission_required(Gadget, role="admin", actions=["*"])

    with caplog.at_level(logging.WARNING, logger="capebase"):
        for _start in range(2):  # the same app started twice: still one warning each
            async with app_client(app) as client:
                assert (await client.get("/safety_widget")).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    expected = []
    if rules != "after publish":
        expected.append("Widget is published but has no permission rule")
    if metrics == "unguarded":
        expected.append("the metrics at /metrics are served to anyone")
    assert len(warnings) == len(expected), warnings
    for text, warning in zip(expected, warnings, strict=True):
        assert text in warning
    assert not any("Gadget" in w for w in warnings)


PLACEHOLDER_SECRETS = [
    "x" * 64,
    "change-me-please-change-me-please-0123",
    "my-super-secret-signing-key-for-production",
    "0123456789" * 4,
    "Kp9-Kp9-" * 6,
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP",
    "replace_me_with_a_real_key_of_48_characters_now",
]
PLACEHOLDER_PASSWORDS = ["change-me-please", "password123", "aaaaaaaaaaaa", "qwerty-qwerty"]


def _auth(**settings: Any) -> tuple[FastAPI, PasswordAuth]:
    settings.setdefault("secret", SECRET)
    app = FastAPI()
    auth = PasswordAuth(password_hash=FAST_HASH, **settings)
    return app, auth


@pytest.mark.parametrize(
    "settings",
    [{"secret": s} for s in PLACEHOLDER_SECRETS]
    + [{"previous_secrets": [PLACEHOLDER_SECRETS[1]]}]
    + [{"initial_admin": ("admin@example.com", p)} for p in PLACEHOLDER_PASSWORDS],
    ids=lambda settings: next(iter(settings)),
)
async def test_placeholders_stop_the_built_in_auth_outside_development(
    sqlite_url: str,
    settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv(DEV_VARIABLE, raising=False)
    app, auth = _auth(**settings)
    CapeBase(app, sqlite_url, auth=auth)
    with pytest.raises(ConfigurationError) as refused:
        async with app_client(app):
            pass
    message = str(refused.value)
    name = next(iter(settings)).replace("initial_admin", "initial_admin password")
    assert f"PasswordAuth {name} looks like a placeholder" in message
    assert "dev=True" in message and f"{DEV_VARIABLE}=1" in message
    for value in [*PLACEHOLDER_SECRETS, *PLACEHOLDER_PASSWORDS]:
        assert value not in message  # never echoed into logs

    # Development mode, either way, starts and says so.
    for flag in ("dev", "environment"):
        app, auth = _auth(**settings, dev=flag == "dev")
        if flag == "environment":
            monkeypatch.setenv(DEV_VARIABLE, "1")
        CapeBase(app, sqlite_url, auth=auth)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="capebase"):
            async with app_client(app) as client:
                assert (await client.get("/auth/me")).status_code == 401
        assert "development mode: PasswordAuth starts with a placeholder" in caplog.text


async def test_random_secrets_start_without_development_mode(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DEV_VARIABLE, raising=False)
    app, auth = _auth(
        secret=secrets.token_urlsafe(64),
        previous_secrets=[secrets.token_hex(32)],
        initial_admin=("admin@example.com", "correct horse battery staple"),
    )
    CapeBase(app, sqlite_url, auth=auth)
    async with app_client(app) as client:
        signed_in = await client.post(
            "/auth/token",
            data={"username": "admin@example.com", "password": "correct horse battery staple"},
        )
        assert signed_in.status_code == 200


def test_generated_keys_are_not_placeholders() -> None:
    """Keys shaped like those the error message suggests (``token_urlsafe``, ``token_hex``)
    are not refused: 20,000 of each from a seeded generator, so the run is repeatable (a real
    key is refused with odds below one in a million, which a random run would hit now and
    then)."""
    draw = random.Random(16)
    alphabets = {
        "token_urlsafe(64)": (string.ascii_letters + string.digits + "-_", 86),
        "token_urlsafe(32)": (string.ascii_letters + string.digits + "-_", 43),
        "token_hex(32)": (string.hexdigits.lower()[:16], 64),
    }
    for name, (alphabet, length) in alphabets.items():
        keys = ["".join(draw.choices(alphabet, k=length)) for _ in range(20_000)]
        assert [k for k in keys if placeholder_reason(k)] == [], name


def test_the_demo_starts_without_a_secret_or_development_mode(tmp_path: Path) -> None:
    """``make demo`` as written: no CAPEBASE_SECRET (one is generated), no CAPEBASE_DEV."""
    script = textwrap.dedent(
        """
        import asyncio

        from capebase.testing import app_client
        from examples.todo.app import app

        async def main() -> None:
            async with app_client(app) as client:
                response = await client.post(
                    "/auth/token", data={"username": "alice", "password": "alice-password"}
                )
                assert response.status_code == 200, response.text

        asyncio.run(main())
        """
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("CAPEBASE_SECRET", DEV_VARIABLE)
    }
    env["TODO_DEMO_DB"] = str(tmp_path / "demo.db")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", PLACEHOLDER_SECRETS)
async def test_a_placeholder_resume_token_secret_stops_the_app_outside_development(
    sqlite_url: str,
    secret: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whoever knows the resume-token key can sign tokens: a placeholder one is refused, with
    or without the built-in auth, unless in development mode."""
    monkeypatch.delenv(DEV_VARIABLE, raising=False)
    app = FastAPI()
    CapeBase(app, sqlite_url, realtime=RealtimeConfig(resume_token_secret=secret))
    with pytest.raises(ConfigurationError, match="resume_token_secret looks like a placeholder"):
        async with app_client(app):
            pass
    monkeypatch.setenv(DEV_VARIABLE, "1")
    app = FastAPI()
    CapeBase(app, sqlite_url, realtime=RealtimeConfig(resume_token_secret=secret))
    with caplog.at_level(logging.WARNING, logger="capebase"):
        async with app_client(app):
            pass
    assert "resume_token_secret is a placeholder" in caplog.text
    monkeypatch.delenv(DEV_VARIABLE)
    app = FastAPI()
    CapeBase(app, sqlite_url, realtime=RealtimeConfig(resume_token_secret=secrets.token_hex(32)))
    async with app_client(app):
        pass
