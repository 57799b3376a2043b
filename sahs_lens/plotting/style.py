"""The figures' shared look: class and set colours, metric names, and how a title names heads and shots.

Every figure uses the same two class colours (malicious red, benign blue), grey for context, heads named
``L{layer}H{head}``, and a title that states the shot counts it averages over. A group of prompts (a class,
a held-out set such as "typographic attacks", or a source) has one colour wherever it is drawn:
``group_color`` is a fixed function of the group's name, never of the order the groups appear in, so the
report, the tutorials and a notebook colour "benign text" alike.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

from sahs_lens.heads import Head, HeadSet
from sahs_lens.probes import ProbeSweep, ShotSpec

MALICIOUS_COLOR = "#d62728"
BENIGN_COLOR = "#1f77b4"
HIGHLIGHT_COLOR = "#d62728"
CONTEXT_COLOR = "#9e9e9e"
METRIC_NAMES = {"accuracy": "accuracy", "auroc": "AUROC", "f1": "F1"}

SET_COLORS: dict[str, str] = {
    "malicious": MALICIOUS_COLOR,
    "benign": BENIGN_COLOR,
    "harmful text": MALICIOUS_COLOR,
    "typographic attacks": "#ff7f0e",
    "benign text": BENIGN_COLOR,
    "benign typographic": "#17becf",
}
"""The fixed colour of each class and of each set name the report uses (the demo's held-out sets)."""

SOURCE_SETS: dict[str, str] = {
    "advbench": "harmful text",
    "harmbench": "harmful text",
    "jailbreakbench": "harmful text",
    "safebench": "harmful text",
    "figstep": "typographic attacks",
    "alpaca": "benign text",
    "figstep-alpaca": "benign typographic",
}
"""The set name of each bundled source (``sahs_lens.data.BUNDLED_SETS``); other sources keep their name."""

_PALETTE = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79", "#637939")


def group_color(name: str) -> str:
    """The colour of a group of prompts: ``SET_COLORS`` for the known names, else one fixed by the name."""
    if name in SET_COLORS:
        return SET_COLORS[name]
    return _PALETTE[zlib.crc32(name.encode("utf-8")) % len(_PALETTE)]


def set_names(sources: Iterable[str]) -> list[str]:
    """The set name of each prompt: ``SOURCE_SETS`` of its source, else the source itself.

    Example:
        >>> set_names(["advbench", "figstep-alpaca", "mine"])
        ['harmful text', 'benign typographic', 'mine']
    """
    return [SOURCE_SETS.get(source, source) for source in sources]


def group_order(names: Iterable[str]) -> list[str]:
    """The distinct names, the known ones in ``SET_COLORS`` order first, the others as they first appear."""
    seen = list(dict.fromkeys(names))
    known = [name for name in SET_COLORS if name in seen]
    return known + [name for name in seen if name not in SET_COLORS]


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
