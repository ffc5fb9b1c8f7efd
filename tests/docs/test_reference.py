"""The reference pages cover what capebase has: every public name, every setting with its
default, every metric; README.md stays a front page whose links lead into the site."""

from __future__ import annotations

import dataclasses
import inspect
import re
from datetime import timedelta
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

import capebase
from capebase import AuditConfig, CapeBase, CrudConfig, LimitsConfig, MetricsConfig, RealtimeConfig
from capebase.auth import PasswordAuthConfig
from capebase.observability.metrics import Metrics

from .blocks import DOCS, README, ROOT

API = (DOCS / "reference" / "api.md").read_text()
SETTINGS = (DOCS / "reference" / "settings.md").read_text()
METRICS = (DOCS / "reference" / "metrics.md").read_text()
README_LIMIT = 12 * 1024
# Exported names documented under another import path.
ELSEWHERE = {"PasswordAuth": "capebase.auth.builtin.PasswordAuth"}


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = set(re.findall(r"^::: (\S+)$", API, flags=re.M))
    missing = [name for name in capebase.__all__
               if ELSEWHERE.get(name, f"capebase.{name}") not in documented]
    assert not missing, f"docs/reference/api.md lacks ::: entries for {missing}"


def _section(title: str) -> str:
    match = re.search(rf"^## `{title}`\n(.*?)(?=^## |\Z)", SETTINGS, flags=re.S | re.M)
    assert match, f"docs/reference/settings.md has no section ## `{title}`"
    return match.group(1)


def _shown(value: Any) -> list[str]:
    """How a default may be written in the settings tables."""
    if dataclasses.is_dataclass(value) or value is dataclasses.MISSING:
        return ["(required)"]
    if isinstance(value, timedelta):
        days, minutes = value.days, value.seconds // 60
        return [f"{days} days"] if days else [f"{minutes} minutes"]
    if isinstance(value, str):
        return [f'`"{value}"`']
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1024:
        return [str(value), f"{value:,}"]
    return [str(value), f"`{value!r}`"]


@pytest.mark.parametrize("config", [CrudConfig, LimitsConfig, RealtimeConfig, MetricsConfig,
                                    AuditConfig, PasswordAuthConfig], ids=lambda c: c.__name__)
def test_every_setting_is_listed_with_its_default(config: type[Any]) -> None:
    section = _section(config.__name__)
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]+) \|", section,
                                                          flags=re.M)}
    for field in dataclasses.fields(config):
        assert field.name in rows, f"{config.__name__}.{field.name} is not in settings.md"
        if field.default is not dataclasses.MISSING:
            default: Any = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        cell = rows[field.name].strip()
        assert any(cell.startswith(form) for form in _shown(default)), (
            f"{config.__name__}.{field.name}: settings.md says {cell!r}, the default is "
            f"{default!r}")
    extra = set(rows) - {f.name for f in dataclasses.fields(config)}
    assert not extra, f"settings.md lists {extra} under {config.__name__}, which has no such field"


def test_every_capebase_argument_is_shown_with_its_default() -> None:
    block = re.search(r"cape = CapeBase\(\n(.*?)^\)", _section("CapeBase"), flags=re.S | re.M)
    assert block, "the CapeBase section has no `cape = CapeBase(...)` block"
    shown = dict(re.findall(r"^\s+(\w+)=([^,]+),", block.group(1), flags=re.M))
    for name, parameter in inspect.signature(CapeBase.__init__).parameters.items():
        if name in {"self", "app", "auth_provider", "db_path"}:
            continue  # app is the example's; the others are aliases (db_path deprecated)
        assert name in shown, f"CapeBase({name}=...) is not in settings.md"
        assert shown[name] == repr(parameter.default).replace("'", '"'), (name, shown[name])


def test_every_metric_is_in_the_metrics_reference() -> None:
    rows = {m.group(1): (m.group(2), set(re.findall(r"`(\w+)`", m.group(3)))) for m in
            re.finditer(r"^\| `(capebase_\w+)` \| (\w+) \|([^|]*)\|", METRICS, flags=re.M)}
    found = set()
    for collector in vars(Metrics(CollectorRegistry())).values():
        if not hasattr(collector, "describe"):
            continue
        (described,) = collector.describe()
        name = described.name + ("_total" if described.type == "counter" else "")
        found.add(name)
        assert name in rows, f"{name} is not in docs/reference/metrics.md"
        kind, labels = rows[name]
        assert kind == described.type, (name, kind, described.type)
        if labels:  # raises ValueError unless these are exactly the series' labels
            collector.labels(**dict.fromkeys(labels, "x"))
        else:
            with pytest.raises(ValueError, match="No label names"):
                collector.labels()
    pool = {"capebase_db_pool_size", "capebase_db_pool_checked_out", "capebase_db_pool_overflow"}
    assert set(rows) - found == pool  # read from the engine's pool when scraped


def test_nav_lists_every_page() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))

    def pages(items: list[Any]) -> list[str]:
        found: list[str] = []
        for item in items:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            found += pages(value) if isinstance(value, list) else [value]
        return found

    listed = set(pages(config["nav"]))
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert listed == on_disk


def test_readme_is_a_front_page_whose_links_resolve() -> None:
    text = README.read_text()
    assert len(text.encode()) < README_LIMIT, f"README.md is {len(text.encode())} bytes"
    for heading in ("## Installation", "## Quick start", "## Demo", "## Development"):
        assert heading in text
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README.md links to missing {target}"
