"""Figures of a detector comparison: the AUROC heat map, ROC curves per test set, cost against AUROC.

Each figure reads the plain dictionary of ``compare.json`` (``Comparison.to_dict()``), so a saved
comparison can be drawn again without recomputing anything. Transfer pairs (a test set whose malicious
prompts come from a source or modality the training set lacks) are marked with a "T" in the heat map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = ["auroc_heatmap", "cost_figure", "roc_curves"]

_PALETTE = (
    "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#2ca02c", "#17becf", "#e377c2", "#bcbd22", "#1f77b4",
    "#7f7f7f", "#393b79", "#637939",
)  # fmt: skip


def _color(detectors: list[str], name: str) -> str:
    return _PALETTE[detectors.index(name) % len(_PALETTE)]


def _pairs(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for r in data["results"]:
        if (r["train"], r["test"]) not in seen:
            seen.append((r["train"], r["test"]))
    return seen


def _row(data: Mapping[str, Any], detector: str, train: str, test: str) -> dict[str, Any] | None:
    for r in data["results"]:
        if (r["detector"], r["train"], r["test"]) == (detector, train, test):
            return dict(r)
    return None


def auroc_heatmap(data: Mapping[str, Any]) -> go.Figure:
    """Detector x (training set -> test set): AUROC on a diverging scale centred on chance (0.5: white), so
    that below-chance cells (red) do not look like chance; blank where undefined."""
    detectors = list(data["detectors"])
    pairs = _pairs(data)
    z, text = [], []
    for d in detectors:
        zs, ts = [], []
        for train, test in pairs:
            r = _row(data, d, train, test)
            a = None if r is None else r["auroc"]
            zs.append(np.nan if a is None else a)
            mark = " T" if r is not None and r.get("transfer") else ""
            ts.append("n/a" if a is None else f"{a:.2f}{mark}")
        z.append(zs)
        text.append(ts)
    columns = [f"{train} -> {test}" for train, test in pairs]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=columns, y=detectors, text=text, texttemplate="%{text}", zmin=0.0, zmax=1.0, zmid=0.5,
            colorscale="RdBu", colorbar={"title": {"text": "AUROC (0.5: chance)"}},
            hovertemplate="%{y}<br>%{x}<br>AUROC %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title={"text": "AUROC of every detector on every (training set -> test set) pair (T: transfer)"},
        xaxis={"title": {"text": "training set -> test set"}, "tickangle": -35},
        yaxis={"title": {"text": "detector"}, "autorange": "reversed"},
        height=max(420, 32 * len(detectors) + 220),
        margin={"b": 170},
    )
    return fig


def roc_curves(data: Mapping[str, Any], train: str, test: str) -> go.Figure:
    """Every detector's ROC curve on one pair (chance is the diagonal)."""
    detectors = list(data["detectors"])
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#bbbbbb"})
    )
    for d in detectors:
        r = _row(data, d, train, test)
        if r is None or not r.get("roc"):
            continue
        fig.add_trace(
            go.Scatter(
                x=r["roc"]["fpr"], y=r["roc"]["tpr"], mode="lines", name=f"{d} ({r['auroc']:.3f})",
                line={"color": _color(detectors, d), "width": 3 if d == "sahs" else 1.5},
            )
        )  # fmt: skip
    fig.update_layout(
        title={"text": f"ROC curves, trained on {train}, tested on {test}"},
        xaxis={"title": {"text": "false-positive rate (benign prompts flagged)"}, "range": [0, 1]},
        yaxis={"title": {"text": "true-positive rate (malicious prompts flagged)"}, "range": [0, 1.02]},
        legend={"title": {"text": "detector (AUROC)"}},
    )
    return fig


def cost_figure(data: Mapping[str, Any]) -> go.Figure:
    """Per detector: mean AUROC over the pairs where it is defined against its ms per prompt (log scale)."""
    detectors = list(data["detectors"])
    fig = go.Figure()
    for d in detectors:
        rows = [r for r in data["results"] if r["detector"] == d]
        aurocs = [r["auroc"] for r in rows if r["auroc"] is not None]
        if not aurocs:
            continue
        ms = float(np.mean([r["ms_per_prompt"] for r in rows]))
        extra = rows[0]["extra_forwards"]
        fig.add_trace(
            go.Scatter(
                x=[max(ms, 1e-4)], y=[float(np.mean(aurocs))], mode="markers+text", name=d, text=[d],
                textposition="top center", marker={"size": 10 + 2 * min(extra, 10), "color": _color(detectors, d)},
                hovertemplate=f"{d}<br>%{{x:.3f}} ms per prompt<br>mean AUROC %{{y:.3f}}<br>{extra} extra forwards"
                "<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        title={"text": "Cost against AUROC (marker size: extra forward passes)"},
        xaxis={"title": {"text": "ms per prompt on top of the prefill forward (log scale)"}, "type": "log"},
        yaxis={"title": {"text": "mean AUROC over the measured pairs"}},
        showlegend=False,
    )
    return fig
