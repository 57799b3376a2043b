"""Guard figures: the detector's ROC curve with its operating point, and its scores per class or source."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from sahs_lens.plotting.style import (
    CONTEXT_COLOR,
    HIGHLIGHT_COLOR,
)


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
