"""What a demo run leaves behind: ``metrics.json``, the figures and an offline ``report.html``.

A run directory holds everything needed to read the result again without re-running the model: the
metrics, every figure as plotly JSON (``figures/``), the provenance and captions (``report_meta.json``),
and the report built from them. ``report_from_run`` rebuilds ``report.html`` from those files alone.

The report names prompts by their held-out set ("harmful text", "typographic attacks", "benign text",
"benign typographic") in every figure and table, each set in one fixed colour (``plotting.SET_COLORS``);
every figure has a caption; the examples table colours the guard's decision by whether it was right
(``example_rows``), and shows what a typographic image asks (the request drawn in it), not only the
prompt typed beside it, which is the same for every FigStep attack.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
import torch

from model_adapters import HookedVLM
from sahs_lens import plotting
from sahs_lens._version import __version__
from sahs_lens.interventions import AblationCurve, PatchingResult
from sahs_lens.organism.demo.comparison import comparison_table
from sahs_lens.organism.demo.config import DemoConfig
from sahs_lens.organism.demo.run_dir import check_run
from sahs_lens.organism.demo.stages import DemoActivations, GuardedRun, GuardFit, Ranking
from sahs_lens.organism.render import drawn_request, render_text_of
from sahs_lens.plotting.style import set_names
from sahs_lens.report import Verdict, write_report
from sahs_lens.schema import Rule, check, confined, read_json

__all__ = [
    "CAPTIONS",
    "FIGURE_DIR",
    "TITLE",
    "demo_figures",
    "demo_metrics",
    "demo_provenance",
    "example_rows",
    "report_from_run",
    "write_demo_report",
]

FIGURE_DIR = "figures"
TITLE = "sahs-lens demo: safety heads of the model organism"

_SETS = "harmful text, typographic attacks (FigStep: the request drawn in the image), benign text, benign typographic"

CAPTIONS = {
    "Probe accuracy per head (the paper's Fig. 2)": "Held-out accuracy of a logistic probe on each head's "
    "decision-position output (hook_z at the last prompt token), averaged over shot counts and repeats; "
    "layer 0 at the top. Chance is 0.5.",
    "Accuracy vs training shots (Fig. 3)": "Held-out probe accuracy against training prompts per class (log "
    "scale), for the safety heads (red) and for all heads (grey). Each line is the mean over the group's "
    "heads of each head's mean over repeats; the shaded band is +/- the group's typical per-head standard "
    "deviation over repeats (narrow: probes that agree from one random draw to the next). Dotted: chance.",
    "Mean vs standard deviation over repeats (Fig. 4)": "Every head as one point: the standard deviation of "
    "its probe accuracy over repeats (x) against its mean (y), averaged over shot counts. The safety heads "
    "(red) are ranked for being accurate and stable, so they sit top left.",
    "t-SNE of the safety-head features": "t-SNE of the safety heads' concatenated decision-position outputs "
    f"for every held-out prompt, coloured by held-out set ({_SETS}); each set keeps its colour in every "
    "figure. t-SNE keeps neighbourhoods, not distances: separate clouds mean the heads tell those prompts "
    "apart, the gaps between clouds mean little.",
    "Ablation: safety heads vs random heads (Fig. 5)": "Refusal rate on held-out harmful text requests as "
    "the top-k safety heads, or k random heads (mean over seeds, bars: min-max), are zero-ablated; utility "
    "on benign prompts; ASR (complied): the share of harmful requests answered in the organism's helpful "
    "form (broken answers are not refused, but not answers either).",
    "Patching malicious head outputs into benign prompts": "Change of the first-token refusal logit "
    "difference when one head's decision-position output is copied from a malicious into a benign prompt.",
    "Guard ROC on held-out prompts": "ROC of the guard's scores on every held-out prompt (malicious: harmful "
    "text and typographic attacks; benign: benign text and benign typographic). The black dot is the "
    "calibrated threshold (flagged when score >= threshold), set on other held-out benign prompts.",
    "Guard scores on held-out prompts": "The guard's score of every held-out prompt, by held-out set, in bins "
    "of 0.025 from 0 to 1 with both ends included (a score of exactly 0 or 1 lands in the first or last bin), "
    "stacked, so each set's coloured segments add up to the n in its legend. Dashed: the calibrated threshold.",
}


def captions_for(sets: list[str]) -> dict[str, str]:
    """The captions with the organism's set names replaced by ``sets`` (the run's held-out sets) where a
    run is not the organism's (a language model's sets are text only)."""
    if set(sets) == {"harmful text", "typographic attacks", "benign text", "benign typographic"}:
        return dict(CAPTIONS)
    listing = ", ".join(sets)
    out = {}
    for title, caption in CAPTIONS.items():
        caption = caption.replace(_SETS, listing)
        caption = caption.replace("(malicious: harmful text and typographic attacks; benign: benign text and "
                                  "benign typographic)", f"({listing})")  # fmt: skip
        caption = caption.replace("answered in the organism's helpful form (broken answers are not refused, "
                                  "but not answers either)", "not refused")  # fmt: skip
        out[title] = caption
    return out


def demo_figures(
    ranking: Ranking,
    acts: DemoActivations,
    curve: AblationCurve,
    patching: PatchingResult,
    fit: GuardFit,
    seed: int,
) -> dict[str, go.Figure]:
    """The report's eight figures, by title (the paper's figure numbers where it has one)."""
    sweep, safety, test_acts = ranking.sweep, ranking.safety, acts.test
    return {
        "Probe accuracy per head (the paper's Fig. 2)": plotting.accuracy_heatmap(sweep),
        "Accuracy vs training shots (Fig. 3)": plotting.shots_curve(sweep, heads=safety),
        "Mean vs standard deviation over repeats (Fig. 4)": plotting.mean_std_scatter(sweep, safety),
        "t-SNE of the safety-head features": plotting.tsne_plot(test_acts, safety, color_by="set", seed=seed),
        "Ablation: safety heads vs random heads (Fig. 5)": plotting.ablation_curve_figure(curve),
        "Patching malicious head outputs into benign prompts": plotting.patching_map(patching),
        "Guard ROC on held-out prompts": plotting.roc_figure(
            test_acts.labels, fit.scores, threshold=fit.guard.threshold
        ),
        "Guard scores on held-out prompts": plotting.score_histogram(
            test_acts.labels, fit.scores, fit.guard.threshold, groups=set_names(test_acts.sources)
        ),
    }


def demo_metrics(
    *,
    model: HookedVLM,
    cfg: DemoConfig,
    seed: int,
    quick: bool,
    ranking: Ranking,
    headline: list[dict[str, Any]],
    fit: GuardFit,
    run: GuardedRun,
    curve: AblationCurve,
    patching: PatchingResult,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The ``metrics.json`` record of a run: configuration, heads, headline, every measurement, timings."""
    return {
        "package_version": __version__,
        "seed": seed,
        "quick": quick,
        "config": dataclasses.asdict(cfg),
        "model": model.cfg.identity(),
        "safety_heads": ranking.safety.to_list(),
        "ranked_heads": ranking.heads.to_list(),
        "headline": headline,
        "detection": fit.detection.to_dict(),
        "guard_threshold": fit.guard.threshold,
        "groups": run.groups,
        "ablation": curve.to_dict(),
        "patching": {"clean": patching.clean, "top": patching.top(8).to_list()},
        "timings_s": timings,
        "examples": run.examples,
    }


