"""``python -m capebase.auth.builtin create-admin``: the first admin, from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from capebase.auth.builtin.cli import PASSWORD_VARIABLE, main
from tests.auth._support import claims_of, login, running

ADMIN_PASSWORD = "an admin password"


def _create_admin(
    db_url: str, *args: str, password: str = ADMIN_PASSWORD
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capebase.auth.builtin", "create-admin", "--db", db_url, *args],
        env={**os.environ, PASSWORD_VARIABLE: password},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


async def test_create_admin_then_sign_in(db_url: str) -> None:
    done = _create_admin(db_url, "--email", "Root@Example.com", "--username", "root")
    assert done.returncode == 0, done.stderr
    assert "created admin root@example.com" in done.stdout
    again = _create_admin(db_url, "--email", "root@example.com")
    assert again.returncode == 1
    assert "exists" in again.stderr

    async with running(db_url) as (_built, client):
        response = await login(client, "root", ADMIN_PASSWORD)
        assert response.status_code == 200, response.text
        assert claims_of(response.json()["access_token"])["role"] == "admin"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "not-an-email"], "not a valid email"),
        (["--email", "a@example.com", "--username", "x"], "3-64 characters"),
        (["--email", "a@example.com", "--min-length", "30"], "at least 30 characters"),
    ],
)
def test_create_admin_refuses_bad_input(
    args: list[str],
    message: str,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(PASSWORD_VARIABLE, ADMIN_PASSWORD)
    with pytest.raises(SystemExit) as exit_:
        main(["create-admin", "--db", sqlite_url, *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_create_admin_without_a_password_source_says_what_to_do(sqlite_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_VARIABLE}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "capebase.auth.builtin",
            "create-admin",
            "--db",
            sqlite_url,
            "--email",
            "a@example.com",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert PASSWORD_VARIABLE in done.stderr
