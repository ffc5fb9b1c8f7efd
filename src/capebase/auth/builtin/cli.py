"""``python -m capebase.auth.builtin create-admin``: create the first admin."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence

from pwdlib import PasswordHash

from ...db.engine import create_engine
from .errors import AccountExistsError
from .models import User
from .passwords import Passwords
from .schemas import MAX_PASSWORD_LENGTH, normalize_email, normalize_username
from .store import UserStore

PASSWORD_VARIABLE = "CAPEBASE_ADMIN_PASSWORD"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m capebase.auth.builtin")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser(
        "create-admin",
        help="create an admin user (tables are created if missing)",
        description=f"The password is read from ${PASSWORD_VARIABLE}, or asked for.",
    )
    create.add_argument("--db", required=True, help="database URL, e.g. sqlite:///app.db")
    create.add_argument("--email", required=True)
    create.add_argument("--username")
    create.add_argument("--role", default="admin")
    create.add_argument("--min-length", type=int, default=8, help="shortest password accepted")
    args = parser.parse_args(argv)
    try:
        email = normalize_email(args.email)
        username = None if args.username is None else normalize_username(args.username)
    except ValueError as exc:
        parser.error(str(exc))
    password = os.environ.get(PASSWORD_VARIABLE) or _ask_password()
    if not args.min_length <= len(password) <= MAX_PASSWORD_LENGTH:
        parser.error(f"the password must have at least {args.min_length} characters")
    try:
        asyncio.run(_create(args.db, email, username, password, args.role))
    except AccountExistsError:
        print(f"error: an account with email {email} or that username exists", file=sys.stderr)
        return 1
    print(f"created {args.role} {email}")
    return 0


def _ask_password() -> str:
    if not sys.stdin.isatty():
        sys.exit(f"error: set ${PASSWORD_VARIABLE} or run interactively to type the password")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat: "):
        sys.exit("error: the passwords differ")
    return password


async def _create(db: str, email: str, username: str | None, password: str, role: str) -> None:
    engine = create_engine(db)
    try:
        store = UserStore(engine)
        await store.create_tables()
        hashed = await Passwords(PasswordHash.recommended()).hash(password)
        await store.add_user(User(email=email, username=username, password_hash=hashed, role=role))
    finally:
        await engine.dispose()
