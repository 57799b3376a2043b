"""Detection metrics with bootstrap confidence intervals: how well a detector separates malicious prompts.

A detector (the SAHs guard, a probe, a baseline) gives each prompt a score; higher means "more likely
malicious" and label 1 means malicious. `detection_metrics` reports, each as an `Estimate` with a bootstrap
confidence interval:

- the threshold-free **AUROC** (the probability that a malicious prompt outscores a benign one, ties one
  half; equal to ``sklearn.metrics.roc_auc_score``);
- **TPR at 1% / 5% FPR**: how many attacks are caught when at most 1% / 5% of benign prompts may be
  blocked (``sahs_lens.evaluation.roc.tpr_at_fpr``'s safe-side rule);
- **accuracy, F1, precision, TPR and FPR at a fixed threshold**, flagging ``score >= threshold``: the one
  rule of ``sahs_lens.evaluation.metrics.flags``, shared with the probes' batched metrics.

**One code path for the estimate and its interval.** Scores are reduced to ranks once; every metric is then
a function of per-rank counts of positives and negatives. The point estimate is that function on the data's
counts; each bootstrap replicate is the same function on resampled counts, vectorised over replicates
(1000 replicates of 2,000 samples take well under a second). Replicates resample the malicious and the
benign samples separately (a *stratified* bootstrap), so every replicate has both classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sahs_lens.evaluation.metrics import flags
from sahs_lens.evaluation.roc import (
    FloatArray,
    IntArray,
    _allowed_false_positives,
    _check_scores,
    _Ranked,
    tpr_at_fpr,
)

__all__ = ["DetectionMetrics", "Estimate", "detection_metrics"]

# Bootstrap count matrices are built in chunks of at most this many cells, to bound memory.
_CHUNK_CELLS = 1 << 22


def _row_counts(ids: IntArray, m: int) -> IntArray:
    """Per row of ``ids`` [B, n], how many entries fall on each of ``m`` values -> [B, m]."""
    rows = ids.shape[0]
    offsets = (np.arange(rows, dtype=np.int64) * m)[:, None]
    return np.bincount((ids + offsets).ravel(), minlength=rows * m).reshape(rows, m)


_METRIC_NAMES = ("accuracy", "auroc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "f1", "precision", "tpr", "fpr")


def _metrics_from_counts(
    pos: IntArray, neg: IntArray, values: FloatArray, threshold: float
) -> dict[str, FloatArray]:
    """All metrics for B weighted samples at once.

    ``pos[b, i]`` / ``neg[b, i]`` count the positives / negatives of replicate b whose score is the i-th
    distinct value. Every metric is a function of these counts, so one code path serves the point estimate
    (B = 1, the data itself) and the bootstrap (B replicates).
    """
    n_pos = int(pos[0].sum())
    n_neg = int(neg[0].sum())
    # AUROC = P(score_pos > score_neg) + 0.5 P(equal)  (Mann-Whitney U), exact in integers.
    neg_below = np.cumsum(neg, axis=1) - neg
    u_twice = (pos * (2 * neg_below + neg)).sum(axis=1)
    auroc = u_twice / (2.0 * n_pos * n_neg)
    # Fixed threshold: the distinct values (ascending) that `flags` marks are a suffix, from index `first`.
    first = int(np.count_nonzero(~flags(values, threshold)))
    tp = pos[:, first:].sum(axis=1)
    fp = neg[:, first:].sum(axis=1)
    predicted = tp + fp
    out = {
        "auroc": auroc,
        "accuracy": (tp + (n_neg - fp)) / float(n_pos + n_neg),
        "tpr": tp / float(n_pos),
        "fpr": fp / float(n_neg),
        "precision": np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0),
        "f1": 2.0 * tp / (2.0 * tp + fp + (n_pos - tp)),
    }
    # TPR at a fixed FPR (see `tpr_at_fpr` for the rule).
    neg_at_or_above = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1]  # [B, m]: negatives with rank >= i
    pos_above = np.concatenate(
        [np.cumsum(pos[:, ::-1], axis=1)[:, ::-1][:, 1:], np.zeros((pos.shape[0], 1), dtype=pos.dtype)],
        axis=1,
    )  # [B, m]: positives with rank > i
    for name, target in (("tpr_at_1pct_fpr", 0.01), ("tpr_at_5pct_fpr", 0.05)):
        k = _allowed_false_positives(target, n_neg)
        # Rank of the (k+1)-th highest negative: the last i with at least k+1 negatives at or above it.
        cut = (neg_at_or_above >= k + 1).sum(axis=1) - 1
        out[name] = np.take_along_axis(pos_above, cut[:, None], axis=1)[:, 0] / float(n_pos)
    return out


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval (``low`` / ``high`` are ``None`` without bootstrap)."""

    value: float
    low: float | None = None
    high: float | None = None

    def __float__(self) -> float:
        return self.value

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        if self.low is None or self.high is None:
            return f"{self.value:.4f}"
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


