"""One metric stack with one threshold rule: batched accuracy, F1 and AUROC for any batch of score rows.

**The rule.** A detector gives each prompt a score, higher meaning "more likely malicious": a probe's
margin ``x . w + b``, the guard's probability, a baseline's score. It *flags* a prompt as malicious when

    score >= threshold                                                          (`flags`)

and every thresholded metric goes through `flags`: the accuracy and F1 here, the fixed-threshold accuracy,
F1, precision, TPR and FPR of ``detection_metrics``, the thresholds that ``tpr_at_fpr`` and
``roc_curve_points`` report, and the hard labels of a fitted probe (``ProbeFit.predict``); the guard
(``SafetyHeadGuard``) flags by the same rule. A probe's margin is thresholded at 0, which is probability
0.5: the same decision as its probability thresholded at 0.5. (scikit-learn's ``predict`` flags
``margin > 0``; the two differ only for scores exactly at the threshold.)

**Batched.** A few-shot sweep scores 20 repeats x 1,024 heads per shot count, each on its own held-out
set, so the metrics here take ``scores [..., n]`` (any batch shape, samples last) and labels that broadcast
against them, and return one value per row with no Python loop over rows. `auroc` is threshold-free:
the Mann-Whitney statistic with ties counted one half, equal to ``sklearn.metrics.roc_auc_score`` and to
the AUROC of ``detection_metrics``.

>>> scores = torch.tensor([[0.1, 0.6, 0.4, 0.9], [0.0, 0.0, 0.0, 0.0]])
>>> labels = torch.tensor([0, 0, 1, 1])
>>> accuracy(scores, labels, threshold=0.5).tolist(), auroc(scores, labels).tolist()
([0.5, 0.5], [0.75, 0.5])
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import numpy.typing as npt
import torch
from jaxtyping import Bool, Float, Shaped
from torch import Tensor

__all__ = ["accuracy", "auroc", "f1", "flags"]


@overload
def flags(scores: Float[Tensor, "*batch"], threshold: float) -> Bool[Tensor, "*batch"]: ...
@overload
def flags(scores: npt.NDArray[Any], threshold: float) -> npt.NDArray[np.bool_]: ...
def flags(
    scores: Float[Tensor, "*batch"] | npt.NDArray[Any], threshold: float
) -> Bool[Tensor, "*batch"] | npt.NDArray[np.bool_]:
    """Which scores are flagged as malicious: ``scores >= threshold``, elementwise. The one threshold rule.

    Works on torch tensors and numpy arrays alike (a bool tensor / array of the same shape comes back).

    >>> flags(torch.tensor([-1.0, 0.0, 2.0]), 0.0).tolist()
    [False, True, True]
    """
    return scores >= threshold


def accuracy(
    scores: Float[Tensor, "*batch sample"], labels: Shaped[Tensor, "*#batch sample"], threshold: float
) -> Float[Tensor, "*batch"]:
    """Fraction of samples with ``flags(score, threshold) == label`` along the last axis.

    ``labels``: 1 (or True) = malicious, broadcastable against ``scores``. A probe's margins use
    ``threshold=0.0``.
    """
    return (flags(scores, threshold) == labels.bool()).float().mean(-1)


def f1(
    scores: Float[Tensor, "*batch sample"], labels: Shaped[Tensor, "*#batch sample"], threshold: float
) -> Float[Tensor, "*batch"]:
    """F1 of the malicious class (label 1) along the last axis, flagging ``score >= threshold``.

    0 where a row has neither a positive sample nor a flagged one (scikit-learn's ``zero_division=0``).
    """
    pred = flags(scores, threshold)
    truth = labels.bool()
    tp = (pred & truth).sum(-1).float()
    fp = (pred & ~truth).sum(-1).float()
    fn = (~pred & truth).sum(-1).float()
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))


def auroc(
    scores: Float[Tensor, "*batch sample"], labels: Shaped[Tensor, "*#batch sample"]
) -> Float[Tensor, "*batch"]:
    """Rank-based (Mann-Whitney) AUROC along the last axis, ties counted one half, for any batch shape.

    ``labels`` broadcasts against ``scores``. One sort per row gives the ranks; in the rows that hold tied
    scores (rare for continuous margins, but a dead head scores every sample alike) each tie group gets its
    average rank, by a cumulative max/min over the sorted order. No Python loop over rows. NaN where a row
    lacks one of the classes.
    """
    shape, n = scores.shape[:-1], scores.shape[-1]
    ordered, order = scores.reshape(-1, n).sort(-1)
    lab = labels.bool().expand(*shape, n).reshape(-1, n).gather(-1, order)
    ranks = torch.arange(1, n + 1, device=scores.device, dtype=torch.float64).expand(ordered.shape)
    rank_sum = (ranks * lab).sum(-1)
    tied = (ordered[:, 1:] == ordered[:, :-1]).any(-1)
    if bool(tied.any()):
        rank_sum[tied] = (_mid_ranks(ordered[tied]) * lab[tied]).sum(-1)
    n_pos = lab.sum(-1).double()
    u = rank_sum - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * (n - n_pos))).float().reshape(shape)


def _mid_ranks(ordered: Tensor) -> Tensor:
    """1-based ranks of sorted rows ``[B, n]`` where each group of equal values gets its average rank."""
    n = ordered.shape[-1]
    idx = torch.arange(n, device=ordered.device).expand_as(ordered)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, idx, torch.zeros_like(idx)).cummax(-1).values
    last = torch.where(ends, idx, torch.full_like(idx, n - 1)).flip(-1).cummin(-1).values.flip(-1)
    return (first + last).double() / 2 + 1
