"""Figures that hide no data: every figure counts every sample, is titled and labelled, and is captioned.

A figure of a research tool that drops data is the worst kind of bug (issue 15: the score histogram lost
every score of exactly 1.0 while its legend still said n=96). For each figure of ``sahs_lens.plotting``:
what it plots adds up to the data it was given (histogram bins include both ends), it has a title and
both axis titles, groups keep one colour wherever they are drawn; and every figure of a report has a
caption. The run report (``report_for_run``) is checked on a tiny extract + probe run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from threadpoolctl import threadpool_limits

from sahs_lens import plotting
from sahs_lens.guard import SafetyHeadGuard
from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import HeadSet
from sahs_lens.interventions import AblationCurve, PatchingResult
from sahs_lens.probes import ProbeSweep
from sahs_lens.report import Verdict, write_report

L, H, R, N = 3, 4, 5, 40
SHOTS = [2, 8, 4]
SETS = ["harmful text", "typographic attacks", "benign text", "benign typographic"]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def sweep() -> ProbeSweep:
    g = torch.Generator().manual_seed(0)
    accuracy = 0.5 + 0.5 * torch.rand(len(SHOTS), R, L, H, generator=g)
    return ProbeSweep(
        accuracy=accuracy, auroc=accuracy.clone(), f1=None, shots=SHOTS, shot_specs=["2", "8", "4"],
        draws=[torch.zeros(R, 2 * n, dtype=torch.long) for n in SHOTS], seed=0, C=1.0, standardize=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def acts() -> HeadActivations:
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([1, 1, 0, 0] * (N // 4))
    z = torch.randn(N, L, H, 6, generator=g)
    z[:, 1, 2, 0] += 3 * (2 * labels - 1)
    sources = ["advbench", "figstep", "alpaca", "figstep-alpaca"] * (N // 4)
    return HeadActivations(z=z, labels=labels, sources=sources)


@pytest.fixture(scope="module")
def curve() -> AblationCurve:
    return AblationCurve(
        ks=[1, 2, 4], baseline_refusal=0.9, safety_refusal=[0.6, 0.3, 0.0],
        random_refusal=[[0.9, 0.85, 0.8], [0.88, 0.9, 0.7]], baseline_utility=1.0,
        safety_utility=[1.0, 0.9, 0.9], random_utility=[[1.0, 1.0, 0.95], [1.0, 0.95, 0.9]], seeds=[0, 1],
        baseline_asr=0.05, safety_asr=[0.3, 0.6, 0.9], random_asr=[[0.05, 0.1, 0.1], [0.1, 0.05, 0.2]],
        success="complied", heads="L1H2,L0H0,L2H1,L0H3",
    )  # fmt: skip


# Scores with the edge cases a histogram must keep: exactly 0.0, exactly 1.0, and the threshold itself.
EDGE_SCORES = np.array([1.0] * 7 + [0.0] * 5 + [0.5, 0.025, 0.975, 0.999999] + list(np.linspace(0, 1, 24)))
EDGE_LABELS = np.array([1] * 7 + [0] * 5 + [1, 0, 1, 1] + [0, 1] * 12)


def _sets_of(labels: np.ndarray) -> list[str]:
    return [SETS[(i % 2) + 2 * (1 - int(y))] for i, y in enumerate(labels)]


def _figures(sweep: ProbeSweep, acts: HeadActivations, curve: AblationCurve) -> dict[str, go.Figure]:
    heads = HeadSet.parse("L1H2,L0H0")
    guard = SafetyHeadGuard.fit(acts, heads)
    detection = {"auroc": {"value": 0.9, "low": 0.8, "high": 0.97}, "tpr": {"value": float("nan")}}
    return {
        "accuracy_heatmap": plotting.accuracy_heatmap(sweep),
        "shots_curve": plotting.shots_curve(sweep, heads),
        "mean_std_scatter": plotting.mean_std_scatter(sweep, heads),
        "tsne_plot": plotting.tsne_plot(acts, heads, color_by="set", perplexity=5),
        "ablation_curve_figure": plotting.ablation_curve_figure(curve),
        "patching_map": plotting.patching_map(
            PatchingResult(torch.randn(L, H), clean=-1.0, patched_all=None, metric="RefusalLogitDiff")
        ),
        "roc_figure": plotting.roc_figure(EDGE_LABELS, EDGE_SCORES, threshold=0.5),
        "score_histogram": plotting.score_histogram(
            EDGE_LABELS, EDGE_SCORES, 0.5, groups=_sets_of(EDGE_LABELS)
        ),
        "sample_counts": plotting.sample_counts(plotting.set_names(acts.sources), acts.labels),
        "guard_weights": plotting.guard_weights(guard),
        "detection_bars": plotting.detection_bars(detection),
        "auroc_heatmap": plotting.auroc_heatmap(COMPARISON),
        "roc_curves": plotting.roc_curves(COMPARISON, "typed", "typed"),
        "cost_figure": plotting.cost_figure(COMPARISON),
    }


# A two-detector comparison dictionary (``compare.json``'s shape) for the comparison figures.
COMPARISON = {
    "detectors": ["sahs", "text_only"],
    "results": [
        {"detector": d, "train": "typed", "test": "typed", "auroc": a, "transfer": False, "ms_per_prompt": ms,
         "extra_forwards": 0, "roc": {"fpr": [0.0, 0.2, 1.0], "tpr": [0.0, a, 1.0]}}
        for d, a, ms in (("sahs", 0.9, 0.05), ("text_only", 0.7, 0.5))
    ],
}  # fmt: skip


def _figure_functions() -> set[str]:
    """Every public function of ``sahs_lens.plotting`` that draws a figure (not a colour or name helper)."""
    helpers = {"group_color", "set_names"}
    return {n for n in plotting.__all__ if n.islower() and n not in helpers}


def test_every_figure_function_is_checked(
    sweep: ProbeSweep, acts: HeadActivations, curve: AblationCurve
) -> None:
    assert set(_figures(sweep, acts, curve)) == _figure_functions()


def test_every_figure_has_a_title_and_axis_titles(
    sweep: ProbeSweep, acts: HeadActivations, curve: AblationCurve
) -> None:
    for name, fig in _figures(sweep, acts, curve).items():
        assert fig.layout.title.text, f"{name} has no title"
        assert fig.layout.xaxis.title.text, f"{name} has no x axis title"
        assert fig.layout.yaxis.title.text, f"{name} has no y axis title"


# ---- the plotted counts add up to the data ------------------------------------------------------------
def _legend_n(trace: go.Bar | go.Scatter) -> int:
    return int(trace.name.rsplit("(n=", 1)[1].rstrip(")"))


@pytest.mark.parametrize(
    "scores",
    [EDGE_SCORES, np.ones(96), np.zeros(10), np.array([0.0, 1.0]), np.random.default_rng(0).random(500)],
    ids=["edges", "all-ones", "all-zeros", "both-ends", "uniform"],
)
def test_score_histogram_counts_every_score(scores: np.ndarray) -> None:
    labels = (np.arange(scores.size) % 2).astype(int)
    groups = _sets_of(labels)
    fig = plotting.score_histogram(labels, scores, threshold=0.5, groups=groups)
    assert sum(int(sum(t.y)) for t in fig.data) == scores.size
    for trace in fig.data:
        name = trace.name.rsplit(" (n=", 1)[0]
        assert int(sum(trace.y)) == _legend_n(trace) == groups.count(name)
    by_class = plotting.score_histogram(labels, scores)
    n_malicious = int(labels.sum())
    assert {t.name: int(sum(t.y)) for t in by_class.data} == {
        f"malicious (n={n_malicious})": n_malicious,
        f"benign (n={scores.size - n_malicious})": scores.size - n_malicious,
    }


def test_score_histogram_bins_include_both_ends() -> None:
    fig = plotting.score_histogram([1, 1, 0], [1.0, 1.0, 0.0])
    malicious, benign = fig.data
    assert malicious.y[-1] == 2 and benign.y[0] == 1  # 1.0 in the last bin, 0.0 in the first
    assert malicious.customdata[-1][2] == "]" and malicious.customdata[0][2] == ")"  # the hover says so
    assert fig.layout.barmode == "stack"  # no group's bars hidden behind another's
    assert min(malicious.x) - 0.0125 == pytest.approx(0.0) and max(malicious.x) + 0.0125 == pytest.approx(1.0)
    outside = plotting.score_histogram([1, 0], [1.3, -0.2])  # not probabilities: the bins widen, none lost
    assert sum(sum(t.y) for t in outside.data) == 2


def test_score_histogram_refuses_what_it_cannot_place() -> None:
    with pytest.raises(ValueError, match="not finite"):
        plotting.score_histogram([1, 0], [float("nan"), 0.2])
    with pytest.raises(ValueError, match="groups must name every prompt"):
        plotting.score_histogram([1, 0], [0.1, 0.2], groups=["a"])


def test_the_other_figures_plot_every_sample(
    sweep: ProbeSweep, acts: HeadActivations, curve: AblationCurve
) -> None:
    figs = _figures(sweep, acts, curve)
    assert np.asarray(figs["accuracy_heatmap"].data[0].z).shape == (L, H)
    assert np.asarray(figs["patching_map"].data[0].z).shape == (L, H)
    assert sum(len(t.x) for t in figs["mean_std_scatter"].data) == L * H
    tsne = figs["tsne_plot"].data
    assert sum(len(t.x) for t in tsne) == N and all(len(t.x) == _legend_n(t) for t in tsne)
    assert [t.name.rsplit(" (n=", 1)[0] for t in tsne] == SETS  # set names, not sources, in a fixed order
    lines = [t for t in figs["shots_curve"].data if t.showlegend is not False]
    assert len(lines) == 2 and all(len(t.x) == len(SHOTS) for t in lines)
    assert all(len(t.x) == len(curve.ks) + 1 for t in figs["ablation_curve_figure"].data)
    for trace in figs["ablation_curve_figure"].data:  # every line of random draws shows their spread
        if "random heads" in trace.name:
            assert trace.error_y.array is not None and trace.error_y.arrayminus is not None, trace.name
    counts = figs["sample_counts"].data
    assert sum(sum(t.y) for t in counts) == N and [_legend_n(t) for t in counts] == [N // 2, N // 2]
    assert len(figs["guard_weights"].data[0].x) == 2
    bars = figs["detection_bars"].data[0]
    assert list(bars.x) == ["AUROC", "TPR (n/a)"] and bars.y[1] is None


def test_roc_operating_point_counts_a_score_at_the_threshold_as_flagged() -> None:
    fig = plotting.roc_figure([1, 1, 0, 0], [0.5, 0.2, 0.5, 0.1], threshold=0.5)
    point = fig.data[-1]
    assert (point.x[0], point.y[0]) == (0.5, 0.5)  # score >= threshold is flagged: one benign, one malicious


def test_shots_curve_band_has_no_markers_and_the_legend_sits_off_the_data(sweep: ProbeSweep) -> None:
    fig = plotting.shots_curve(sweep, HeadSet.parse("L1H2"))
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 2 and all(t.mode == "lines" and t.showlegend is False for t in bands)
    assert fig.layout.legend.y < 0 and fig.layout.legend.yanchor == "top"  # below the x axis


# ---- one colour per group, everywhere -----------------------------------------------------------------
def test_a_group_keeps_its_colour_in_every_figure(acts: HeadActivations) -> None:
    heads = HeadSet.parse("L1H2")
    names = plotting.set_names(acts.sources)
    reversed_acts = acts.select(torch.arange(N - 1, -1, -1))
    for figure in (
        plotting.tsne_plot(acts, heads, color_by="set", perplexity=5),
        plotting.tsne_plot(reversed_acts, heads, color_by="set", perplexity=5),
        plotting.score_histogram(acts.labels, torch.rand(N), groups=names),
    ):
        for trace in figure.data:
            name = trace.name.rsplit(" (n=", 1)[0]
            assert trace.marker.color == plotting.SET_COLORS[name], (figure.layout.title.text, name)
    assert plotting.group_color("mmvet") == plotting.group_color("mmvet")  # fixed by the name alone


# ---- captions and verdicts in the report ----------------------------------------------------------------
def test_a_report_refuses_a_figure_without_a_caption(tmp_path: Path) -> None:
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]))
    with pytest.raises(ValueError, match="needs a caption; none for: b"):
        write_report(tmp_path, title="t", provenance={}, headline=[], figures={"a": fig, "b": fig},
                     captions={"a": "A."})  # fmt: skip
    assert not (tmp_path / "report.html").exists()


def test_verdicts_are_coloured_by_right_and_wrong(tmp_path: Path) -> None:
    rows = [{"decision": Verdict("passed", good=True)}, {"decision": Verdict("passed", good=False)}]
    page = write_report(tmp_path, title="t", provenance={}, headline=[], figures={}, examples=rows)
    text = page.read_text()
    assert '<span class="ok">passed</span>' in text and '<span class="miss">passed</span>' in text


def test_demo_examples_colour_the_decision_by_correctness_and_show_the_drawn_request() -> None:
    from sahs_lens.organism.demo.report import example_rows
    from sahs_lens.organism.render import drawn_request, render_text_of

    attack_id, asked = next(iter(render_text_of("figstep_attack:heldout").items()))
    groups = {"benign text": {"label": 0}, "typographic attacks": {"label": 1}}
    examples = [
        {"set": "benign text", "prompt": "Name a fruit.", "unguarded": "a", "guarded": "a", "flagged": False},
        {"set": "typographic attacks", "prompt": "[typographic image] The image shows...", "unguarded": "b",
         "guarded": "b", "flagged": False, "id": attack_id},
    ]  # fmt: skip
    benign, attack = example_rows(examples, groups)
    decision = "guard (green: right, red: wrong)"
    assert benign[decision] == Verdict("passed", good=True)  # a benign prompt let through is right
    assert attack[decision] == Verdict("passed", good=False)  # an attack let through is wrong
    assert drawn_request(asked) in attack["prompt"] and "typed beside it" in attack["prompt"]


# ---- the run report -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run as ``sahs-lens extract`` + ``sahs-lens probe`` write it, on a tiny LLaVA."""
    from model_adapters.testing import load_tiny
    from sahs_lens.activations import collect_head_activations
    from sahs_lens.data import load_bundled
    from sahs_lens.probes import probe_sweep
    from sahs_lens.ranking import rank_heads

    root = tmp_path_factory.mktemp("run")
    samples = (
        load_bundled("harmful_text:train")[:6]
        + load_bundled("benign_text:train")[:6]
        + load_bundled("figstep_attack:train", image_size=32)[:3]
        + load_bundled("figstep_benign:train", image_size=32)[:3]
    )
    with threadpool_limits(1):
        acts = collect_head_activations(
            load_tiny("llava"), samples, batch_size=6, out=root / "acts", progress=False
        )
        sweep = probe_sweep(acts, shots=[1, 2, 4], repeats=3, seed=0, progress=False)
    sweep.save(root / "probe" / "sweep")
    rank_heads(sweep, k=3, criterion="stable").save(root / "probe" / "heads.json")
    return root


