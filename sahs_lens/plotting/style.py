"""The figures' shared look: class colours, metric names, and how a title names heads and shot counts.

Every figure uses the same two class colours (malicious red, benign blue), grey for context, heads named
``L{layer}H{head}``, and a title that states the shot counts it averages over.
"""

from __future__ import annotations

from collections.abc import Sequence

from sahs_lens.heads import Head, HeadSet
from sahs_lens.probes import ProbeSweep, ShotSpec

MALICIOUS_COLOR = "#d62728"
BENIGN_COLOR = "#1f77b4"
HIGHLIGHT_COLOR = "#d62728"
CONTEXT_COLOR = "#9e9e9e"
METRIC_NAMES = {"accuracy": "accuracy", "auroc": "AUROC", "f1": "F1"}


def shots_text(sweep: ProbeSweep, at: ShotSpec | Sequence[ShotSpec] | None) -> str:
    """How a figure's title names the shot counts it shows: "4 shots/class" or "mean over 2-64 shots/class"."""
    idx = sweep.shot_indices(at)
    shots = sorted({sweep.shots[i] for i in idx})
    if len(idx) == 1:
        spec = sweep.shot_specs[idx[0]]
        given = f" ({spec})" if spec != str(shots[0]) else ""
        return f"{shots[0]} shots/class{given}"
    listed = ", ".join(str(n) for n in shots) if len(shots) <= 4 else f"{shots[0]}-{shots[-1]}"
    return f"averaged over {listed} shots/class"


def as_heads(heads: HeadSet | Sequence[Head | tuple[int, int] | str] | str) -> HeadSet:
    return HeadSet.parse(heads) if isinstance(heads, str) else HeadSet(heads)


def rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
