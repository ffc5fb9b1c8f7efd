"""Every code block of README.md and the documentation site runs or parses as written.

The rules a block's first line follows are in ``tests/docs/blocks.py``.
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .blocks import README, Block, all_blocks, blocks, page_files

BLOCKS = all_blocks()
CHECKED = {"python", "json", "yaml", "toml", "ini", "javascript"}
# ts: the client page's example, compiled and run by clients/typescript's `npm test`
SHOWN = {"shell", "bash", "text", "http", "nginx", "html", "dockerfile", "console", "ts"}


def run(workdir: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, *args], cwd=workdir, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"


def write_files(workdir: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_every_block_has_a_known_language() -> None:
    unknown = [f"{b.id} ({b.lang or 'none'})" for b in BLOCKS if b.lang not in CHECKED | SHOWN]
    assert not unknown, f"blocks without a language this suite knows: {unknown}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.included], ids=lambda b: b.id)
def test_included_file_exists(block: Block) -> None:
    assert block.included is not None and block.included.is_file(), block.first
    assert block.code.strip() == block.first, "an included block holds nothing else"
    if block.lang == "python":
        compile(block.included.read_text(encoding="utf-8"), str(block.included), "exec")


PYTHON = [b for b in BLOCKS if b.lang == "python" and not b.included]
DATA = [b for b in BLOCKS if b.lang in CHECKED - {"python"} and not b.included]


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.id)
def test_python_block(block: Block, tmp_path: Path) -> None:
    if block.is_fragment:
        compile(block.code, block.id, "exec")
        return
    if block.continues:
        own = page_files(block.page, upto=block)
        base = own.get(block.continues) or page_files(README).get(block.continues)
        assert base is not None, f"{block.id}: no {block.continues} to continue"
        write_files(tmp_path, {**own, "block.py": base + "\n\n" + block.code})
        run(tmp_path, "block.py")
        return
    name = block.file_name
    if name is None:
        (tmp_path / "block.py").write_text(block.code, encoding="utf-8")
        run(tmp_path, "block.py")
        return
    compile(block.code, block.id, "exec")
    if block.page == README:
        return  # the quick start's files run in tests/test_readme.py
    write_files(tmp_path, page_files(block.page, upto=block))
    if Path(name).name.startswith("test_") and "\ndef test_" in block.code.replace(
            "async def test_", "def test_"):
        run(tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", name)
    elif Path(name).name.startswith("test_"):
        run(tmp_path, name)
    else:
        run(tmp_path, "-c", f"import {name.removesuffix('.py').replace('/', '.')}")


@pytest.mark.parametrize("block", DATA, ids=lambda b: b.id)
def test_data_block(block: Block, tmp_path: Path) -> None:
    if block.lang == "json":
        json.loads(block.code)
    elif block.lang == "yaml":
        list(yaml.safe_load_all(block.code))
    elif block.lang == "toml":
        tomllib.loads(block.code)
    elif block.lang == "ini":
        configparser.ConfigParser(interpolation=None).read_string(block.code)
    elif block.lang == "javascript":
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed")
        script = tmp_path / "block.mjs"  # a module: top-level await is allowed
        script.write_text(block.code, encoding="utf-8")
        result = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_each_page_has_blocks_parsed() -> None:
    """The fence pattern finds the blocks (a page that lost all of its blocks is a parse bug)."""
    assert len(blocks(README)) >= 3
