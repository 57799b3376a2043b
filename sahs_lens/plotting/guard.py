"""Guard figures: the detector's ROC curve with its operating point, and its scores per class or source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from sahs_lens.plotting.style import CONTEXT_COLOR, HIGHLIGHT_COLOR, group_color, group_order


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
        template="plotly_white",
    )
    return fig


def score_bins(scores: np.ndarray, size: float = 0.025) -> np.ndarray:
    """Bin edges of width ``size`` covering [0, 1] and every score outside it; the last bin is closed.

    ``np.histogram(scores, edges)`` counts a score equal to the last edge in the last bin, so every score
    is counted (a score of exactly 1.0 included).
    """
    lo = min(0.0, float(np.floor(scores.min() / size) * size)) if scores.size else 0.0
    hi = max(1.0, float(np.ceil(scores.max() / size) * size)) if scores.size else 1.0
    n = max(1, round((hi - lo) / size))
    return np.linspace(lo, hi, n + 1)


def score_histogram(
    labels: torch.Tensor | Sequence[int],
    scores: torch.Tensor | Sequence[float],
    threshold: float | None = None,
    groups: Sequence[str] | None = None,
    bin_size: float = 0.025,
) -> go.Figure:
    """Histogram of guard scores per class (or per ``groups``, e.g. set names), with the threshold marked.

    The counts are computed here (``numpy.histogram``, bins of ``bin_size`` from 0 to 1 with both ends
    included) and drawn as stacked bars (no group hides another, no colours mix), so each group's bars add
    up to the ``n`` its legend states: a score of exactly 0.0 or 1.0 lands in the first or last bin. Scores that are not finite are refused (a histogram
    cannot place them, and dropping them would hide data).

    Example::

        score_histogram(acts.labels, guard.score(acts), guard.threshold, groups=set_names(acts.sources))
    """
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"labels and scores must be one per prompt; got {y.shape} and {s.shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} of {s.size} scores are not finite; a histogram cannot place them")
    if bin_size <= 0:
        raise ValueError(f"bin_size must be positive; got {bin_size}")
    names = list(groups) if groups is not None else ["malicious" if v else "benign" for v in y]
    if len(names) != s.size:
        raise ValueError(f"groups must name every prompt: {len(names)} names for {s.size} scores")
    edges = score_bins(s, bin_size)
    centres = (edges[:-1] + edges[1:]) / 2
    last = len(edges) - 2
    pairs = list(zip(edges[:-1], edges[1:], strict=True))
    fig = go.Figure()
    for name in group_order(names):
        mask = np.array([n == name for n in names])
        counts, _ = np.histogram(s[mask], bins=edges)
        spans = [[float(a), float(b), ")" if i < last else "]"] for i, (a, b) in enumerate(pairs)]
        fig.add_trace(
            go.Bar(
                x=centres,
                y=counts,
                width=bin_size,
                name=f"{name} (n={int(mask.sum())})",
                marker={"color": group_color(name)},
                opacity=0.85,
                customdata=spans,
                hovertemplate=f"{name}<br>scores [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}%{{customdata[2]}}"
                "<br>%{y} prompts<extra></extra>",
            )
        )
    if threshold is not None:
        fig.add_vline(x=threshold, line={"color": "black", "dash": "dash"}, annotation_text="threshold")
    fig.update_layout(
        barmode="stack",
        bargap=0,
        legend={"traceorder": "normal"},
        title=f"Guard scores (probability of malicious), bins of {bin_size:g}",
        xaxis_title="score (the last bin includes 1.0)",
        yaxis_title="prompts per bin",
        template="plotly_white",
    )
    return fig
