"""``sahs-lens demo --model smollm2-135m-instruct --quick``: the whole story on real weights, text only."""

from __future__ import annotations

from pathlib import Path

from sahs_lens.organism.demo import report_from_run, run_demo
from sahs_lens.organism.demo.subjects import LANGUAGE_MODEL_SUBJECT

from .report_parts import report_parts


def test_the_quick_demo_runs_on_real_weights(smollm2, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    metrics = run_demo(tmp_path / "run", quick=True, model=smollm2, progress=False)
    assert metrics["model"]["model_name"] == "smollm2-135m-instruct"
    assert metrics["model"]["weights_sha256"].startswith("sha256:b179c952")
    assert list(metrics["groups"]) == ["harmful text", "benign text", "benign with harmful words"]
    assert [g["label"] for g in metrics["groups"].values()] == [1, 0, 0]
    measures = [row["measure"] for row in metrics["headline"]]
    assert measures[0] == "guard AUROC on held-out prompts"
    assert any(m.startswith("ASR (not refused) on harmful text with top-") for m in measures)
    assert any("in transfer (pool -> contrast)" in m for m in measures)
    tests = {r["test"] for r in metrics["comparison"]["results"]}
    assert tests == {"held-out", "contrast"}
    cfg = LANGUAGE_MODEL_SUBJECT.quick
    assert len(metrics["safety_heads"]) == cfg.k and metrics["config"]["n_image"] == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert "safety heads of smollm2-135m-instruct" in page and "typographic" not in page.lower()
    original = report_parts(page)
    rebuilt = report_parts(report_from_run(tmp_path / "run").read_text())
    assert rebuilt[0] == original[0] and len(rebuilt[1]) == len(original[1]) == 8
