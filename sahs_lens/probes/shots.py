"""Shot specs: how many training samples per class a few-shot probe gets.

A sweep is asked for shot counts the way a paper states them: ``16`` (samples per class), ``0.1`` or
``"10%"`` (a fraction of the training pool per class), ``"0.1%"``. `resolve_shots` turns each spec into a
count *per class*, with one rule: a fraction is taken of the *smaller* class of the pool, floored, at least
1, in exact rational arithmetic (``"29%"`` of 100 is 29, although ``0.29 * 100`` is ``28.999...`` in floating
point). The spec as given is kept next to the count (``ProbeSweep.shot_specs``), so a plot can say
"10% (4 per class)".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from fractions import Fraction

import numpy as np

__all__ = ["ShotSpec", "resolve_shots"]

ShotSpec = int | float | str
"""A shot count as given: an int (samples per class), a float in (0, 1) or a percentage string ("10%")."""

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def _fraction_of(spec: ShotSpec) -> Fraction | None:
    """The exact fraction a spec stands for ("10%" -> 1/10, 0.25 -> 1/4), or None for a plain count."""
    if isinstance(spec, bool):
        raise ValueError(f"a shot count must be an int, a fraction < 1 or a percentage string; got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        if spec < 1:
            raise ValueError(f"shot counts must be at least 1 sample per class; got {spec}")
        return None
    if isinstance(spec, (float, np.floating)):
        if not 0 < spec < 1:
            raise ValueError(
                f"a float shot spec is a fraction of the pool per class and must lie in (0, 1); got {spec!r}. "
                "Give counts as ints (e.g. 16) and fractions as 0.1 or '10%'"
            )
        return Fraction(repr(float(spec)))
    if isinstance(spec, str):
        match = _PERCENT.match(spec)
        if match is None:
            raise ValueError(
                f"cannot read shot spec {spec!r}; use an int count (16), a fraction (0.1) or a percentage "
                "string ('10%', '0.1%')"
            )
        frac = Fraction(match.group(1)) / 100
        if not 0 < frac <= 1:
            raise ValueError(f"a percentage shot spec must lie in (0%, 100%]; got {spec!r}")
        return frac
    raise ValueError(
        f"cannot read shot spec {spec!r} ({type(spec).__name__}); use an int, a float < 1 or "
        "a string like '10%'"
    )


def resolve_shots(shots: Iterable[ShotSpec], n_per_class: int) -> list[int]:
    """Turn shot specs into training samples *per class*.

    Rule: an int ``n`` means ``n`` per class. A fraction ``f`` (a float in (0, 1) or a string ``"p%"``)
    means ``max(1, floor(f * m))`` per class, where ``m = n_per_class`` is the size of the *smaller* class in
    the training pool; the product is taken in exact rational arithmetic, so ``"10%"`` of 40 is 4, never 3.

    Example:
        >>> resolve_shots([2, "10%", "0.1%", 0.25], n_per_class=40)
        [2, 4, 1, 10]
    """
    out = []
    for spec in shots:
        frac = _fraction_of(spec)
        out.append(int(spec) if frac is None else max(1, math.floor(frac * n_per_class)))
    return out


def _spec_text(spec: ShotSpec) -> str:
    return (
        spec.strip() if isinstance(spec, str) else repr(spec) if isinstance(spec, float) else str(int(spec))
    )
