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
  set, threshold marked; every score counted, 0.0 and 1.0 included), ``guard_weights`` (weight per head),
  ``detection_bars`` (detection metrics with their confidence intervals).
* **What a run holds**: ``sample_counts`` (prompts per set and class).
* **Detectors side by side** (a ``compare.json`` dictionary): ``auroc_heatmap`` (detector x (train -> test)
  pair, transfer marked), ``roc_curves`` (every detector on one pair), ``cost_figure`` (ms per prompt
  against AUROC).

Conventions: layers on the y axis with layer 0 at the top (as ``imshow`` of a TransformerLens cache), heads
named ``L{layer}H{head}`` in every hover text, the shot counts a figure averages over stated in its title,
every figure titled and both axes labelled. A group of prompts has one colour everywhere (``group_color``,
fixed by the group's name: ``SET_COLORS`` for the classes and the demo's held-out sets); ``set_names`` turns
the bundled sources into those set names.
"""

from sahs_lens.plotting.compare import auroc_heatmap, cost_figure, roc_curves
from sahs_lens.plotting.evidence import ablation_curve_figure, patching_map
from sahs_lens.plotting.geometry import tsne_plot
from sahs_lens.plotting.guard import roc_figure, score_histogram
from sahs_lens.plotting.style import (
    BENIGN_COLOR,
    CONTEXT_COLOR,
    HIGHLIGHT_COLOR,
    MALICIOUS_COLOR,
    SET_COLORS,
    group_color,
    set_names,
)
from sahs_lens.plotting.summary import detection_bars, guard_weights, sample_counts
from sahs_lens.plotting.sweeps import accuracy_heatmap, mean_std_scatter, shots_curve

__all__ = [
    "BENIGN_COLOR",
    "CONTEXT_COLOR",
    "HIGHLIGHT_COLOR",
    "MALICIOUS_COLOR",
    "SET_COLORS",
    "ablation_curve_figure",
    "accuracy_heatmap",
    "auroc_heatmap",
    "cost_figure",
    "detection_bars",
    "group_color",
    "guard_weights",
    "mean_std_scatter",
    "patching_map",
    "roc_curves",
    "roc_figure",
    "sample_counts",
    "score_histogram",
    "set_names",
    "shots_curve",
    "tsne_plot",
]
