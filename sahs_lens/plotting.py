"""Plotly figures of the paper's kinds. Every function returns a ``plotly.graph_objects.Figure``; nothing is
shown or written, so figures work the same in a notebook (``fig.show()``), a report (``fig.to_html()``) and
a test.

Figures, by section:

* **Probe sweep** (where the risk signal lives):
  ``accuracy_heatmap`` (layers x heads, Fig. 2), ``shots_curve`` (accuracy vs training shots, Fig. 3),
  ``mean_std_scatter`` (accuracy vs its spread over draws, Fig. 4).
* **Feature geometry**: ``tsne_plot`` (t-SNE of the selected heads' concatenated features).
* **Causal evidence**: ``ablation_curve_figure`` (refusal and utility vs heads removed, safety vs random,
  Fig. 5), ``patching_map`` (effect of transplanting each head, layers x heads).
* **The guard**: ``roc_figure`` (ROC with the operating point), ``score_histogram`` (scores per class or
  source, threshold marked).

Conventions: layers on the y axis with layer 0 at the top (as ``imshow`` of a TransformerLens cache), heads
named ``L{layer}H{head}`` in every hover text, the shot counts a figure averages over stated in its title.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import plotly.graph_objects as go
import torch

from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import Head, HeadSet
from sahs_lens.interventions import AblationCurve, PatchingResult
from sahs_lens.probes import ProbeSweep, ShotSpec
from sahs_lens.ranking import rank_heads

__all__ = [
    "ablation_curve_figure",
    "accuracy_heatmap",
    "mean_std_scatter",
    "patching_map",
    "roc_figure",
    "score_histogram",
    "shots_curve",
    "tsne_plot",
]

MALICIOUS_COLOR = "#d62728"
BENIGN_COLOR = "#1f77b4"
HIGHLIGHT_COLOR = "#d62728"
CONTEXT_COLOR = "#9e9e9e"
_METRIC_NAMES = {"accuracy": "accuracy", "auroc": "AUROC", "f1": "F1"}


def _shots_text(sweep: ProbeSweep, at: ShotSpec | Sequence[ShotSpec] | None) -> str:
    """How a figure's title names the shot counts it shows: "4 shots/class" or "mean over 2-64 shots/class"."""
    idx = sweep.shot_indices(at)
    shots = sorted({sweep.shots[i] for i in idx})
    if len(idx) == 1:
        spec = sweep.shot_specs[idx[0]]
        given = f" ({spec})" if spec != str(shots[0]) else ""
        return f"{shots[0]} shots/class{given}"
    listed = ", ".join(str(n) for n in shots) if len(shots) <= 4 else f"{shots[0]}-{shots[-1]}"
    return f"averaged over {listed} shots/class"


def _as_heads(heads: HeadSet | Sequence[Head | tuple[int, int] | str] | str) -> HeadSet:
    return HeadSet.parse(heads) if isinstance(heads, str) else HeadSet(heads)


# =========================================================================================================
# Probe sweep figures
# =========================================================================================================