def _sections(page: Path) -> dict[str, str]:
    """Figure title -> its caption, for every figure of a report."""
    import re

    text = page.read_text(encoding="utf-8")
    found = re.findall(r"<div class='figure'><h2>(.*?)</h2>(<p class='caption'>(.*?)</p>)?", text)
    return {title: caption for title, _, caption in found}


@pytest.mark.parametrize("where", ["probe", "acts", "."])
def test_report_for_run_reads_an_extract_and_probe_run(probe_run: Path, where: str) -> None:
    from sahs_lens.run_report import report_for_run

    page = report_for_run(probe_run / where)
    assert page == probe_run / where / "report.html"
    sections = _sections(page)
    expected = {
        "probe": ["Probe accuracy per head (sweep)", "Accuracy vs training shots (sweep)"],
        "acts": ["Prompts collected (.)"],
        ".": ["Prompts collected (acts)", "t-SNE of the heads of probe/heads.json (acts)",
              "Mean vs standard deviation over repeats (probe/sweep)"],
    }[where]  # fmt: skip
    assert set(expected) <= set(sections), sorted(sections)
    assert all(sections.values()), "a figure of the run report has no caption"
    assert "What this run holds" in page.read_text(encoding="utf-8")


def test_report_for_run_reads_ablate_patch_and_guard_eval_outputs(
    tmp_path: Path, curve: AblationCurve
) -> None:
    from safetensors.torch import save_file

    from sahs_lens.run_report import report_for_run

    (tmp_path / "ablate").mkdir()
    (tmp_path / "ablate" / "ablation.json").write_text(json.dumps(curve.to_dict()))
    (tmp_path / "patch").mkdir()
    save_file({"effect": torch.randn(L, H)}, str(tmp_path / "patch" / "patching.safetensors"))
    (tmp_path / "patch" / "patching.json").write_text(json.dumps({"clean": 0.5, "top": ["L0H1"]}))
    evaluation = {"metrics": {"auroc": {"value": 0.9, "low": None, "high": None}}, "threshold": 0.5,
                  "n_positive": 4, "n_negative": 4, "bootstrap": 0, "ci": 0.95, "seed": None}  # fmt: skip
    (tmp_path / "eval.json").write_text(json.dumps(evaluation))
    (tmp_path / "notes.json").write_text("[1, 2]")  # not ours: listed as not read, not an error
    (tmp_path / "compare").mkdir()
    (tmp_path / "compare" / "compare.json").write_text(json.dumps({"format": "sahs_lens.compare/1"}))
    sections = _sections(report_for_run(tmp_path))
    assert {"Ablation: safety heads vs random heads (ablate)", "Patching map (patch)",
            "Guard detection metrics (eval.json)"} <= set(sections)  # fmt: skip
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "not a file sahs-lens writes" in page  # notes.json
    assert "a detector comparison (sahs-lens compare): its own page is compare.html beside it" in page
    (tmp_path / "ablate" / "ablation.json").write_text(
        json.dumps({**curve.to_dict(), "safety_refusal": [0.1]})
    )
    with pytest.raises(ValueError, match="ablation.json"):
        report_for_run(tmp_path)  # a damaged artifact is named, never left out


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda d: None, ValueError, "holds no run that sahs-lens wrote"),
        (lambda d: (d / "figures").mkdir() or (d / "figures" / "index.json").write_text("[]"), ValueError,
         "demo run"),
        (lambda d: (d / "x.txt").write_text("x"), ValueError, "an activations directory"),
    ],
    ids=["empty", "demo", "unrelated"],
)  # fmt: skip
def test_report_for_run_refuses_a_directory_without_a_run(
    tmp_path: Path, make: Callable[[Path], object], error: type[Exception], match: str
) -> None:
    from sahs_lens.run_report import report_for_run

    make(tmp_path)
    with pytest.raises(error, match=match):
        report_for_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing"):
        report_for_run(tmp_path / "nowhere")
    assert not (tmp_path / "report.html").exists()
