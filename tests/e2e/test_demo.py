"""``sahs-lens demo`` in its quick mode: every stage runs, the report opens cleanly in a real browser."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from sahs_lens.cli import main
from sahs_lens.organism.demo import report_from_run
from sahs_lens.organism.demo.headline import ASR_DEFINITION, print_headline

from .report_check import check_report, chromium

HELD_OUT_SETS = ["harmful text", "typographic attacks", "benign text", "benign typographic"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--quick", "--out", str(out)]) == 0
    (out / "stdout.txt").write_text(printed.getvalue())
    print(printed.getvalue())
    return out


def test_demo_writes_report_and_metrics(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    assert {row["measure"] for row in metrics["headline"]} >= {"guard AUROC on held-out prompts"}
    assert len(metrics["safety_heads"]) == 4
    for name in ("activations", "sweep", "guard", "heads.json", "report.html"):
        assert (run / name).exists(), name
    assert 0.0 <= metrics["detection"]["metrics"]["auroc"]["value"] <= 1.0


def test_every_step_announces_itself_and_the_headline_says_what_it_measures(run: Path) -> None:
    printed = (run / "stdout.txt").read_text()
    steps = re.findall(r"^\[(\d)/(\d)\] (\S.*)$", printed, flags=re.MULTILINE)
    assert [int(number) for number, _, _ in steps] == list(range(1, 9))
    assert {total for _, total, _ in steps} == {"8"}
    for word in ("activations", "probe sweep", "ablation curve", "patching map", "guarded generation"):
        assert any(heading.startswith(word) for _, _, heading in steps), word
    assert "guarded generation" in printed and "done in" in printed
    assert ASR_DEFINITION in printed
    assert "(target -)" not in printed

    headline = json.loads((run / "metrics.json").read_text())["headline"]
    for row in headline:
        assert {"measure", "value", "target", "met", "description", "verdict"} <= set(row)
        assert len(row["description"]) > 40, row
        if row["met"] is True:
            assert row["verdict"].startswith("Met: "), row
        if row["met"] is False:
            assert row["verdict"].startswith("Missed: "), row
    lines: list[str] = []
    print_headline(headline, lines.append)
    text = "\n".join(lines)
    assert "(target -)" not in text and "no target: for information" in text
    for row in headline:
        if row["met"] is False:  # a miss is explained where it is printed
            assert row["verdict"].split()[1] in text


def test_the_rebuilt_report_shows_exactly_what_the_original_shows(run: Path, tmp_path: Path) -> None:
    """``report_from_run`` on a copy of the run: the same text and the same figures (data and layout),
    up to the figures' random div ids and JSON key order (``report_parts``). It runs before the test
    below, which rebuilds the run's own report in place."""
    import shutil

    from .report_parts import report_parts

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    original = report_parts((run / "report.html").read_text(encoding="utf-8"))
    report_from_run(copy)
    rebuilt = report_parts((copy / "report.html").read_text(encoding="utf-8"))
    assert len(original[1]) == len(rebuilt[1]) == 8
    assert rebuilt[0] == original[0]
    for i, (mine, theirs) in enumerate(zip(rebuilt[1], original[1], strict=True)):
        assert mine == theirs, f"figure {i} differs"


def test_report_rebuilds_from_the_run(run: Path) -> None:
    before = (run / "report.html").stat().st_size
    report_from_run(run)
    assert abs((run / "report.html").stat().st_size - before) < 0.05 * before