METRIC_LABELS: dict[str, str] = {
    "accuracy": "accuracy",
    "auroc": "AUROC",
    "tpr_at_1pct_fpr": "TPR @ 1% FPR",
    "tpr_at_5pct_fpr": "TPR @ 5% FPR",
    "f1": "F1",
    "precision": "precision",
    "tpr": "TPR",
    "fpr": "FPR",
}
"""How each detection metric is named in tables and figures."""


@dataclass(frozen=True)
class DetectionMetrics:
    """What `detection_metrics` returns: each metric as an `Estimate`, plus how it was computed.

    ``accuracy``, ``f1``, ``precision``, ``tpr`` and ``fpr`` are at the fixed ``threshold`` (malicious when
    ``score >= threshold``); ``auroc`` and the ``tpr_at_*_fpr`` metrics do not depend on it.
    ``threshold_at_1pct_fpr`` / ``threshold_at_5pct_fpr`` are the thresholds (same ``>=`` rule) that reach
    ``tpr_at_1pct_fpr`` / ``tpr_at_5pct_fpr`` on these data.
    """

    accuracy: Estimate
    auroc: Estimate
    tpr_at_1pct_fpr: Estimate
    tpr_at_5pct_fpr: Estimate
    f1: Estimate
    precision: Estimate
    tpr: Estimate
    fpr: Estimate
    threshold: float
    threshold_at_1pct_fpr: float
    threshold_at_5pct_fpr: float
    n_positive: int
    n_negative: int
    bootstrap: int
    ci: float
    seed: int | None
    ci_method: str = field(default="stratified percentile bootstrap")

    def metrics(self) -> dict[str, Estimate]:
        """``{name: Estimate}`` for every metric, in display order."""
        return {name: getattr(self, name) for name in _METRIC_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: the metrics (value, low, high) and the settings that produced them."""
        return {
            "metrics": {name: est.to_dict() for name, est in self.metrics().items()},
            "threshold": self.threshold,
            "threshold_at_1pct_fpr": self.threshold_at_1pct_fpr,
            "threshold_at_5pct_fpr": self.threshold_at_5pct_fpr,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "bootstrap": self.bootstrap,
            "ci": self.ci,
            "seed": self.seed,
            "ci_method": self.ci_method,
        }

    def __str__(self) -> str:
        n = self.n_positive + self.n_negative
        header = f"Detection metrics: n = {n} ({self.n_positive} malicious, {self.n_negative} benign)"
        has_ci = self.bootstrap > 0
        ci_col = f"{self.ci:.0%} CI" if has_ci else ""
        lines = [header, f"{'metric':<16} {'value':>7}  {ci_col}".rstrip()]
        for name, est in self.metrics().items():
            label = METRIC_LABELS[name]
            if name in ("accuracy", "f1", "precision", "tpr", "fpr"):
                label += f" @ {self.threshold:g}"
            interval = (
                f"[{est.low:.3f}, {est.high:.3f}]" if est.low is not None and est.high is not None else ""
            )
            lines.append(f"{label:<16} {est.value:>7.3f}  {interval}".rstrip())
        if has_ci:
            lines.append(f"({self.ci_method}, {self.bootstrap} replicates, seed {self.seed})")
        return "\n".join(lines)


def detection_metrics(
    labels: Any,
    scores: Any,
    threshold: float = 0.5,
    *,
    bootstrap: int = 1000,
    seed: int | None = 0,
    ci: float = 0.95,
) -> DetectionMetrics:
    """Accuracy, AUROC, TPR at 1% / 5% FPR, F1, precision, TPR and FPR of a detector, with bootstrap CIs.

    Args:
        labels: ``[n]`` 0/1 or bool, 1 = malicious (positive). Both classes must be present.
        scores: ``[n]`` detector scores, higher = more likely malicious (e.g. the guard's probability).
            Lists, numpy arrays and torch tensors (any device) are accepted.
        threshold: decision threshold for the threshold metrics: malicious when ``score >= threshold``
            (default 0.5, the paper's). scikit-learn's ``predict`` uses ``>``; the two differ only for
            scores exactly at the threshold.
        bootstrap: number of bootstrap replicates for the confidence intervals (default 1000; 0 = none).
        seed: seed of the bootstrap's random generator (default 0), so intervals are reproducible.
        ci: confidence level of the intervals (default 0.95).

    Confidence intervals are *stratified percentile bootstrap* intervals: each replicate resamples the
    malicious and the benign samples separately, with replacement, keeping both class sizes, so every
    replicate has both classes (AUROC and FPR stay defined) and its FPR grid is the data's; the interval
    is the ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles of the replicates. The computation is vectorised
    over replicates (1000 replicates of 2,000 samples take well under a second).

    TPR at a fixed FPR follows `tpr_at_fpr`'s rule. AUROC is the Mann-Whitney statistic with ties counted
    one half, equal to ``sklearn.metrics.roc_auc_score``. Precision is 0 when nothing is flagged.

    Raises:
        ValueError: mismatched lengths, labels other than 0/1, non-finite scores, a single class, or a
            setting out of range.

    >>> m = detection_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], bootstrap=0)
    >>> m.auroc.value, m.accuracy.value
    (0.75, 0.5)
    """
    y, s = _check_scores(labels, scores)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ValueError(
            f"bootstrap must be an int >= 0 (number of replicates; 0 = no intervals); got {bootstrap!r}"
        )
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be a confidence level strictly between 0 and 1, e.g. 0.95; got {ci!r}")
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}")
    ranked = _Ranked.build(y, s)
    m = ranked.values.size
    point = _metrics_from_counts(
        np.bincount(ranked.pos, minlength=m)[None, :],
        np.bincount(ranked.neg, minlength=m)[None, :],
        ranked.values,
        threshold,
    )
    n_pos, n_neg = ranked.pos.size, ranked.neg.size
    bounds: dict[str, tuple[float | None, float | None]] = {name: (None, None) for name in _METRIC_NAMES}
    if bootstrap > 0:
        rng = np.random.default_rng(seed)
        chunk = max(1, min(bootstrap, _CHUNK_CELLS // max(m, n_pos, n_neg)))
        parts: dict[str, list[FloatArray]] = {name: [] for name in _METRIC_NAMES}
        for start in range(0, bootstrap, chunk):
            b = min(chunk, bootstrap - start)
            pos_ids = ranked.pos[rng.integers(0, n_pos, size=(b, n_pos))]
            neg_ids = ranked.neg[rng.integers(0, n_neg, size=(b, n_neg))]
            reps = _metrics_from_counts(
                _row_counts(pos_ids, m), _row_counts(neg_ids, m), ranked.values, threshold
            )
            for name in _METRIC_NAMES:
                parts[name].append(reps[name])
        alpha = (1.0 - ci) / 2.0
        for name in _METRIC_NAMES:
            low, high = np.quantile(np.concatenate(parts[name]), [alpha, 1.0 - alpha])
            bounds[name] = (float(low), float(high))
    est = {name: Estimate(float(point[name][0]), *bounds[name]) for name in _METRIC_NAMES}
    return DetectionMetrics(
        accuracy=est["accuracy"],
        auroc=est["auroc"],
        tpr_at_1pct_fpr=est["tpr_at_1pct_fpr"],
        tpr_at_5pct_fpr=est["tpr_at_5pct_fpr"],
        f1=est["f1"],
        precision=est["precision"],
        tpr=est["tpr"],
        fpr=est["fpr"],
        threshold=float(threshold),
        threshold_at_1pct_fpr=tpr_at_fpr(y, s, 0.01)[1],
        threshold_at_5pct_fpr=tpr_at_fpr(y, s, 0.05)[1],
        n_positive=n_pos,
        n_negative=n_neg,
        bootstrap=bootstrap,
        ci=float(ci),
        seed=seed,
    )
