"""``sahs-lens compare`` end to end on the organism: the quick default run, its files, its page, its errors.

The quick run trains every detector on small typed (and typed + typographic) sets and scores the held-out
typed, pictured, typographic and per-source sets; the lexical control must sit exactly at chance on the
typographic set (every typographic prompt has the same text) and the guard above it. Bad input fails
before the model loads, with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest

from sahs_lens.cli import main
from sahs_lens.detectors import DEFAULT_DETECTORS, RESULT_FIELDS

from .report_check import check_report, chromium

README = Path(__file__).resolve().parents[2] / "README.md"


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("compare")
    code, printed, err = _run(
        ["compare", "--quick", "--bootstrap", "100", "--max-new-tokens", "8", "--out", str(out)]
    )
    assert code == 0, err
    return out, printed


def test_quick_default_run_writes_the_named_fields(run: tuple[Path, str]) -> None:
    out, printed = run
    data = json.loads((out / "compare.json").read_text())
    assert data["detectors"] == list(DEFAULT_DETECTORS)
    assert {"typed", "typed+image", "typographic"} <= set(data["test_sets"])
    assert any(name.startswith("source:") for name in data["test_sets"])
    trains = {r["train"] for r in data["results"]}
    assert any(t.startswith("typed-without-") for t in trains)
    for row in data["results"]:
        assert set(RESULT_FIELDS) <= set(row), row
        if row["auroc"] is not None:
            low, high = row["auroc_ci"]
            assert low <= row["auroc"] <= high
    refusal = [r for r in data["results"] if r["detector"] == "model_refusal"]
    assert {r["extra_forwards"] for r in refusal} == {7}
    assert {r["extra_forwards"] for r in data["results"] if r["detector"] != "model_refusal"} == {0}
    assert "P1" in printed and "compare.html" in printed


def test_text_only_sits_at_chance_on_typographic_attacks_and_the_guard_above_it(
    run: tuple[Path, str],
) -> None:
    out, printed = run
    data = json.loads((out / "compare.json").read_text())
    rows = {(r["detector"], r["train"]): r for r in data["results"] if r["test"] == "typographic"}
    for train in ("typed", "typed+typographic"):
        assert rows[("text_only", train)]["auroc"] == 0.5
        assert rows[("sahs", train)]["auroc"] > 0.5
    assert rows[("sahs", "typed")]["transfer"] and not rows[("sahs", "typed+typographic")]["transfer"]
    assert re.search(
        r"typed -> typographic \(transfer\): text_only AUROC 0\.500 .* sahs \d\.\d{3}, \d\.\d{3} above it", printed
    )


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")
def test_compare_page_opens_in_chromium_without_errors_or_empty_figures(run: tuple[Path, str]) -> None:
    result = check_report(run[0] / "compare.html")
    assert result["errors"] == [] and result["empty"] == [], result
    assert result["uncaptioned"] == [] and result["unlabelled"] == [], result
    assert result["figures"] >= 3  # heat map, ROC curves, cost vs AUROC


def test_a_wrong_detector_name_lists_the_detectors(tmp_path: Path) -> None:
    code, _, err = _run(["compare", "--detectors", "sahs,lexical", "--out", str(tmp_path / "x")])
    assert code == 2 and "no detector named 'lexical'" in err
    for name in DEFAULT_DETECTORS:
        assert name in err
    assert not (tmp_path / "x").exists()


def test_shared_samples_are_refused_by_id_unless_allowed(tmp_path: Path) -> None:
    argv = ["compare", "--detectors", "text_only", "--train", "harmful_text:heldout@20", "--train",
            "benign_text:heldout@20", "--test", "leak=harmful_text:heldout@5", "--test", "leak=benign_text:train@5"]  # fmt: skip
    code, _, err = _run([*argv, "--out", str(tmp_path / "a")])
    assert code == 2 and "share 5 sample(s)" in err and "--allow-overlap" in err
    code, printed, err = _run([*argv, "--allow-overlap", "--bootstrap", "0", "--out", str(tmp_path / "b")])
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "compare.json").read_text())["settings"]["allow_overlap"] is True


def test_a_one_class_test_set_says_auroc_is_undefined(tmp_path: Path) -> None:
    code, printed, err = _run(["compare", "--detectors", "text_only", "--train", "harmful_text:train@20",
                               "--train", "benign_text:train@20", "--test", "bad=harmful_text:heldout@10",
                               "--bootstrap", "0", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0, err
    row = json.loads((tmp_path / "compare.json").read_text())["results"][0]
    assert row["auroc"] is None and row["tpr_at_1pct_fpr"] is None and row["fpr_at_threshold"] is None
    assert row["tpr_at_threshold"] is not None and "AUROC undefined" in row["note"]


def test_train_without_test_is_refused(tmp_path: Path) -> None:
    code, _, err = _run(["compare", "--train", "harmful_text:train@5", "--out", str(tmp_path)])
    assert code == 2 and "give both --train SPEC and --test NAME=SPEC" in err


def _readme_table() -> dict[tuple[str, str], float]:
    """The AUROC cells of the README's "Detectors side by side" table, by (detector, column)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Detectors side by side", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[2:]:
        parts = [c.strip() for c in line.strip("|").split("|")]
        for column, value in zip(header[1:], parts[1:], strict=True):
            if re.fullmatch(r"\d\.\d{3}", value):
                cells[(parts[0].strip("`"), column)] = float(value)
    return cells


def test_the_readme_states_that_text_only_is_at_chance_on_typographic_attacks() -> None:
    cells = _readme_table()
    typographic = [column for (_, column) in cells if "typographic" in column and "->" in column]
    assert typographic, "the README table has no typographic column"
    prose = re.sub(r"\s+", " ", README.read_text(encoding="utf-8").split("## Detectors side by side", 1)[1])
    for column in typographic:
        if column.endswith("-> typographic"):
            assert cells[("text_only", column)] == 0.5
            # the prose says how far the guard is from the lexical control there, and on which side
            guard = cells[("sahs", column)]
            gap = round(guard - 0.5, 3)
            side = "above" if gap > 0 else "under"
            said = rf"{guard:.3f}\W+{abs(gap):.3f} {side} the lexical control"
            assert re.search(said, prose), (
                f"the README should say the guard's {guard:.3f} is {gap:+.3f} vs chance"
            )


@pytest.mark.skipif(
    os.environ.get("SAHS_ORGANISM_FULL_EVAL") != "1", reason="the full default comparison takes minutes"
)
def test_the_readme_table_is_the_default_run(tmp_path: Path) -> None:
    from sahs_lens.organism.demo.comparison import README_COLUMNS, readme_rows

    code, _, err = _run(["compare", "--out", str(tmp_path)])
    assert code == 0, err
    data = json.loads((tmp_path / "compare.json").read_text())
    measured = readme_rows(data)
    cells = _readme_table()
    for row in measured:
        for column in README_COLUMNS:
            value = row[column]
            if value is not None:
                assert cells[(row["detector"], column)] == round(value, 3), (row["detector"], column)
