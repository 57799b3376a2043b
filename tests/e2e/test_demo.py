"""``sahs-lens demo`` in its quick mode: every stage runs, the report opens cleanly in a real browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sahs_lens.cli import main
from sahs_lens.organism.demo import report_from_run

from .report_check import check_report, chromium


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_demo_writes_report_and_metrics(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    assert {row["measure"] for row in metrics["headline"]} >= {"guard AUROC on held-out prompts"}
    assert len(metrics["safety_heads"]) == 4
    for name in ("activations", "sweep", "guard", "heads.json", "report.html"):
        assert (run / name).exists(), name
    assert 0.0 <= metrics["detection"]["metrics"]["auroc"]["value"] <= 1.0


def test_report_rebuilds_from_the_run(run: Path) -> None:
    before = (run / "report.html").stat().st_size
    report_from_run(run)
    assert abs((run / "report.html").stat().st_size - before) < 0.05 * before


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_opens_in_chromium_without_errors_or_empty_figures(run: Path) -> None:
    result = check_report(run / "report.html")
    assert result["errors"] == []
    assert result["empty"] == []
    assert result["figures"] == 8


def test_report_checker_catches_an_empty_figure(tmp_path: Path) -> None:
    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    import plotly.graph_objects as go

    from sahs_lens.report import write_report

    write_report(
        tmp_path,
        title="t",
        provenance={},
        headline=[],
        figures={"full": go.Figure(go.Scatter(x=[1, 2], y=[2, 1])), "empty": go.Figure()},
    )
    result = check_report(tmp_path / "report.html")
    assert result["empty"] == ["empty"] and result["figures"] == 2
