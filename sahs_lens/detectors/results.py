"""The comparison's results: one row per detector x (training set, test set), and how they are read.

Every row holds the fields other tools read from ``compare.json`` under exactly these names: ``detector``,
``train``, ``test``, ``auroc`` (``None`` when the test set has one class: AUROC is undefined then),
``auroc_ci`` (stratified bootstrap 95% interval, ``[low, high]``), ``tpr_at_1pct_fpr``,
``tpr_at_5pct_fpr``, ``fpr_at_threshold`` (benign prompts flagged at the threshold calibrated on the
training side), ``extra_forwards`` and ``ms_per_prompt``; plus ``tpr_at_threshold``, ``transfer``,
``n_positive``, ``n_negative``, ``threshold`` and a ``note`` saying what is undefined and why. A detector
with several draws (``random_heads``) reports the mean over draws, with ``auroc_spread`` (their standard
deviation) and ``auroc_draws``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sahs_lens.evaluation import detection_metrics
from sahs_lens.evaluation.metrics import flags
from sahs_lens.evaluation.roc import roc_curve_points

__all__ = ["RESULT_FIELDS", "Comparison", "score_metrics"]

RESULT_FIELDS = (
    "detector", "train", "test", "auroc", "auroc_ci", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr",
    "fpr_at_threshold", "extra_forwards", "ms_per_prompt",
)  # fmt: skip
"""The fields of every result row, as the issue that defined ``compare.json`` names them."""

ROC_POINTS = 200


def _rate(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def score_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float, *, bootstrap: int, seed: int
) -> dict[str, Any]:
    """The metrics of one score vector: AUROC (+ CI), TPR at 1% / 5% FPR, rates at ``threshold``.

    With one class only the rate at the threshold that exists is given (TPR for malicious-only sets, FPR
    for benign-only ones) and ``note`` says that AUROC is undefined.
    """
    labels = np.asarray(labels).astype(bool)
    flagged = flags(np.asarray(scores, dtype=np.float64), threshold)
    out: dict[str, Any] = {
        "auroc": None,
        "auroc_ci": None,
        "tpr_at_1pct_fpr": None,
        "tpr_at_5pct_fpr": None,
        "fpr_at_threshold": _rate(flagged[~labels]),
        "tpr_at_threshold": _rate(flagged[labels]),
        "note": "",
    }
    if labels.all() or not labels.any():
        only = "malicious" if labels.all() else "benign"
        out["note"] = (
            f"AUROC undefined: the test set has only {only} prompts; only the "
            f"{'TPR' if labels.all() else 'FPR'} at the threshold is reported"
        )
        return out
    m = detection_metrics(labels.astype(int), scores, threshold=threshold, bootstrap=bootstrap, seed=seed)
    out["auroc"] = m.auroc.value
    if m.auroc.low is not None and m.auroc.high is not None:
        out["auroc_ci"] = [m.auroc.low, m.auroc.high]
    out["tpr_at_1pct_fpr"] = m.tpr_at_1pct_fpr.value
    out["tpr_at_5pct_fpr"] = m.tpr_at_5pct_fpr.value
    fpr, tpr, _ = roc_curve_points(labels.astype(int), scores)
    if fpr.size > ROC_POINTS:
        keep = np.unique(np.linspace(0, fpr.size - 1, ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    out["roc"] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
    return out


def mean_over_draws(per_draw: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of each rate over draws (``None`` stays ``None``), with the AUROC spread and the draws."""
    if len(per_draw) == 1:
        return dict(per_draw[0])
    out: dict[str, Any] = {"note": per_draw[0]["note"]}
    for key in ("auroc", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "fpr_at_threshold", "tpr_at_threshold"):
        values = [d[key] for d in per_draw]
        out[key] = None if any(v is None for v in values) else float(np.mean(values))
    if out["auroc"] is not None:
        aurocs = [d["auroc"] for d in per_draw]
        out["auroc_spread"] = float(np.std(aurocs))
        out["auroc_draws"] = aurocs
        cis = [d["auroc_ci"] for d in per_draw if d["auroc_ci"] is not None]
        out["auroc_ci"] = (
            [float(np.mean([c[0] for c in cis])), float(np.mean([c[1] for c in cis]))] if cis else None
        )
        out["roc"] = per_draw[0].get("roc")
    else:
        out["auroc_ci"] = None
    return out


