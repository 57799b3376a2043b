"""Figures of what a run holds: the prompts collected, a guard's weights, a guard's detection metrics.

``sample_counts`` (prompts per set and class: what an activations directory was collected on),
``guard_weights`` (how much of a guard's weight each of its heads carries) and ``detection_bars`` (the
metrics ``sahs-lens guard eval`` writes, with their confidence intervals). ``sahs_lens.run_report`` draws
them for the run directories of the CLI; like every figure here they return a plotly ``Figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from sahs_lens.evaluation.detection import METRIC_LABELS
from sahs_lens.guard import SafetyHeadGuard
from sahs_lens.plotting.style import BENIGN_COLOR, HIGHLIGHT_COLOR, MALICIOUS_COLOR, group_order


def sample_counts(
    groups: Sequence[str], labels: torch.Tensor | Sequence[int], *, title: str | None = None
) -> go.Figure:
    """Prompts per group (e.g. set name or source), split into malicious and benign, as stacked bars.

    The bars of all groups add up to ``len(labels)``: every prompt is counted once.

    Example::

        sample_counts(set_names(acts.sources), acts.labels)
    """
    y = np.asarray(labels, dtype=int)
    names = [str(g) for g in groups]
    if len(names) != y.size:
        raise ValueError(f"groups must name every prompt: {len(names)} names for {y.size} labels")
    order = group_order(names)
    names_arr = np.array(names)
    fig = go.Figure()
    for label, name, color in ((1, "malicious", MALICIOUS_COLOR), (0, "benign", BENIGN_COLOR)):
        counts = [int(((names_arr == g) & (y == label)).sum()) for g in order]
        fig.add_trace(
            go.Bar(
                x=order,
                y=counts,
                name=f"{name} (n={int((y == label).sum())})",
                marker={"color": color},
                hovertemplate=f"%{{x}}<br>{name}: %{{y}} prompts<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="stack",
        legend={"traceorder": "normal"},
        title=title or f"Prompts per set and class ({y.size} in all)",
        xaxis_title="set (or source)",
        yaxis_title="prompts",
        template="plotly_white",
    )
    return fig


def guard_weights(guard: SafetyHeadGuard) -> go.Figure:
    """The L2 norm of each head's block of the guard's logistic-regression weight, heads in guard order.

    A head with a large norm moves the score most per unit of its output; the norms are only comparable
    between heads whose outputs have similar scales (the guard is fitted on raw ``hook_z`` unless it was
    fitted with ``standardize=True``).
    """
    blocks = guard.weight.reshape(len(guard.heads), guard.d_head)
    norms = blocks.norm(dim=1).tolist()
    names = guard.heads.to_list()
    fig = go.Figure(
        go.Bar(
            x=names,
            y=norms,
            marker={"color": HIGHLIGHT_COLOR},
            name="weight norm",
            hovertemplate="%{x}<br>|w| %{y:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Guard weight per head ({len(names)} heads, threshold {guard.threshold:.3g})",
        xaxis_title="head (guard order)",
        yaxis_title="L2 norm of the head's weights",
        template="plotly_white",
    )
    return fig


def detection_bars(metrics: Mapping[str, Any], *, title: str | None = None) -> go.Figure:
    """Each detection metric (``DetectionMetrics.to_dict()["metrics"]``) as a bar, with its CI when known.

    A metric that could not be computed (NaN, e.g. AUROC with one class) is drawn as no bar and named so
    in its hover text and tick label.

    Example::

        detection_bars(detection_metrics(labels, scores).to_dict()["metrics"])
    """
    names, values, plus, minus = [], [], [], []
    for key, estimate in metrics.items():
        value = float(estimate["value"])
        low, high = estimate.get("low"), estimate.get("high")
        finite = np.isfinite(value)
        names.append(METRIC_LABELS.get(key, key) + ("" if finite else " (n/a)"))
        values.append(value if finite else None)
        has_ci = finite and low is not None and high is not None
        plus.append(float(high) - value if has_ci else 0.0)
        minus.append(value - float(low) if has_ci else 0.0)
    fig = go.Figure(
        go.Bar(
            x=names,
            y=values,
            marker={"color": HIGHLIGHT_COLOR},
            error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
            name="metric",
            hovertemplate="%{x}<br>%{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or "Guard detection metrics",
        xaxis_title="metric",
        yaxis_title="value (bars: confidence interval, when bootstrapped)",
        yaxis_range=[0, 1.05],
        template="plotly_white",
    )
    return fig