def _values(array: object) -> list[float]:
    """A trace's data array as saved: a list, or plotly's typed binary array ``{"dtype", "bdata"}``."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()  # type: ignore[no-any-return]
    return list(array)  # type: ignore[call-overload]


def _figure(run: Path, title: str) -> go.Figure:
    """A saved figure of the run, decoded by plotly (its arrays may be stored as typed binary arrays)."""
    index = json.loads((run / "figures" / "index.json").read_text())
    file = next(entry["file"] for entry in index if entry["title"] == title)
    return go.Figure(json.loads((run / "figures" / file).read_text()))


def test_every_figure_of_the_report_is_titled_labelled_and_captioned(run: Path) -> None:
    page = (run / "report.html").read_text(encoding="utf-8")
    found = re.findall(r"<div class='figure'><h2>(.*?)</h2>(<p class='caption'>(.*?)</p>)?", page)
    assert len(found) == 8 and all(caption for _, _, caption in found), [t for t, _, c in found if not c]
    for entry in json.loads((run / "figures" / "index.json").read_text()):
        layout = _figure(run, entry["title"])["layout"]
        assert (
            layout["title"]["text"] and layout["xaxis"]["title"]["text"] and layout["yaxis"]["title"]["text"]
        )


def test_score_histogram_counts_every_held_out_prompt(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    traces = _figure(run, "Guard scores on held-out prompts").data
    counts = {
        t.name.rsplit(" (n=", 1)[0]: (int(sum(_values(t.y))), int(t.name.rsplit("(n=", 1)[1][:-1]))
        for t in traces
    }
    assert list(counts) == HELD_OUT_SETS  # the set names of the headline, not the sources
    for name, (plotted, legend) in counts.items():
        assert plotted == legend == metrics["groups"][name]["n"], name  # scores of exactly 1.0 included


def test_tsne_uses_the_set_names_and_their_fixed_colours(run: Path) -> None:
    from sahs_lens.plotting import SET_COLORS

    traces = _figure(run, "t-SNE of the safety-head features").data
    names = [t.name.rsplit(" (n=", 1)[0] for t in traces]
    assert names == HELD_OUT_SETS
    assert [t.marker.color for t in traces] == [SET_COLORS[n] for n in names]


def test_examples_colour_the_guard_decision_by_whether_it_was_right(run: Path) -> None:
    metrics = json.loads((run / "metrics.json").read_text())
    page = (run / "report.html").read_text(encoding="utf-8")
    table = page[page.index("Examples of guarded and unguarded answers") :]
    table = table[: table.index("</table>")]
    rows = []
    for row in table.split("<tr>")[2:]:  # [0]: before the table, [1]: the header
        match = re.search(r'^<td>(.*?)</td>.*<span class="(ok|miss)">(flagged|passed)</span>', row, re.DOTALL)
        assert match, row[:300]
        rows.append(match.groups())
    assert len(rows) == len(metrics["examples"])
    for (name, css, decision), example in zip(rows, metrics["examples"], strict=True):
        right = example["flagged"] == bool(metrics["groups"][name]["label"])
        assert (css == "ok") == right and decision == ("flagged" if example["flagged"] else "passed")
    typographic = [
        e for e in metrics["examples"] if e["set"] in ("typographic attacks", "benign typographic")
    ]
    if all("id" in e for e in typographic):  # the stage records each example's id: the drawn request shows
        assert table.count("the image asks: ") == len(typographic)


def test_the_generic_run_report_leaves_a_demo_run_to_its_own(run: Path) -> None:
    from sahs_lens.run_report import report_for_run

    with pytest.raises(ValueError, match="demo run"):
        report_for_run(run)


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_opens_in_chromium_without_errors_or_empty_figures(run: Path) -> None:
    result = check_report(run / "report.html")
    assert result["errors"] == []
    assert result["empty"] == []
    assert result["uncaptioned"] == [] and result["unlabelled"] == []
    assert result["figures"] == 8


def test_report_checker_catches_an_empty_figure(tmp_path: Path) -> None:
    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    from sahs_lens.report import write_report

    write_report(
        tmp_path,
        title="t",
        provenance={},
        headline=[],
        figures={"full": go.Figure(go.Scatter(x=[1, 2], y=[2, 1])), "empty": go.Figure()},
        captions={"full": "A line.", "empty": "Nothing."},
    )
    result = check_report(tmp_path / "report.html")
    assert result["empty"] == ["empty"] and result["figures"] == 2
    assert result["unlabelled"] == ["full", "empty"]  # neither has a title or axis titles


def test_a_run_report_of_the_demo_artifacts_opens_cleanly(run: Path, tmp_path: Path) -> None:
    """The demo's activations, sweep, heads and guard, laid out as the CLI writes them, as one run report."""
    import shutil

    from sahs_lens.run_report import report_for_run

    for name in ("activations", "sweep", "guard"):
        shutil.copytree(run / name, tmp_path / name)
    shutil.copy(run / "heads.json", tmp_path / "heads.json")
    page = report_for_run(tmp_path)
    text = page.read_text(encoding="utf-8")
    for title in (
        "Prompts collected (activations)",
        "Accuracy vs training shots (sweep)",
        "Guard ROC on activations",
    ):
        assert title in text, title
    assert "the heads of heads.json" in text  # the sweep's figures highlight the heads beside it
    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    result = check_report(page)
    assert result["errors"] == [] and result["empty"] == []
    assert result["uncaptioned"] == [] and result["unlabelled"] == []


