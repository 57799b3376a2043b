"""Feature geometry: a t-SNE of the selected heads' concatenated decision-position features.

If the safety heads carry the risk signal, malicious and benign prompts form separate groups in their
features, while a random set of heads mixes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import plotly.graph_objects as go

from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import Head, HeadSet
from sahs_lens.plotting.style import as_heads, group_color, group_order, set_names


def tsne_plot(
    acts: HeadActivations,
    heads: HeadSet | Sequence[Head | tuple[int, int] | str] | str,
    color_by: Literal["label", "source", "set"] = "label",
    seed: int = 0,
    perplexity: float = 30.0,
    groups: Sequence[str] | None = None,
) -> go.Figure:
    """t-SNE (scikit-learn) of the selected heads' concatenated features ``acts.features(heads)``.

    If the heads carry the risk signal, malicious and benign prompts form separate clouds; colouring by
    set or source shows whether the split follows the label or merely the dataset a prompt came from.
    Each group keeps one colour in every figure (``style.group_color``: fixed by its name).

    Args:
        acts: the activations.
        heads: the heads whose ``hook_z`` outputs are concatenated (``len(heads) * d_head`` features).
        color_by: ``"label"`` (malicious / benign), ``"set"`` (the set names of the bundled sources, e.g.
            "harmful text", "typographic attacks": ``style.set_names``) or ``"source"`` (as recorded).
        seed: t-SNE's random state.
        perplexity: t-SNE perplexity; must be below the number of samples.
        groups: one group name per sample, overriding ``color_by`` (e.g. the held-out set of each prompt).

    Example::

        tsne_plot(acts, rank_heads(sweep, k=32), color_by="set").show()
    """
    from sklearn.manifold import TSNE

    if color_by not in ("label", "source", "set"):
        raise ValueError(f"color_by must be 'label', 'set' or 'source'; got {color_by!r}")
    head_set = as_heads(heads)
    n = acts.n_samples
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 samples; got {n}")
    if not 0 < perplexity < n:
        raise ValueError(
            f"perplexity must lie between 0 and the number of samples ({n}); got {perplexity}. "
            f"Pass e.g. perplexity={max(1.0, min(30.0, (n - 1) / 3)):.0f}"
        )
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups must name every sample: {len(groups)} names for {n} samples")
    acts.check_finite()
    features = acts.features(head_set).double().cpu().numpy()
    xy = TSNE(
        n_components=2, perplexity=perplexity, random_state=seed, init="pca", learning_rate="auto"
    ).fit_transform(features)
    labels = acts.labels.cpu().numpy()
    label_names = np.where(labels == 1, "malicious", "benign")
    if groups is not None:
        names, by = [str(g) for g in groups], "group"
    elif color_by == "label":
        names, by = list(label_names), "label"
    elif color_by == "set":
        names, by = set_names(acts.sources), "set"
    else:
        names, by = list(acts.sources), "source"
    names_arr = np.array(names)
    ids = np.array(acts.ids)
    sources_arr = np.array(acts.sources)
    fig = go.Figure()
    for label in group_order(names):
        mask = names_arr == label
        fig.add_trace(go.Scatter(
            x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=f"{label} (n={int(mask.sum())})",
            marker={"color": group_color(label), "size": 7, "opacity": 0.8},
            customdata=np.stack([ids[mask], sources_arr[mask], label_names[mask]], 1),
            hovertemplate="%{customdata[0]}<br>source %{customdata[1]}<br>%{customdata[2]}<extra></extra>",
        ))  # fmt: skip
    fig.update_layout(
        title=f"t-SNE of {len(head_set)} heads' hook_z ({features.shape[1]} dims), coloured by {by}",
        xaxis_title="t-SNE 1", yaxis_title="t-SNE 2", template="plotly_white",
    )  # fmt: skip
    return fig
