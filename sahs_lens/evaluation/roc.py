"""The ROC curve of a detector, and its operating point at a fixed false-positive rate.

A detector (the SAHs guard, a probe, a baseline) gives each prompt a score, higher meaning "more likely
malicious"; label 1 means malicious. Every threshold ``t`` flags the prompts with ``score >= t`` (the one
rule of ``sahs_lens.evaluation.metrics.flags``) and gives one point of the ROC curve: the fraction of
benign prompts flagged (FPR) against the fraction of malicious prompts caught (TPR). `roc_curve_points`
lists one point per distinct score, as ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

For deployment one number matters more than the curve: **how many attacks are caught when at most 1% (or
5%) of benign prompts may be blocked**. `tpr_at_fpr` answers it on the safe side: with ``n_neg`` benign
samples at most ``k = floor(max_fpr * n_neg)`` may be flagged, and benign samples tied at the cut are never
flagged, so ties can only lower the FPR, never push it over the target. No interpolation between points.

The input checks here (`_check_scores`) are shared by every detection metric: one value per sample, labels
0/1 (or bool), finite scores, both classes present; lists, numpy arrays and torch tensors are accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sahs_lens.evaluation.metrics import flags

__all__ = ["FloatArray", "IntArray", "roc_curve_points", "tpr_at_fpr"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _as_1d(values: Any, what: str) -> npt.NDArray[Any]:
    if hasattr(values, "detach"):  # a torch tensor, on any device and of any dtype
        tensor = values.detach().cpu()
        try:
            values = tensor.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            values = tensor.float().numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional (one value per sample); got shape {array.shape}")
    return array


def _check_scores(labels: Any, scores: Any) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    y = _as_1d(labels, "labels")
    s = _as_1d(scores, "scores")
    if y.shape != s.shape:
        raise ValueError(
            f"got {y.shape[0]} labels but {s.shape[0]} scores; give one score per labelled sample"
        )
    if y.size == 0:
        raise ValueError("labels and scores are empty; detection metrics need samples of both classes")
    if y.dtype != np.bool_:
        try:
            numeric = y.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"labels must be 0/1 or bool; got values of dtype {y.dtype}") from None
        bad = np.unique(y[(numeric != 0) & (numeric != 1)])
        if bad.size:
            raise ValueError(
                f"labels must be 0 (benign) or 1 (malicious); found {bad[:5].tolist()}. "
                "Map your labels to 0/1."
            )
        y = numeric == 1
    try:
        s = s.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"scores must be numbers; got dtype {s.dtype}") from None
    if not np.isfinite(s).all():
        n_bad = int((~np.isfinite(s)).sum())
        raise ValueError(f"scores contain {n_bad} NaN or infinite value(s); fix or drop those samples first")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        only = "1 (malicious)" if n_pos else "0 (benign)"
        raise ValueError(
            f"all {y.size} labels are {only}; AUROC, FPR and TPR need both malicious (1) and benign (0) "
            "samples"
        )
    return y, s


def _allowed_false_positives(max_fpr: float, n_neg: int) -> int:
    """The largest k with k / n_neg <= max_fpr (exact in floating point, as a ROC curve compares)."""
    k = min(n_neg, max(0, math.floor(max_fpr * n_neg)))
    while k < n_neg and (k + 1) / n_neg <= max_fpr:
        k += 1
    while k > 0 and k / n_neg > max_fpr:
        k -= 1
    return k


@dataclass(frozen=True)
class _Ranked:
    """Scores reduced to ranks: distinct values (ascending) and each sample's index among them."""

    values: FloatArray
    pos: IntArray
    neg: IntArray

    @classmethod
    def build(cls, y: npt.NDArray[np.bool_], s: FloatArray) -> _Ranked:
        values, inverse = np.unique(s, return_inverse=True)
        inverse = inverse.astype(np.int64).reshape(-1)
        return cls(values=values, pos=inverse[y], neg=inverse[~y])


def tpr_at_fpr(labels: Any, scores: Any, max_fpr: float) -> tuple[float, float]:
    """The highest TPR reachable with an empirical FPR of at most ``max_fpr``, and its threshold.

    The rule, with ``n_neg`` benign samples: at most ``k`` false positives are allowed, ``k`` the largest
    integer with ``k / n_neg <= max_fpr``. Let ``v`` be the (k+1)-th highest benign score; the threshold
    flags exactly the scores **strictly above** ``v``. That is the empirical ``1 - max_fpr`` quantile of the
    benign scores taken on the safe side: when several benign samples tie at ``v`` none of them is flagged,
    so ties can only lower the FPR, never push it over the target. The TPR is the fraction of malicious
    scores above ``v``; it equals the best TPR among the points of ``sklearn.metrics.roc_curve`` with
    ``fpr <= max_fpr`` (no interpolation between points). With ``max_fpr >= 1`` everything is flagged.

    Returns:
        ``(tpr, threshold)``: flag ``score >= threshold`` to reach it. The threshold is the lowest observed
        score above ``v`` (as in ``roc_curve``), or the next float above ``v`` if no score is higher.

    >>> tpr_at_fpr([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.5, 0.9], max_fpr=0.25)
    (1.0, 0.5)
    >>> tpr_at_fpr([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.8, 0.5, 0.9], max_fpr=0.2)
    (0.5, 0.9)
    """
    y, s = _check_scores(labels, scores)
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be a rate between 0 and 1, e.g. 0.01 for 1%; got {max_fpr!r}")
    neg = np.sort(s[~y])[::-1]
    pos = s[y]
    k = _allowed_false_positives(max_fpr, neg.size)
    if k >= neg.size:
        return 1.0, float(s.min())
    v = neg[k]
    above = s[s > v]
    threshold = float(above.min()) if above.size else float(np.nextafter(v, np.inf))
    return float(flags(pos, threshold).mean()), threshold  # flags exactly the scores above v


def roc_curve_points(labels: Any, scores: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The ROC curve: one point per distinct score, as ``sklearn.metrics.roc_curve(drop_intermediate=False)``.

    Args:
        labels: ``[n]`` 0/1 or bool, 1 = malicious.
        scores: ``[n]`` detector scores, higher = more likely malicious.

    Returns:
        ``(fpr, tpr, thresholds)``, each ``[m + 1]`` for ``m`` distinct scores: thresholds descending, point
        i flags ``score >= thresholds[i]``; the first point is ``(0, 0)`` with threshold ``+inf``.

    >>> fpr, tpr, thr = roc_curve_points([0, 1, 1], [0.2, 0.2, 0.9])
    >>> fpr.tolist(), tpr.tolist(), thr.tolist()
    ([0.0, 0.0, 1.0], [0.0, 0.5, 1.0], [inf, 0.9, 0.2])
    """
    y, s = _check_scores(labels, scores)
    ranked = _Ranked.build(y, s)
    m = ranked.values.size
    tp = np.cumsum(np.bincount(ranked.pos, minlength=m)[::-1])
    fp = np.cumsum(np.bincount(ranked.neg, minlength=m)[::-1])
    zero = np.zeros(1)
    fpr = np.concatenate([zero, fp / float(ranked.neg.size)])
    tpr = np.concatenate([zero, tp / float(ranked.pos.size)])
    thresholds = np.concatenate([np.array([np.inf]), ranked.values[::-1]])
    return fpr, tpr, thresholds
