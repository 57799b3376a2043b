"""Probe-sweep figures: where the risk signal lives, and how stable it is across training draws.

``accuracy_heatmap`` (layers x heads, the paper's Fig. 2), ``shots_curve`` (accuracy vs training shots,
Fig. 3), ``mean_std_scatter`` (accuracy vs its spread over draws, Fig. 4). Layers run down the y axis with
layer 0 at the top, as ``imshow`` of a TransformerLens cache shows them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from sahs_lens.heads import Head, HeadSet
from sahs_lens.plotting.style import (
    CONTEXT_COLOR,
    HIGHLIGHT_COLOR,
    METRIC_NAMES,
    as_heads,
    rgba,
    shots_text,
)
from sahs_lens.probes import ProbeSweep, ShotSpec
from sahs_lens.ranking import rank_heads


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
    name = METRIC_NAMES[metric]
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
        title=f"Probe {name} per head: mean over {sweep.repeats} repeats, {shots_text(sweep, at_shots)}",
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

    Each line is the mean over the group's heads of each head's mean over repeats; the shaded band (a
    filled area without markers) is +/- the group's typical (mean) per-head standard deviation over
    repeats, so a narrow band means heads whose probes agree from one random draw to the next. The legend
    sits below the plot, off the data.

    Args:
        sweep: a ``ProbeSweep``.
        heads: the heads to highlight (default: ``rank_heads(sweep, k=k)``).
        k: size of the default head set.
        metric: ``"accuracy"``, ``"auroc"`` or ``"f1"``.

    Example::

        shots_curve(sweep, rank_heads(sweep, k=32, criterion="stable")).show()
    """
    head_set = rank_heads(sweep, k=k) if heads is None else as_heads(heads)
    head_set.check_fits(sweep.n_layers, sweep.n_heads)
    order = sorted(range(len(sweep.shots)), key=lambda i: sweep.shots[i])
    x = [sweep.shots[i] for i in order]
    mean = sweep.mean(metric)[order]  # [S, L, H]
    std = sweep.std(metric)[order]
    name = METRIC_NAMES[metric]
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
            mode="lines", fillcolor=rgba(color, 0.18), line={"width": 0}, hoverinfo="skip",
            showlegend=False, legendgroup=label, name=f"{label}: +/- typical std",
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
        template="plotly_white", margin={"b": 110},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.18, "yanchor": "top"},
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
    head_set = as_heads(heads)
    head_set.check_fits(sweep.n_layers, sweep.n_heads)
    at_shots = "all" if at_shots is None else at_shots
    mean = sweep.mean(metric, at=at_shots).numpy()
    std = sweep.std(metric, at=at_shots).numpy()
    name = METRIC_NAMES[metric]
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
        title=f"Probe {name}: mean vs std over {sweep.repeats} repeats, {shots_text(sweep, at_shots)}",
        xaxis_title=f"std of {name} over repeats (lower = more stable)",
        yaxis_title=f"mean {name} over repeats", template="plotly_white",
    )  # fmt: skip
    return fig