@dataclass
class Comparison:
    """What ``compare`` measured: the result rows, the sets, what each detector chose, the settings."""

    detectors: list[str]
    test_sets: list[str]
    trains: list[str]
    results: list[dict[str, Any]]
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    chosen: dict[str, dict[str, Any]] = field(default_factory=dict)  # "detector@train" -> info
    settings: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)

    def row(self, detector: str, train: str, test: str) -> dict[str, Any]:
        """The result row of one detector trained on ``train`` and tested on ``test``."""
        for r in self.results:
            if (r["detector"], r["train"], r["test"]) == (detector, train, test):
                return r
        raise KeyError(
            f"no result for detector {detector!r} trained on {train!r} and tested on {test!r}; the pairs are "
            f"{sorted({(r['train'], r['test']) for r in self.results})}"
        )

    def auroc(self, detector: str, train: str, test: str) -> float | None:
        value: float | None = self.row(detector, train, test)["auroc"]
        return value

    def ranking(self, train: str, test: str) -> list[tuple[str, float]]:
        """``(detector, AUROC)`` best first on one pair (detectors without an AUROC left out; ties keep the
        order the detectors were given in)."""
        rows = [(d, self.auroc(d, train, test)) for d in self.detectors]
        defined = [(d, float(a)) for d, a in rows if a is not None]
        return sorted(defined, key=lambda item: -item[1])

    def pairs(self) -> list[tuple[str, str]]:
        """Every (train, test) pair, in the order they were measured."""
        seen: list[tuple[str, str]] = []
        for r in self.results:
            if (r["train"], r["test"]) not in seen:
                seen.append((r["train"], r["test"]))
        return seen

    def to_dict(self, roc: bool = True) -> dict[str, Any]:
        results = [{k: v for k, v in r.items() if roc or k != "roc"} for r in self.results]
        return {
            "format": "sahs_lens.compare/1",
            "detectors": list(self.detectors),
            "test_sets": list(self.test_sets),
            "trains": list(self.trains),
            "results": results,
            "sets": self.sets,
            "chosen": self.chosen,
            "settings": self.settings,
            "timing": self.timing,
        }

    def save(self, path: str | Path) -> Path:
        """Write ``compare.json`` (a directory gets ``compare.json`` inside it)."""
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path.mkdir(parents=True, exist_ok=True)
            path = path / "compare.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=_plain) + "\n", encoding="utf-8")
        return path

    def table(self) -> str:
        """A text table: one line per detector, AUROC per pair (columns P1, P2, ... named below), then the
        cost columns; ``T`` marks a transfer pair."""
        pairs = self.pairs()
        width = max(20, *(len(d) + 1 for d in self.detectors))
        cols = [
            f"P{i + 1}" + ("T" if self.row(self.detectors[0], *p)["transfer"] else "")
            for i, p in enumerate(pairs)
        ]
        lines = [f"{'detector':<{width}}" + "".join(f"{c:>7}" for c in cols) + "  extra_fwd  ms/prompt"]
        for d in self.detectors:
            cells = []
            for t, s in pairs:
                a = self.row(d, t, s)["auroc"]
                cells.append(f"{'n/a' if a is None else format(a, '.3f'):>7}")
            first = self.row(d, *pairs[0])
            lines.append(
                f"{d:<{width}}"
                + "".join(cells)
                + f"  {first['extra_forwards']:>9}  {first['ms_per_prompt']:>9.3f}"
            )
        lines.append("pairs (training set -> test set; T: transfer):")
        lines += [f"  {c:<4} {t} -> {s}" for c, (t, s) in zip(cols, pairs, strict=True)]
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
