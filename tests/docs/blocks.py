"""The fenced code blocks of README.md and docs/**/*.md, and the files each page builds.

A block's first line says what it is:

- ``# fragment…`` (``// fragment…``): shown, compiled or parsed only; it needs a server or
  names from around it.
- ``# app.py``, ``# test_app.py``, ``# docker-compose.yml``, ``<!-- static/index.html -->``…:
  a file of the page's project, written in page order (a later block of the same name
  replaces it, as a tutorial's steps do). A ``test_*.py`` file runs with the page's files as
  they are at that point (under pytest if it defines tests); any other ``.py`` file must
  import.
- ``# continues app.py…``: runs after that file's source, the page's own or else the
  README's (the quick start).
- ``--8<-- "path"``: the file at ``path`` (from the repository's root) shown whole; it
  must exist, and the page's own test checks it.
- anything else: a python block runs alone in an empty folder; json, yaml, toml and ini
  blocks parse; a javascript block passes ``node --check``.

Shell, text, http and nginx blocks are commands and output; the tests of the guides that
depend on them (migrations, deployment, CORS) run them (``shell_commands``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)^(?P=indent)```",
                    re.S | re.M)
_FILE_LABEL = re.compile(r"^(?:#|//|<!--)\s*(?P<name>[\w./-]+\.\w+)\b")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language and its text."""

    page: Path
    line: int
    lang: str
    code: str

    @property
    def first(self) -> str:
        return (self.code.splitlines() or [""])[0].strip()

    @property
    def is_fragment(self) -> bool:
        return re.match(r"^(#|//|<!--)\s*fragment\b", self.first) is not None

    @property
    def included(self) -> Path | None:
        """The repository file a ``--8<-- "path"`` block shows, if it is one."""
        match = re.match(r'^--8<--\s+"([^"]+)"$', self.first)
        return ROOT / match.group(1) if match else None

    @property
    def continues(self) -> str | None:
        """The file this block continues (``# continues app.py …``), if it does."""
        match = re.match(r"^#\s*continues\s+([\w./-]+)", self.first)
        return match.group(1) if match else None

    @property
    def file_name(self) -> str | None:
        """The project file this block is (``# app.py``), if it is one."""
        if self.is_fragment or self.continues:
            return None
        match = _FILE_LABEL.match(self.first)
        return match.group("name") if match else None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page of the site."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        indent = len(match.group("indent"))
        code = "".join(line[indent:] + "\n" for line in match.group("code").splitlines())
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(page, line, match.group("lang").lower(), code))
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks(page)]


def page_files(page: Path, upto: Block | None = None) -> dict[str, str]:
    """The files a page's blocks write, as they are after ``upto`` (default: the last block)."""
    files: dict[str, str] = {}
    for block in blocks(page):
        if block.file_name:
            files[block.file_name] = block.code
        if block == upto:
            break
    return files


def find_block(page: Path, contains: str, lang: str | None = None) -> Block:
    """The one block of ``page`` whose text contains ``contains`` (tests pin the block they run)."""
    matches = [b for b in blocks(page) if contains in b.code and lang in (None, b.lang)]
    assert len(matches) == 1, f"{page}: {len(matches)} blocks contain {contains!r}"
    return matches[0]


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block, continuation lines joined. With ``$ `` prompts, only
    the prompted commands (the other lines are their output); comments are dropped."""
    prompted = any(line.startswith("$ ") for line in block.code.splitlines())
    commands: list[str] = []
    pending: str | None = None
    for raw in block.code.splitlines():
        if pending is None:
            if prompted and not raw.startswith("$ "):
                continue
            raw = raw[2:] if prompted else raw
        line = re.sub(r"\s+#\s.*$", "", raw).rstrip()
        if pending is None and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending = (pending or "") + line[:-1].strip() + " "
            continue
        commands.append(((pending or "") + line.strip()).strip())
        pending = None
    return commands