def test_the_run_records_that_it_is_complete_and_every_file(run: Path, tmp_path: Path) -> None:
    import shutil

    from sahs_lens.organism.demo.run_dir import check_run, run_state

    record = check_run(run)
    assert record is not None and record["complete"] is True and record["settings"]["seed"] == 0
    assert run_state(run) == "it finished"
    assert {"metrics.json", "heads.json", "activations/manifest.json", "guard/guard.json"} <= set(
        record["files"]
    )
    changed = tmp_path / "changed"
    shutil.copytree(run, changed)
    (changed / "heads.json").write_text('{"heads": ["L0H0"]}\n')
    with pytest.raises(ValueError, match=r"heads\.json is not the file .* changed after it finished"):
        report_from_run(changed)


class _Interrupted(BaseException):
    pass


@pytest.mark.parametrize("stage", ["collect_activations", "sweep_and_rank", "fit_guard", "write_demo_report"])
def test_a_rerun_interrupted_over_an_earlier_run_is_marked_incomplete(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """The issue's reproducer in-process: ``demo --seed 1`` over a finished seed-0 run, stopped in a stage.
    Nothing of the earlier run is left to pass for this one, and the directory says it is incomplete;
    ``sahs-lens demo`` accepts it as an earlier run and replaces it."""
    import shutil

    import sahs_lens.organism.demo.run as demo_run
    from sahs_lens.organism.demo import run_demo
    from sahs_lens.organism.demo.run_dir import holds_earlier_run, run_state
    from sahs_lens.run_artifacts import is_demo_run

    out = tmp_path / "run"
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("stdout.txt"))

    def interrupted(*args: object, **kwargs: object) -> None:
        raise _Interrupted

    monkeypatch.setattr(demo_run, stage, interrupted)
    with pytest.raises(_Interrupted):
        run_demo(out, quick=True, seed=1, progress=False)
    record = json.loads((out / "run.json").read_text())
    assert record["complete"] is False and record["settings"]["seed"] == 1
    assert not (out / "metrics.json").exists() and not (out / "report.html").exists()  # seed 0's are gone
    assert is_demo_run(out)
    with pytest.raises(ValueError, match="incomplete demo run .* was interrupted"):
        report_from_run(out)
    assert holds_earlier_run(out)  # what sahs-lens demo asks before it replaces a directory
    assert (
        run_state(out) == "it was interrupted (run.json says incomplete)"
    )  # and how it says why it starts over
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not an earlier demo run"):
        holds_earlier_run(out)


def test_a_quick_run_says_it_is_a_smoke_run(run: Path) -> None:
    from sahs_lens.organism.demo.report import SMOKE_RUN

    printed = (run / "stdout.txt").read_text()
    assert (
        printed.startswith("sahs-lens demo --quick: a quick smoke run")
        and f"NOTE: this was a {SMOKE_RUN}" in printed
    )
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "(quick smoke run)</title>" in page or "(quick smoke run)" in page.split("</h1>")[0]
    assert json.loads((run / "report_meta.json").read_text())["provenance"]["run"] == SMOKE_RUN
