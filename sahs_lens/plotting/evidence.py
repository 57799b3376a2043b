"""Causal-evidence figures: what happens when heads are removed or transplanted.

``ablation_curve_figure`` (refusal and utility vs heads removed, safety vs random heads, the paper's
Fig. 5) and ``patching_map`` (the effect of transplanting each head's malicious output into benign
prompts, layers x heads).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from sahs_lens.interventions import AblationCurve, PatchingResult
from sahs_lens.plotting.style import (
    CONTEXT_COLOR,
    HIGHLIGHT_COLOR,
)


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
                error_y=_spread(rows),
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
            util = np.array(curve.random_utility)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[curve.baseline_utility, *util.mean(0)],
                    mode="lines+markers",
                    name=f"utility, random heads removed (mean of {len(util)})",
                    line={"color": CONTEXT_COLOR, "dash": "dot"},
                    error_y=_spread(util),
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
                    error_y=_spread(np.array(curve.random_asr)),
                )
            )
    fig.update_layout(
        title=f"Removing heads ({curve.mode} ablation): refusal on malicious prompts, utility on benign",
        xaxis_title="heads removed (k)",
        yaxis_title="rate",
        yaxis_range=[-0.02, 1.02],
        legend={"orientation": "h", "y": -0.2},
        template="plotly_white",
    )
    fig.update_xaxes(tickvals=x)
    return fig


def _spread(rows: np.ndarray) -> dict[str, object]:
    """Error bars from the mean of ``rows [seeds, k]`` to their min and max, per k (none at the baseline)."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [0, *(rows.max(0) - rows.mean(0))],
        "arrayminus": [0, *(rows.mean(0) - rows.min(0))],
    }


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
        template="plotly_white",
    )
    fig.update_yaxes(autorange="reversed")
    return fig
