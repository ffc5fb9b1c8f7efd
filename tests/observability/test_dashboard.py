"""The Grafana dashboard in examples/ is valid JSON and charts the series capebase exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from capebase.testing import app_client
from tests.observability._app import make_app

DASHBOARD = Path(__file__).resolve().parents[2] / "examples/grafana/capebase-dashboard.json"
SUFFIXES = re.compile(r"_(total|bucket|sum|count)$")


async def test_every_panel_queries_real_series_and_every_series_is_charted(
    sqlite_url: str,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    referenced = {
        SUFFIXES.sub("", name) for expr in expressions
        for name in re.findall(r"\bcapebase_[a-z_]+", expr)
    }
    app, _cape = make_app(sqlite_url, metrics=True)
    async with app_client(app) as client:
        text = (await client.get("/metrics")).text
    exported = {
        family.name for family in text_string_to_metric_families(text)
        if family.name.startswith("capebase_") and not family.name.endswith("_created")
    }
    assert referenced <= exported, referenced - exported
    assert exported <= referenced, exported - referenced
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"] == "capebase"
