"""``report_for_run``: one offline HTML report of any run directory the CLI writes.

``sahs-lens extract``, ``probe``, ``ablate``, ``patch``, ``guard fit`` and ``guard eval`` each leave an
artifact (``sahs_lens.run_artifacts`` lists them and how each is read). ``report_for_run`` finds them in a
directory (the directory of one command, or a parent such as ``runs/`` holding several), reads them through
the strict readers, draws the figures that fit what is there, and writes ``report.html``
(``sahs_lens.report.write_report``: plotly embedded, every figure captioned):

- activations: the prompts per set and class; a t-SNE of the run's heads (a head set's or a guard's);
- a probe sweep: the accuracy heat map, accuracy vs shots and mean vs spread, its heads highlighted (the
  ``heads.json`` beside it, else the top heads by ``rank_heads(criterion="stable")``, as the caption says);
- a guard: its weight per head, and its ROC and score histogram on every activations directory of the run
  that fits it (captioned as in-sample when they may be the guard's training prompts);
- an ablation curve, a patching map, a guard evaluation's metrics with their confidence intervals.

>>> report_for_run("runs/probe")  # doctest: +SKIP
PosixPath('runs/probe/report.html')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from model_adapters.identity import IDENTITY_FIELDS, identity_mismatches
from sahs_lens import plotting
from sahs_lens._version import __version__
from sahs_lens.evaluation.detection import METRIC_LABELS
from sahs_lens.guard import SafetyHeadGuard
from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import HeadSet
from sahs_lens.ranking import rank_heads
from sahs_lens.report import write_report
from sahs_lens.run_artifacts import KINDS, Artifact, RunContents, find_artifacts, is_demo_run

__all__ = ["report_for_run"]

TSNE_MAX_SAMPLES = 3000
"""Activations with more prompts than this get no t-SNE (it would take minutes on a CPU)."""


def report_for_run(run_dir: str | Path, *, out: str | Path | None = None) -> Path:
    """Write ``report.html`` for a run directory of the CLI and return its path.

    Args:
        run_dir: a directory ``sahs-lens extract``, ``probe``, ``ablate``, ``patch``, ``guard fit`` or
            ``guard eval`` wrote into, or a parent holding several (searched two levels down).
        out: the directory to write ``report.html`` into (default: ``run_dir``).

    Raises:
        FileNotFoundError: ``run_dir`` is not a directory.
        ValueError: ``run_dir`` holds none of those artifacts (the message lists what was looked for), is a
            demo run (``sahs_lens.organism.demo.report_from_run`` rebuilds those), or an artifact fails
            its reader's checks (the message names the file).

    Example:
        >>> report_for_run("runs")  # doctest: +SKIP
        PosixPath('runs/report.html')
    """
    root = Path(run_dir)
    if is_demo_run(root):
        raise ValueError(
            f"{root} is a sahs-lens demo run; its report is rebuilt by "
            "sahs_lens.organism.demo.report_from_run (sahs-lens report --run does this)"
        )
    contents = find_artifacts(root)
    if not contents.artifacts:
        expected = "\n".join(f"  - {text}" for text in KINDS.values())
        raise ValueError(f"{root} holds no run that sahs-lens wrote; a run report reads:\n{expected}")
    figures: dict[str, go.Figure] = {}
    captions: dict[str, str] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    for artifact in contents.artifacts:
        _SECTIONS[artifact.kind](artifact, contents, figures, captions, tables)
    return write_report(
        root if out is None else Path(out),
        title=f"sahs-lens run report: {root.resolve().name}",
        intro=f"What {root} holds, read back from its files (nothing was re-run on a model).",
        headline_title="What this run holds",
        headline=[_summary(a, contents) for a in contents.artifacts]
        + [{"artifact": "not read", "path": _rel(p, contents), "what": why} for p, why in contents.skipped],
        provenance=_provenance(contents),
        figures=figures,
        captions=captions,
        tables=tables,
    )


# ---- one section per kind of artifact ------------------------------------------------------------------
Figures = dict[str, go.Figure]
Captions = dict[str, str]
Tables = dict[str, list[dict[str, Any]]]


def _add(figures: Figures, captions: Captions, title: str, figure: go.Figure, caption: str) -> None:
    figures[title] = figure
    captions[title] = caption


def _activations(a: Artifact, run: RunContents, figures: Figures, captions: Captions, tables: Tables) -> None:
    acts: HeadActivations = a.value
    where = run.where(a)
    _add(
        figures, captions, f"Prompts collected ({where})",
        plotting.sample_counts(plotting.set_names(acts.sources), acts.labels),
        f"Every prompt of the activations in {where} ({acts.n_samples}), by set (bundled sources named by "
        "their set, other sources as recorded) and class; the bars add up to all of them.",
    )  # fmt: skip
    heads, named = _run_heads(run, acts.n_layers, acts.n_heads)
    if heads is None or not 3 < acts.n_samples <= TSNE_MAX_SAMPLES:
        return
    perplexity = float(round(max(1.0, min(30.0, (acts.n_samples - 1) / 3)), 1))
    _add(
        figures, captions, f"t-SNE of {named} ({where})",
        plotting.tsne_plot(acts, heads, color_by="set", perplexity=perplexity),
        f"t-SNE (perplexity {perplexity:g}, seed 0) of the concatenated decision-position outputs of {named} "
        f"({len(heads)} heads) for every prompt in {where}, coloured by set; each set keeps its colour in "
        "every figure. t-SNE keeps neighbourhoods, not distances: separate clouds mean these heads tell the "
        "prompts apart, the gaps between clouds mean little.",
    )  # fmt: skip


def _sweep(a: Artifact, run: RunContents, figures: Figures, captions: Captions, tables: Tables) -> None:
    sweep = a.value
    where = run.where(a)
    paired = [
        h for h in run.of("head set")
        if h.path.parent in (a.path, a.path.parent) and _fits(h.value, sweep.n_layers, sweep.n_heads)
    ]  # fmt: skip
    if paired:
        heads, named = paired[0].value, f"the heads of {run.where(paired[0])}"
    else:
        k = min(32, sweep.n_layers * sweep.n_heads)
        heads = rank_heads(sweep, k=k, criterion="stable")
        named = f"the top {k} heads by rank_heads(criterion='stable') (no heads.json beside the sweep)"
    n_draws = f"{sweep.repeats} random draws per shot count"
    _add(
        figures, captions, f"Probe accuracy per head ({where})", plotting.accuracy_heatmap(sweep),
        f"Held-out accuracy of a logistic probe on each head's decision-position output, mean over {n_draws} "
        "and over the shot counts; layer 0 at the top. Chance is 0.5.",
    )  # fmt: skip
    _add(
        figures, captions, f"Accuracy vs training shots ({where})", plotting.shots_curve(sweep, heads=heads),
        f"Held-out probe accuracy against training prompts per class (log scale), for {named} (red) and all "
        "heads (grey): each line is the mean over the group's heads of each head's mean over "
        f"{n_draws}; the band is +/- the group's typical per-head standard deviation. Dotted: chance.",
    )  # fmt: skip
    _add(
        figures, captions, f"Mean vs standard deviation over repeats ({where})",
        plotting.mean_std_scatter(sweep, heads),
        f"Every head as one point: the standard deviation of its probe accuracy over {n_draws} (x) against "
        f"its mean (y), averaged over shot counts; {named} in red.",
    )  # fmt: skip


def _head_set(a: Artifact, run: RunContents, figures: Figures, captions: Captions, tables: Tables) -> None:
    heads: HeadSet = a.value
    tables[f"Heads ({run.where(a)})"] = [{"rank": i + 1, "head": str(h)} for i, h in enumerate(heads)]


def _guard(a: Artifact, run: RunContents, figures: Figures, captions: Captions, tables: Tables) -> None:
    guard: SafetyHeadGuard = a.value
    where = run.where(a)
    _add(
        figures, captions, f"Guard weight per head ({where})", plotting.guard_weights(guard),
        f"The L2 norm of each head's block of the guard's logistic-regression weight ({where}), heads in the "
        "guard's order. Norms compare heads only where their outputs have similar scales.",
    )  # fmt: skip
    tables[f"Guard ({where})"] = [
        {"setting": "heads", "value": str(guard.heads)},
        {"setting": "threshold (flagged when score >= threshold)", "value": guard.threshold},
        *({"setting": f"training: {k}", "value": _plain(v)} for k, v in guard.training.items()),
    ]
    for other in run.of("activations"):
        acts: HeadActivations = other.value
        try:
            guard.check_activations(acts)
        except ValueError:
            continue
        scores = guard.score(acts)
        on = run.where(other)
        n_train = guard.training.get("n_train")
        caveat = (
            f" These {acts.n_samples} prompts are as many as the guard was trained on: if they are its "
            "training prompts, these scores are in-sample and flatter it."
            if n_train == acts.n_samples
            else ""
        )
        if len(set(acts.labels.tolist())) == 2:
            _add(
                figures, captions, f"Guard ROC on {on} ({where})",
                plotting.roc_figure(acts.labels, scores, threshold=guard.threshold),
                f"ROC of the guard in {where} on the labelled prompts of {on}; the black dot is its threshold."
                + caveat,
            )  # fmt: skip
        _add(
            figures, captions, f"Guard scores on {on} ({where})",
            plotting.score_histogram(acts.labels, scores, guard.threshold, groups=plotting.set_names(acts.sources)),
            f"The score of every prompt of {on} under the guard in {where}, by set, in bins of 0.025 from 0 "
            "to 1 with both ends included, stacked, so each set's coloured segments add up to the n in its "
            "legend. Dashed: the threshold." + caveat,
        )  # fmt: skip


def _ablation(a: Artifact, run: RunContents, figures: Figures, captions: Captions, tables: Tables) -> None:
    curve = a.value
    where = run.where(a)
    seeds = f"mean over {len(curve.random_refusal)} draws, bars: min-max" if curve.random_refusal else "none"
    _add(
        figures, captions, f"Ablation: safety heads vs random heads ({where})",
        plotting.ablation_curve_figure(curve),
        f"Refusal rate on the malicious prompts as the top-k heads of the run ({curve.heads or 'as given'}), "
        f"or k random heads ({seeds}), are removed ({curve.mode} ablation); utility on the benign prompts "
        "when they were given. k = 0: nothing removed.",
    )  # fmt: skip


def _patching(a: Artifact, run: RunContents, figures: Figures, captions: Captions, tables: Tables) -> None:
    result = a.value
    where = run.where(a)
    _add(
        figures, captions, f"Patching map ({where})", plotting.patching_map(result),
        f"Change of the metric ({result.metric}; {result.clean:+.3f} unpatched) when one head's "
        "decision-position output is copied from the source prompts into the target prompts, mean over "
        "the prompt pairs; layer 0 at the top, red: the patch raises the metric.",
    )  # fmt: skip


def _evaluation(a: Artifact, run: RunContents, figures: Figures, captions: Captions, tables: Tables) -> None:
    data = a.value
    where = run.where(a)
    n = f"{data['n_positive']} malicious and {data['n_negative']} benign prompts"
    ci = (
        f"{data.get('ci', 0.95):.0%} intervals of a {data.get('ci_method', 'bootstrap')} ({data['bootstrap']} "
        "replicates)"
        if data.get("bootstrap")
        else "no confidence intervals (no bootstrap)"
    )
    _add(
        figures, captions, f"Guard detection metrics ({where})", plotting.detection_bars(data["metrics"]),
        f"The guard's detection metrics on {n} ({where}); accuracy, F1, precision, TPR and FPR at threshold "
        f"{data['threshold']:.3g}, AUROC and TPR at a fixed FPR over all thresholds; {ci}.",
    )  # fmt: skip
    tables[f"Guard evaluation metrics ({where})"] = [
        {"metric": METRIC_LABELS.get(k, k), "value": e["value"], "low": e.get("low"),
         "high": e.get("high")}
        for k, e in data["metrics"].items()
    ]  # fmt: skip


_SECTIONS = {
    "activations": _activations,
    "probe sweep": _sweep,
    "head set": _head_set,
    "guard": _guard,
    "ablation": _ablation,
    "patching": _patching,
    "guard evaluation": _evaluation,
}


# ---- the tables at the top ----------------------------------------------------------------------------
def _fits(heads: HeadSet, n_layers: int, n_heads: int) -> bool:
    return all(h.layer < n_layers and h.head < n_heads for h in heads)


def _run_heads(run: RunContents, n_layers: int, n_heads: int) -> tuple[HeadSet | None, str]:
    """The run's heads for a t-SNE: the first head set that fits, else the first guard's heads."""
    for a in run.of("head set"):
        if _fits(a.value, n_layers, n_heads):
            return a.value, f"the heads of {run.where(a)}"
    for a in run.of("guard"):
        if _fits(a.value.heads, n_layers, n_heads):
            return a.value.heads, f"the heads of the guard in {run.where(a)}"
    return None, ""


def _plain(value: Any) -> Any:
    """A setting as the table shows it: a bool as the words yes / no, uncoloured (it is no verdict)."""
    return ("yes" if value else "no") if isinstance(value, bool) else value


def _rel(path: Path, run: RunContents) -> str:
    return path.relative_to(run.root).as_posix() if path != run.root else "."


def _summary(a: Artifact, run: RunContents) -> dict[str, Any]:
    v = a.value
    if a.kind == "activations":
        n_mal = int(v.labels.sum())
        what = (
            f"{v.n_samples} prompts ({n_mal} malicious, {v.n_samples - n_mal} benign); {v.n_layers} layers x "
            f"{v.n_heads} heads x d_head {v.d_head}; data {v.provenance.get('dataset', 'not recorded')}"
        )
    elif a.kind == "probe sweep":
        what = f"shots/class {v.shots}, {v.repeats} repeats, metrics {', '.join(v.metrics)}, seed {v.seed}"
    elif a.kind == "head set":
        what = f"{len(v)} heads: {', '.join(v.to_list()[:8])}{' ...' if len(v) > 8 else ''}"
    elif a.kind == "guard":
        what = f"{len(v.heads)} heads, threshold {v.threshold:.3g}, trained on {v.training.get('n_train', '?')} prompts"
    elif a.kind == "ablation":
        what = f"ks {v.ks}; refusal {v.baseline_refusal:.3f} with nothing removed"
    elif a.kind == "patching":
        what = f"{v.effect.shape[0]} layers x {v.effect.shape[1]} heads; unpatched {v.metric} {v.clean:+.3f}"
    else:
        auroc = v["metrics"].get("auroc", {}).get("value", float("nan"))
        what = f"AUROC {auroc:.3f} on {v['n_positive']} malicious, {v['n_negative']} benign prompts"
    return {"artifact": a.kind, "path": run.where(a), "what": what}


def _provenance(run: RunContents) -> dict[str, Any]:
    """The model the run's artifacts record, whether they all agree on it, and the versions."""
    records = [
        (run.where(a), a.value.provenance)
        for a in run.artifacts
        if a.kind in ("activations", "probe sweep", "guard") and a.value.provenance
    ]
    facts: dict[str, Any] = {"run directory": str(run.root)}
    if records:
        first_where, first = records[0]
        for key in ("model_name", *IDENTITY_FIELDS, "dataset", "dtype"):
            if key in first:
                facts[key] = first[key]
        facts["recorded in"] = first_where
        disagree = [
            f"{where}: {'; '.join(diffs)}" for where, record in records[1:]
            if (diffs := identity_mismatches(first, record))
        ]  # fmt: skip
        facts["all artifacts from this model"] = "yes" if not disagree else "NO: " + " | ".join(disagree)
    else:
        facts["model"] = "not recorded (no activations, probe sweep or guard in this run)"
    facts["report written by sahs_lens"] = __version__
    return facts
