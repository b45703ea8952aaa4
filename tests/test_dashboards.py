"""The Grafana dashboards in dashboards/ query only metrics workbench exports, in valid PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
EXPECTED = {
    "pipeline-overview",
    "model-performance",
    "cost-analysis",
    "error-tracking",
    "resource-utilization",
}
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
}


def exported_series() -> set[str]:
    """Every series name workbench's registry exposes, with the suffixes each type adds.

    Read from the metrics layer itself (its registry's families), so that a renamed metric
    breaks this test rather than a user's dashboard.
    """
    from workbench.monitoring.prometheus._builtin import ResourceCollector, builtin_metrics
    from workbench.monitoring.prometheus._metrics import metrics

    builtin_metrics()
    families = [*metrics.registry.collect(), *ResourceCollector("process").describe()]
    names: set[str] = set()
    for family in families:
        suffixes = {
            "counter": ("_total", "_created"),
            "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not functions, keywords or labels)."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name in _KEYWORDS:
            continue
        names.add(name)
    return names


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def _expressions(board: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
    for variable in board.get("templating", {}).get("list", []):
        definition = variable.get("definition")
        if definition:
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", definition))
    return exprs


def test_the_five_documented_dashboards_exist() -> None:
    """pipeline-overview, model-performance, cost-analysis, error-tracking and
    resource-utilization are Grafana dashboards with unique uids and panel ids."""
    boards = _dashboards()
    assert set(boards) == EXPECTED
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for board in boards.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)) and board["panels"]
        assert all(
            p["targets"] and p["datasource"]["type"] == "prometheus" for p in board["panels"]
        )


def test_every_panel_queries_only_exported_metrics() -> None:
    """Each PromQL expression names only series the workbench registry exposes."""
    exported = exported_series()
    for name, board in _dashboards().items():
        for expr in _expressions(board):
            unknown = metric_names(expr) - exported
            assert not unknown, f"{name}: {expr!r} reads {sorted(unknown)}, not exported"


def test_metric_name_extraction() -> None:
    """The extractor finds the metric names and skips functions, keywords, labels, ranges."""
    expr = (
        "histogram_quantile(0.95, sum by (le, task) (rate(task_duration_seconds_bucket"
        '{pipeline=~"$p"}[$__rate_interval]))) / on(instance) group_left sum(up) * 3600'
    )
    assert metric_names(expr) == {"task_duration_seconds_bucket", "up"}


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool accepts every panel expression (Grafana's variables filled in)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`; .ci/run installs it)")
    rules = []
    for name, board in _dashboards().items():
        for i, expr in enumerate(_expressions(board)):
            filled = expr.replace("$__rate_interval", "5m").replace("$pipeline", ".*")
            rules.append({"record": f"workbench:{name.replace('-', '_')}:{i}", "expr": filled})
    path = tmp_path / "dashboards.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_documented_dashboards_section_parses() -> None:
    """The documentation's dashboards section reads into typed settings; unknown names fail."""
    from workbench.config import WorkbenchConfig

    config = WorkbenchConfig.model_validate(
        {
            "dashboards": {
                "grafana": {
                    "url": "http://localhost:3000",
                    "datasources": [
                        {"name": "prometheus", "type": "prometheus", "url": "http://localhost:9090"}
                    ],
                    "dashboards": sorted(EXPECTED),
                }
            }
        }
    )
    assert set(config.dashboards.grafana.dashboards) == EXPECTED
    with pytest.raises(ValueError, match="pipeline-overview"):
        WorkbenchConfig.model_validate({"dashboards": {"grafana": {"dashboards": ["latency"]}}})
