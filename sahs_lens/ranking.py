"""From a probe sweep to the safety heads: score every head, keep the top k.

A ``ProbeSweep`` holds, for every head, a held-out probe metric for every shot count and every random draw
(``accuracy[shot, repeat, layer, head_index]``). Safety heads are the heads whose probes are *accurate* and
*stay* accurate when the training set shrinks to a few examples: accurate on average over draws, and with a
small spread between draws. Two scores capture this:

* ``criterion="mean"``: the mean over repeats (what the paper's code ranks by);
* ``criterion="stable"``: ``mean - lam * std`` over repeats, a lower-confidence-style score that demotes a
  head that is right on average but swings from draw to draw (``lam = 0.5`` follows a paper of the same
  group). A decoy that becomes accurate only with many samples, or whose few-shot accuracy depends on a lucky
  draw, loses to a head that is right every time.

**Which shot counts.** ``at_shots="all"`` (the default) averages the per-shot score over every shot count
of the sweep. With log-spaced shots (2, 4, ..., 64) this is the area under the score-vs-log(shots) curve:
it rewards exactly the property the paper describes (accuracy that survives as data shrinks), it does not
hinge on the single noisiest point (the smallest shot count, where every head is close to chance on some
draws), and it is not saturated like the largest one (where more than half of all heads exceed 80%).
To reproduce the paper's code (heads found at one data budget), pass that shot count, e.g.
``at_shots="0.1%"`` or ``at_shots=4``.

Ties are broken by position: the lower layer first, then the lower head index, so a ranking is
deterministic. ``random_heads`` draws the random-head baselines that ablation results are compared against.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from sahs_lens.heads import Head, HeadSet
from sahs_lens.probes import ProbeSweep, ShotSpec

__all__ = ["CRITERIA", "head_scores", "random_heads", "rank_heads"]

Criterion = Literal["mean", "stable"]
CRITERIA = ("mean", "stable")


def head_scores(
    sweep: ProbeSweep,
    criterion: Criterion = "mean",
    lam: float = 0.5,
    at_shots: ShotSpec | Sequence[ShotSpec] | None = "all",
    metric: str = "accuracy",
) -> Float[Tensor, "layer head_index"]:
    """The ranking score of every head, ``[n_layers, n_heads]`` (higher is better).

    For each chosen shot count the score is the mean over repeats (``"mean"``) or ``mean - lam * std``
    over repeats (``"stable"``; ``std`` with ``n - 1``), then averaged over the chosen shot counts.

    Args:
        sweep: a ``ProbeSweep``.
        criterion: ``"mean"`` or ``"stable"``.
        lam: weight of the standard deviation in ``"stable"`` (ignored by ``"mean"``).
        at_shots: ``"all"`` / None (every shot count), one shot count (resolved, e.g. ``4``, or as given,
            e.g. ``"10%"``), or a list of them.
        metric: ``"accuracy"``, ``"auroc"`` or ``"f1"`` (must have been computed by the sweep).

    Example::

        scores = head_scores(sweep, criterion="stable", at_shots=[2, 4])  # [n_layers, n_heads]
    """
    _check_criterion(criterion, lam)
    at = "all" if at_shots is None else at_shots
    mean = sweep.mean(metric, at=at)
    if criterion == "mean":
        return mean
    return mean - lam * sweep.std(metric, at=at)


def rank_heads(
    sweep: ProbeSweep,
    k: int = 32,
    criterion: Criterion = "mean",
    lam: float = 0.5,
    at_shots: ShotSpec | Sequence[ShotSpec] | None = "all",
    metric: str = "accuracy",
) -> HeadSet:
    """The ``k`` best heads by ``head_scores``, best first, as a ``HeadSet``.

    Ties go to the lower layer, then the lower head index. Heads whose score is NaN (e.g. an AUROC that
    could not be computed) rank last.

    Args:
        sweep: a ``ProbeSweep``.
        k: how many heads (the paper uses 32; its ablation sweep covers 4..64).
        criterion, lam, at_shots, metric: as in ``head_scores``; the default ranks by mean accuracy over
            repeats averaged over all shot counts (see the module docstring for why).

    Example::

        heads = rank_heads(sweep, k=32, criterion="stable")
        print(heads[:3])                                     # e.g. L12H5,L14H2,L3H0
    """
    _check_criterion(criterion, lam)
    n_heads = sweep.n_layers * sweep.n_heads
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int (how many heads to keep); got {k!r}")
    if k > n_heads:
        raise ValueError(
            f"k={k} but the sweep covers only {n_heads} heads ({sweep.n_layers} layers x {sweep.n_heads} heads); "
            f"use k <= {n_heads}"
        )
    scores = head_scores(sweep, criterion, lam, at_shots, metric).flatten().double()
    scores = torch.nan_to_num(scores, nan=-math.inf)
    order = torch.sort(scores, descending=True, stable=True).indices[: int(k)]
    return HeadSet(Head(*divmod(int(i), sweep.n_heads)) for i in order)


def random_heads(
    n_layers: int,
    n_heads: int,
    k: int,
    seed: int = 0,
    exclude: Iterable[Head | tuple[int, int] | str] | None = None,
) -> HeadSet:
    """``k`` heads drawn uniformly without replacement from a model's heads, minus ``exclude``.

    The set keeps the order of the draw, so any prefix is itself a uniform random subset (useful for
    ablation curves over k). The draw is a function of ``seed`` only.

    Args:
        n_layers, n_heads: the model's shape (``model.cfg.n_layers``, ``model.cfg.n_heads``).
        k: how many heads.
        seed: the random seed.
        exclude: heads never drawn (e.g. the safety heads, for a disjoint baseline).

    Example::

        baseline = random_heads(32, 32, k=32, seed=0, exclude=safety_heads)
    """
    for name, value in (("n_layers", n_layers), ("n_heads", n_heads)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int (how many heads to draw); got {k!r}")
    excluded = HeadSet(exclude) if exclude is not None else HeadSet()
    excluded.check_fits(int(n_layers), int(n_heads))
    banned = set(excluded)
    candidates = [
        Head(layer, head)
        for layer in range(int(n_layers))
        for head in range(int(n_heads))
        if Head(layer, head) not in banned
    ]
    if k > len(candidates):
        raise ValueError(
            f"cannot draw {k} random heads: the model has {n_layers * n_heads} heads and {len(banned)} are "
            f"excluded, leaving {len(candidates)}; ask for at most {len(candidates)}"
        )
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed))))
    picks = rng.choice(len(candidates), size=int(k), replace=False)
    return HeadSet(candidates[int(i)] for i in picks)


def _check_criterion(criterion: str, lam: float) -> None:
    if criterion not in CRITERIA:
        raise ValueError(
            f"unknown criterion {criterion!r}; choose 'mean' (mean over repeats) or 'stable' "
            "(mean - lam * std over repeats)"
        )
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be a finite number >= 0 (the weight of the std); got {lam!r}")