def accuracy_heatmap(
    sweep: ProbeSweep, at_shots: ShotSpec | Sequence[ShotSpec] | None = "all", metric: str = "accuracy"
) -> go.Figure:
    """Layers x heads heat map of the probe metric, mean over repeats (the paper's Fig. 2).

    Hover shows ``L12H5  mean 0.93  std 0.02`` (std over repeats). Colour runs from chance (0.5 for
    accuracy and AUROC) to 1.

    Args:
        sweep: a ``ProbeSweep``.
        at_shots: which shot count(s): ``"all"`` (default, the same average ``rank_heads`` scores), one
            shot count (``4`` or ``"10%"``), or a list.
        metric: ``"accuracy"``, ``"auroc"`` or ``"f1"``.

    Example::

        accuracy_heatmap(sweep, at_shots=4).show()
    """
    at_shots = "all" if at_shots is None else at_shots
    mean = sweep.mean(metric, at=at_shots).numpy()
    std = sweep.std(metric, at=at_shots).numpy()
    L, H = mean.shape
    name = _METRIC_NAMES[metric]
    hover = np.array(
        [
            [
                f"L{layer}H{head}<br>mean {mean[layer, head]:.3f}<br>std {std[layer, head]:.3f}"
                for head in range(H)
            ]
            for layer in range(L)
        ]
    )
    fig = go.Figure(go.Heatmap(
        z=mean, x=list(range(H)), y=list(range(L)), text=hover, hovertemplate="%{text}<extra></extra>",
        colorscale="Viridis", zmin=0.0 if metric == "f1" else 0.5, zmax=1.0,
        colorbar={"title": {"text": f"mean {name}"}},
    ))  # fmt: skip
    fig.update_layout(
        title=f"Probe {name} per head: mean over {sweep.repeats} repeats, {_shots_text(sweep, at_shots)}",
        xaxis_title="head", yaxis_title="layer", template="plotly_white",
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    return fig


def shots_curve(
    sweep: ProbeSweep,
    heads: HeadSet | Sequence[Head | tuple[int, int] | str] | str | None = None,
    k: int = 32,
    metric: str = "accuracy",
) -> go.Figure:
    """Probe metric vs training shots per class (log x axis) for a head set and for all heads (Fig. 3).

    Each line is the mean over the group's heads of each head's mean over repeats; the shaded band is
    +/- the group's typical (mean) per-head standard deviation over repeats, so a narrow band means
    heads whose probes agree from one random draw to the next.

    Args:
        sweep: a ``ProbeSweep``.
        heads: the heads to highlight (default: ``rank_heads(sweep, k=k)``).
        k: size of the default head set.
        metric: ``"accuracy"``, ``"auroc"`` or ``"f1"``.

    Example::

        shots_curve(sweep, rank_heads(sweep, k=32, criterion="stable")).show()
    """
    head_set = rank_heads(sweep, k=k) if heads is None else _as_heads(heads)
    head_set.check_fits(sweep.n_layers, sweep.n_heads)
    order = sorted(range(len(sweep.shots)), key=lambda i: sweep.shots[i])
    x = [sweep.shots[i] for i in order]
    mean = sweep.mean(metric)[order]  # [S, L, H]
    std = sweep.std(metric)[order]
    name = _METRIC_NAMES[metric]
    layers = torch.tensor([h.layer for h in head_set])
    idx = torch.tensor([h.head for h in head_set])
    groups = [
        (f"selected heads (k={len(head_set)})", mean[:, layers, idx], std[:, layers, idx], HIGHLIGHT_COLOR),
        (f"all heads ({sweep.n_layers * sweep.n_heads})", mean.flatten(1), std.flatten(1), CONTEXT_COLOR),
    ]
    fig = go.Figure()
    for label, m, s, color in groups:
        centre, spread = m.mean(1).numpy(), s.mean(1).numpy()
        fig.add_trace(go.Scatter(
            x=x + x[::-1], y=list(centre + spread) + list((centre - spread)[::-1]), fill="toself",
            fillcolor=_rgba(color, 0.18), line={"width": 0}, hoverinfo="skip", showlegend=False,
            legendgroup=label,
        ))  # fmt: skip
        fig.add_trace(go.Scatter(
            x=x, y=centre, mode="lines+markers", name=label, line={"color": color, "width": 2},
            legendgroup=label, customdata=np.stack([spread], 1),
            hovertemplate=f"{label}<br>%{{x}} shots/class<br>mean {name} %{{y:.3f}}<br>"
                          "typical std %{customdata[0]:.3f}<extra></extra>",
        ))  # fmt: skip
    if metric != "f1":
        fig.add_hline(
            y=0.5,
            line_dash="dot",
            line_color="black",
            annotation_text="chance",
            annotation_position="bottom right",
        )
    fig.update_layout(
        title=f"Probe {name} vs training shots ({sweep.repeats} repeats; band: +/- typical per-head std)",
        xaxis_title="training samples per class (log scale)", yaxis_title=f"held-out {name}",
        template="plotly_white", legend={"x": 0.01, "y": 0.99},
    )  # fmt: skip
    fig.update_xaxes(type="log", tickvals=sorted(set(x)), ticktext=[str(n) for n in sorted(set(x))])
    return fig


def mean_std_scatter(
    sweep: ProbeSweep,
    heads: HeadSet | Sequence[Head | tuple[int, int] | str] | str,
    at_shots: ShotSpec | Sequence[ShotSpec] | None = "all",
    metric: str = "accuracy",
) -> go.Figure:
    """Every head as a point: spread over repeats (x) vs mean over repeats (y); ``heads`` highlighted (Fig. 4).

    Safety heads sit in the top-left corner: accurate, and accurate on every draw.

    Args:
        sweep: a ``ProbeSweep``.
        heads: the heads to highlight (e.g. ``rank_heads(sweep, k=32, criterion="stable")``).
        at_shots: as in ``accuracy_heatmap``.
        metric: ``"accuracy"``, ``"auroc"`` or ``"f1"``.

    Example::

        mean_std_scatter(sweep, rank_heads(sweep, k=32), at_shots=4).show()
    """
    head_set = _as_heads(heads)
    head_set.check_fits(sweep.n_layers, sweep.n_heads)
    at_shots = "all" if at_shots is None else at_shots
    mean = sweep.mean(metric, at=at_shots).numpy()
    std = sweep.std(metric, at=at_shots).numpy()
    name = _METRIC_NAMES[metric]
    chosen = np.zeros(mean.shape, dtype=bool)
    for h in head_set:
        chosen[h.layer, h.head] = True
    fig = go.Figure()
    for label, mask, color, size in (
        ("other heads", ~chosen, CONTEXT_COLOR, 6),
        (f"selected heads (k={len(head_set)})", chosen, HIGHLIGHT_COLOR, 9),
    ):
        layers, idx = np.nonzero(mask)
        names = [f"L{layer}H{head}" for layer, head in zip(layers, idx, strict=True)]
        fig.add_trace(go.Scatter(
            x=std[mask], y=mean[mask], mode="markers", name=label, text=names,
            marker={"color": color, "size": size, "opacity": 0.55 if color == CONTEXT_COLOR else 0.95},
            hovertemplate="%{text}<br>mean %{y:.3f}<br>std %{x:.3f}<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(
        title=f"Probe {name}: mean vs std over {sweep.repeats} repeats, {_shots_text(sweep, at_shots)}",
        xaxis_title=f"std of {name} over repeats (lower = more stable)",
        yaxis_title=f"mean {name} over repeats", template="plotly_white",
    )  # fmt: skip
    return fig


# =========================================================================================================
# Feature geometry
# =========================================================================================================


def tsne_plot(
    acts: HeadActivations,
    heads: HeadSet | Sequence[Head | tuple[int, int] | str] | str,
    color_by: Literal["label", "source"] = "label",
    seed: int = 0,
    perplexity: float = 30.0,
) -> go.Figure:
    """t-SNE (scikit-learn) of the selected heads' concatenated features ``acts.features(heads)``.

    If the heads carry the risk signal, malicious and benign prompts form separate clouds; colouring by
    source shows whether the split follows the label or merely the dataset a prompt came from.

    Args:
        acts: the activations.
        heads: the heads whose ``hook_z`` outputs are concatenated (``len(heads) * d_head`` features).
        color_by: ``"label"`` (malicious / benign) or ``"source"``.
        seed: t-SNE's random state.
        perplexity: t-SNE perplexity; must be below the number of samples.

    Example::

        tsne_plot(acts, rank_heads(sweep, k=32), color_by="source").show()
    """
    from sklearn.manifold import TSNE

    if color_by not in ("label", "source"):
        raise ValueError(f"color_by must be 'label' or 'source'; got {color_by!r}")
    head_set = _as_heads(heads)
    n = acts.n_samples
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 samples; got {n}")
    if not 0 < perplexity < n:
        raise ValueError(
            f"perplexity must lie between 0 and the number of samples ({n}); got {perplexity}. "
            f"Pass e.g. perplexity={max(1.0, min(30.0, (n - 1) / 3)):.0f}"
        )
    acts.check_finite()
    features = acts.features(head_set).double().cpu().numpy()
    xy = TSNE(
        n_components=2, perplexity=perplexity, random_state=seed, init="pca", learning_rate="auto"
    ).fit_transform(features)
    labels = acts.labels.cpu().numpy()
    label_names = np.where(labels == 1, "malicious", "benign")
    if color_by == "label":
        groups = [("malicious", labels == 1, MALICIOUS_COLOR), ("benign", labels == 0, BENIGN_COLOR)]
    else:
        sources = np.array(acts.sources)
        palette = [
            "#1f77b4",
            "#ff7f0e",
            "#2ca02c",
            "#d62728",
            "#9467bd",
            "#8c564b",
            "#e377c2",
            "#7f7f7f",
            "#bcbd22",
            "#17becf",
        ]
        groups = [
            (str(src), sources == src, palette[i % len(palette)])
            for i, src in enumerate(dict.fromkeys(acts.sources))
        ]
    ids = np.array(acts.ids)
    sources_arr = np.array(acts.sources)
    fig = go.Figure()
    for label, mask, color in groups:
        if not mask.any():
            continue
        fig.add_trace(go.Scatter(
            x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=label, marker={"color": color, "size": 7,
                                                                             "opacity": 0.8},
            customdata=np.stack([ids[mask], sources_arr[mask], label_names[mask]], 1),
            hovertemplate="%{customdata[0]}<br>source %{customdata[1]}<br>%{customdata[2]}<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(
        title=f"t-SNE of {len(head_set)} heads' hook_z ({features.shape[1]} dims), coloured by {color_by}",
        xaxis_title="t-SNE 1", yaxis_title="t-SNE 2", template="plotly_white",
    )  # fmt: skip
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# =========================================================================================================
# Causal evidence and the guard
# =========================================================================================================


def ablation_curve_figure(curve: AblationCurve) -> go.Figure:
    """Refusal rate (and utility) vs number of heads removed: safety heads vs random heads (Fig. 5).

    Random heads are drawn once per seed; the line is their mean and the band their min-max range.
    """
    ks = list(curve.ks)
    x = [0, *ks]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[curve.baseline_refusal, *curve.safety_refusal],
            mode="lines+markers",
            name="refusal, top-k safety heads removed",
            line={"color": HIGHLIGHT_COLOR},
        )
    )
    if curve.random_refusal:
        rows = np.array(curve.random_refusal)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[curve.baseline_refusal, *rows.mean(0)],
                mode="lines+markers",
                name=f"refusal, k random heads removed (mean of {len(rows)})",
                line={"color": CONTEXT_COLOR},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [0, *(rows.max(0) - rows.mean(0))],
                    "arrayminus": [0, *(rows.mean(0) - rows.min(0))],
                },
            )
        )
    if curve.safety_utility is not None and curve.baseline_utility is not None:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[curve.baseline_utility, *curve.safety_utility],
                mode="lines+markers",
                name="utility, safety heads removed",
                line={"color": HIGHLIGHT_COLOR, "dash": "dot"},
            )
        )
        if curve.random_utility:
            util = np.array(curve.random_utility).mean(0)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[curve.baseline_utility, *util],
                    mode="lines+markers",
                    name="utility, random heads removed",
                    line={"color": CONTEXT_COLOR, "dash": "dot"},
                )
            )
    if curve.success != "not refused" and curve.baseline_asr is not None:  # a stricter ASR: show it too
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[curve.baseline_asr, *curve.safety_asr],
                mode="lines+markers",
                name=f"ASR ({curve.success}), safety heads removed",
                line={"color": HIGHLIGHT_COLOR, "dash": "dash"},
                marker={"symbol": "x"},
            )
        )
        if curve.random_asr:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[curve.baseline_asr, *curve.random_mean("asr")],
                    mode="lines+markers",
                    name=f"ASR ({curve.success}), random heads removed",
                    line={"color": CONTEXT_COLOR, "dash": "dash"},
                    marker={"symbol": "x"},
                )
            )
    fig.update_layout(
        title=f"Removing heads ({curve.mode} ablation): refusal on malicious prompts, utility on benign",
        xaxis_title="heads removed (k)",
        yaxis_title="rate",
        yaxis_range=[-0.02, 1.02],
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(tickvals=x)
    return fig


def patching_map(result: PatchingResult) -> go.Figure:
    """Heat map of the effect of patching each head alone (layers x heads), centred on zero."""
    effect = result.effect.float().numpy()
    bound = float(np.abs(effect).max()) or 1.0
    n_layers, n_heads = effect.shape
    text = [
        [f"L{layer}H{head}: {effect[layer, head]:+.3f}" for head in range(n_heads)]
        for layer in range(n_layers)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=effect,
            x=list(range(n_heads)),
            y=list(range(n_layers)),
            colorscale="RdBu_r",
            zmin=-bound,
            zmax=bound,
            text=text,
            hoverinfo="text",
            colorbar={"title": "effect"},
        )
    )
    fig.update_layout(
        title=f"Patching each head from malicious into benign prompts ({result.metric}; clean "
        f"{result.clean:+.2f})",
        xaxis_title="head",
        yaxis_title="layer",
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def roc_figure(
    labels: torch.Tensor | Sequence[int],
    scores: torch.Tensor | Sequence[float],
    threshold: float | None = None,
) -> go.Figure:
    """ROC curve of detector scores (label 1 = malicious), with the operating point at ``threshold``."""
    from sahs_lens.evaluation import detection_metrics, roc_curve_points

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    fpr, tpr, _ = roc_curve_points(y, s)
    auroc = detection_metrics(y, s, bootstrap=0).auroc.value
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=fpr, y=tpr, mode="lines", name=f"guard (AUROC {auroc:.3f})", line={"color": HIGHLIGHT_COLOR}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"color": CONTEXT_COLOR, "dash": "dash"}
        )
    )
    if threshold is not None:
        flagged = s >= threshold
        point_fpr = float(flagged[y == 0].mean()) if (y == 0).any() else 0.0
        point_tpr = float(flagged[y == 1].mean()) if (y == 1).any() else 0.0
        fig.add_trace(
            go.Scatter(
                x=[point_fpr],
                y=[point_tpr],
                mode="markers",
                name=f"threshold {threshold:.3g}",
                marker={"size": 11, "color": "black"},
            )
        )
    fig.update_layout(
        title="Guard ROC",
        xaxis_title="false-positive rate (benign flagged)",
        yaxis_title="true-positive rate (malicious flagged)",
        xaxis_range=[-0.01, 1.01],
        yaxis_range=[-0.01, 1.01],
    )
    return fig


def score_histogram(
    labels: torch.Tensor | Sequence[int],
    scores: torch.Tensor | Sequence[float],
    threshold: float | None = None,
    groups: Sequence[str] | None = None,
) -> go.Figure:
    """Histogram of guard scores per class (or per ``groups``, e.g. sources), with the threshold marked."""
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    names = list(groups) if groups is not None else ["malicious" if v else "benign" for v in y]
    fig = go.Figure()
    for name in dict.fromkeys(names):
        mask = np.array([n == name for n in names])
        fig.add_trace(
            go.Histogram(
                x=s[mask],
                name=f"{name} (n={int(mask.sum())})",
                opacity=0.65,
                xbins={"start": 0.0, "end": 1.0, "size": 0.025},
            )
        )
    if threshold is not None:
        fig.add_vline(x=threshold, line={"color": "black", "dash": "dash"}, annotation_text="threshold")
    fig.update_layout(
        barmode="overlay",
        title="Guard scores (probability of malicious)",
        xaxis_title="score",
        yaxis_title="prompts",
    )
    return fig