SMOKE_RUN = (
    "quick smoke run: a few prompts per set, so its numbers and misses say little; the README's numbers "
    "come from the full run (sahs-lens demo without --quick)"
)
"""How a ``--quick`` run is labelled, in the terminal and in the report (provenance and title)."""


def demo_provenance(
    model: HookedVLM,
    cfg: DemoConfig,
    seed: int,
    ranking: Ranking,
    fit: GuardFit,
    total_s: float,
    *,
    quick: bool = False,
) -> dict[str, Any]:
    """What the report states the run was made from: model, data, sweep, heads, threshold, versions."""
    return {
        "run": SMOKE_RUN if quick else "full run",
        "model": model.cfg.model_name,
        "checkpoint": model.cfg.checkpoint,
        "family": model.cfg.family,
        "template": model.cfg.template,
        "shape": f"{model.cfg.n_layers} layers x {model.cfg.n_heads} heads x d_head {model.cfg.d_head}",
        "data": "bundled sets (train parts for probes and guard, held-out parts for evaluation)",
        "subject": "a language model (text only)" if model.cfg.family == "language_model" else "the organism",
        "probe sweep": f"shots {list(cfg.shots)}, {cfg.repeats} repeats, seed {seed}",
        "safety heads": str(ranking.safety),
        "guard threshold": fit.guard.threshold,
        "sahs_lens": __version__,
        "torch": torch.__version__,
        "run time (s)": round(total_s, 1),
    }


