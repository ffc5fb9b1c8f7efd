"""``capebase alembic init``: alembic.ini and a migrations folder set up for a capebase app."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from ..extras import MissingExtraError

DEFAULT_APP = "app:cape"
TEMPLATES = Path(__file__).with_name("templates")


class AlembicInitError(Exception):
    """The set-up cannot be written; the message says why and what to do."""


def init_alembic(directory: str = "migrations", *, app: str = DEFAULT_APP,
                 check: bool = True, root: Path | None = None) -> list[Path]:
    """Write ``alembic.ini`` and ``directory/`` (``env.py``, ``script.py.mako``, ``versions/``).

    Args:
        directory: the migrations folder, relative to ``root``.
        app: where the app's ``CapeBase`` is, as ``module:name``.
        check: import ``module`` (from ``root``) first and check that ``name`` is a CapeBase.
        root: the project folder; the current one by default.

    Returns:
        The files written.

    Raises:
        MissingExtraError: Alembic is not installed.
        AlembicInitError: ``app`` is malformed or names no CapeBase, or a file to write exists.
    """
    if importlib.util.find_spec("alembic") is None:
        raise MissingExtraError("migrations need Alembic: pip install 'capebase[alembic]'")
    root = Path.cwd() if root is None else root
    module, name = _parse_app(app)
    if check:
        _check_app(root, module, name)
    folder = root / directory
    ini = root / "alembic.ini"
    for path in (ini, folder):
        if path.exists():
            raise AlembicInitError(f"{path} exists; remove it or pick another folder")
    (folder / "versions").mkdir(parents=True)
    written = {
        ini: _render("alembic.ini", script_location=Path(directory).as_posix()),
        folder / "env.py": _render("env.py", module=module, name=name),
        folder / "script.py.mako": _render("script.py.mako"),
    }
    for path, text in written.items():
        path.write_text(text, encoding="utf-8")
    return list(written)


def _parse_app(app: str) -> tuple[str, str]:
    module, _, name = app.partition(":")
    if not (name.isidentifier() and all(part.isidentifier() for part in module.split("."))):
        raise AlembicInitError(
            f"--app {app!r}: expected module:name, e.g. app:cape (the CapeBase named cape "
            "in app.py)"
        )
    return module, name


def _check_app(root: Path, module: str, name: str) -> None:
    from .. import CapeBase

    sys.path.insert(0, str(root))
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise AlembicInitError(
            f"cannot import {module!r} ({exc}); run this in the folder that holds your app, "
            "or pass --app module:name"
        ) from exc
    finally:
        sys.path.remove(str(root))
    found = getattr(loaded, name, None)
    if not isinstance(found, CapeBase):
        raise AlembicInitError(
            f"{module}.{name} is {type(found).__name__}, not a CapeBase; "
            "pass --app module:name naming your CapeBase"
        )


def _render(template: str, **values: str) -> str:
    text = (TEMPLATES / f"{template}.template").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"{{{{{key}}}}}", value)
    return text