TYPOGRAPHIC_SETS = (
    "figstep_attack:train",
    "figstep_attack:heldout",
    "figstep_benign:train",
    "figstep_benign:heldout",
)
"""The bundled typographic sets, whose records say what each image asks (``render_text_of``)."""


@functools.lru_cache(maxsize=1)
def _drawn_texts() -> dict[str, str]:
    """Sample id -> the request drawn in its image, for every typographic bundled set."""
    texts: dict[str, str] = {}
    for name in TYPOGRAPHIC_SETS:
        texts.update(render_text_of(name))
    return texts


def example_rows(examples: list[dict[str, Any]], groups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The examples table: per example its set, what it asks, both answers and the guard's decision.

    The decision is a ``Verdict`` coloured by whether it was right (a malicious set's prompt flagged, a
    benign set's prompt passed; the set's label is ``groups[set]["label"]``), not by yes / no. A
    typographic prompt shows the request drawn in its image (``drawn_request`` of the bundled record with
    the example's ``id``, or the example's own ``drawn`` text) before the prompt typed beside it.
    """
    drawn = _drawn_texts()
    rows = []
    for example in examples:
        label = groups.get(str(example.get("set")), {}).get("label")
        flagged = example.get("flagged")
        prompt = str(example.get("prompt", ""))
        text = example.get("drawn") or drawn.get(str(example.get("id", "")))
        if isinstance(text, str) and text:
            prompt = f"the image asks: {drawn_request(text)}  |  typed beside it: {prompt}"
        decision = "flagged" if flagged else "passed"
        known = label in (0, 1) and isinstance(flagged, bool)
        rows.append(
            {
                "set": example.get("set", ""),
                "prompt": prompt,
                "unguarded answer": example.get("unguarded", ""),
                "guarded answer": example.get("guarded", ""),
                "guard (green: right, red: wrong)": Verdict(decision, flagged == bool(label))
                if known
                else decision,
            }
        )
    return rows


def _save_figures(out: Path, figures: dict[str, go.Figure]) -> None:
    directory = out / FIGURE_DIR
    directory.mkdir(exist_ok=True)
    index = []
    for i, (name, figure) in enumerate(figures.items()):
        file = f"{i:02d}.json"
        (directory / file).write_text(pio.to_json(figure))
        index.append({"title": name, "file": file})
    (directory / "index.json").write_text(json.dumps(index, indent=2))


def write_demo_report(
    out: Path,
    *,
    provenance: dict[str, Any],
    headline: list[dict[str, Any]],
    figures: dict[str, go.Figure],
    examples: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> Path:
    """Save the figures and ``report_meta.json``, write ``report.html`` (and ``metrics.json``); its path."""
    _save_figures(out, figures)
    captions = captions_for(list(_groups(metrics)))
    title = (
        TITLE
        if provenance.get("family") != "language_model"
        else f"sahs-lens demo: safety heads of {provenance['model']}"
    )
    if provenance.get("run") == SMOKE_RUN:
        title += " (quick smoke run)"
    (out / "report_meta.json").write_text(
        json.dumps({"provenance": provenance, "captions": captions, "title": title}, indent=2, default=str)
    )
    return write_report(
        out,
        title=title,
        provenance=provenance,
        headline=headline,
        figures=figures,
        captions=captions,
        examples=example_rows(examples, _groups(metrics)),
        metrics=metrics,
        tables=_comparison_tables(metrics),
    )


_METRICS_RULES = {
    "headline": Rule(list, items=Rule(dict)),
    "examples": Rule(list, optional=True, items=Rule(dict)),
    "groups": Rule(dict, optional=True),
}
_META_RULES = {"provenance": Rule(dict), "captions": Rule(dict)}
_ENTRY_RULES = {"title": Rule(str), "file": Rule(str)}


def report_from_run(run_dir: str | Path) -> Path:
    """Rebuild ``report.html`` of a demo run from its saved figures and metrics.

    The run must be complete and unchanged (``run.json``: ``run_dir.check_run``), its JSON files are
    checked before use (``sahs_lens.schema``) and every figure file named in ``figures/index.json`` must
    lie inside ``figures/``.

    Example:
        >>> report_from_run("sahs_out")  # doctest: +SKIP
        PosixPath('sahs_out/report.html')
    """
    run = Path(run_dir)
    check_run(run)  # an interrupted or changed run is refused before anything of it is read
    index_path = run / FIGURE_DIR / "index.json"
    if not index_path.exists() or not (run / "metrics.json").exists():
        raise FileNotFoundError(
            f"{run} holds no demo run (expected {FIGURE_DIR}/index.json and metrics.json)"
        )
    metrics = read_json(run / "metrics.json", what="a demo run's metrics")
    check(metrics, _METRICS_RULES, file=run / "metrics.json")
    meta = read_json(run / "report_meta.json", what="a demo run's report metadata")
    check(meta, _META_RULES, file=run / "report_meta.json")
    index = read_json(index_path, what="a demo run's figure index", top=list)
    figures = {}
    for i, entry in enumerate(index):
        check(entry, _ENTRY_RULES, file=index_path, path=f"[{i}]")
        path = confined(run / FIGURE_DIR, entry["file"], file=index_path, key=f"[{i}].file")
        try:
            figures[entry["title"]] = go.Figure(read_json(path, what="a plotly figure (JSON)"))
        except (TypeError, ValueError) as error:  # plotly refuses what is not a figure with a ValueError
            raise ValueError(f"{path} is not a plotly figure: {str(error)[:300]}") from None
    title = meta.get("title")
    return write_report(
        run,
        title=title if isinstance(title, str) and title else TITLE,
        provenance=meta["provenance"],
        headline=metrics["headline"],
        figures=figures,
        captions={title: _saved_caption(meta["captions"], title) for title in figures},
        examples=example_rows(metrics.get("examples", []), _groups(metrics)),
        tables=_comparison_tables(metrics),
    )


COMPARISON_TITLE = "Detectors side by side (AUROC; sahs-lens compare on the demo's prompts)"


def _comparison_tables(metrics: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The comparison table of a run whose metrics hold one (runs before the comparison have none)."""
    data = metrics.get("comparison")
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return {}
    return {COMPARISON_TITLE: comparison_table(data)}


def _saved_caption(captions: dict[str, Any], title: str) -> str:
    caption = captions.get(title)
    if isinstance(caption, str) and caption:
        return caption
    return "(This run saved no caption for this figure: it was written by an earlier sahs_lens.)"


def _groups(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``metrics["groups"]`` with each set's label checked (an unreadable label colours nothing)."""
    groups = metrics.get("groups", {})
    return {
        str(name): {"label": row.get("label")}
        for name, row in groups.items()
        if isinstance(row, dict) and row.get("label") in (0, 1) and not isinstance(row.get("label"), bool)
    }
