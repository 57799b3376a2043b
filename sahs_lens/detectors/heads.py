"""Detectors on attention heads: the guard on safety heads and the head-based controls.

The SAHs claim is that a *few* heads carry the "this is malicious" signal. The guard (``sahs``) picks the
top-k heads of a few-shot probe sweep by the stable criterion (mean minus half the spread over repeats) and
fits one logistic regression on their concatenated outputs (``SafetyHeadGuard``). Its controls change one
thing each: ``sahs_mean`` ranks by mean accuracy only (the paper's code); ``random_heads`` takes k heads at
random (several draws: is the choice of heads what matters?); ``all_heads`` concatenates every head (is
choosing heads needed at all?).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sahs_lens.detectors.base import Detector, register
from sahs_lens.detectors.signals import Signals
from sahs_lens.guard import SafetyHeadGuard
from sahs_lens.heads import Head, HeadSet
from sahs_lens.probes import probe_sweep
from sahs_lens.ranking import random_heads, rank_heads

__all__ = ["AllHeads", "RandomHeads", "SafetyHeads", "SafetyHeadsMean"]

DEFAULT_SHOTS = (1, 2, 4, 8, 16, 32)


class _GuardDetector(Detector):
    needs = frozenset({"z"})
    criterion = "stable"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guard: SafetyHeadGuard | None = None

    def _sweep(self, train: Signals) -> Any:
        shots = tuple(self.options.get("shots", DEFAULT_SHOTS))
        repeats = int(self.options.get("repeats", 10))
        key = f"sweep:{shots}:{repeats}:{self.seed}"
        if key not in train.memo:
            acts = train.head_activations()
            smaller = int(min((acts.labels == 1).sum(), (acts.labels == 0).sum()))
            usable = [s for s in shots if s < smaller] or [max(1, smaller // 2)]
            train.memo[key] = probe_sweep(acts, shots=usable, repeats=repeats, seed=self.seed, progress=False)
        return train.memo[key]

    def _heads(self, train: Signals) -> HeadSet:
        return rank_heads(self._sweep(train), k=self.k, criterion=self.criterion)  # type: ignore[arg-type]

    def _fit(self, train: Signals) -> None:
        acts = train.head_activations()
        self.guard = SafetyHeadGuard.fit(acts, self._heads(train))

    def _score(self, signals: Signals) -> np.ndarray:
        if self.guard is None:
            raise RuntimeError(f"{self.name} is not fitted")
        return self.guard.score(signals.head_activations()).numpy()

    def info(self) -> dict[str, Any]:
        return {"heads": str(self.guard.heads)} if self.guard is not None else {}


@register
class SafetyHeads(_GuardDetector):
    name = "sahs"
    description = "the guard: top-k heads by the stable criterion, logistic regression on their concatenation"


@register
class SafetyHeadsMean(_GuardDetector):
    name = "sahs_mean"
    criterion = "mean"
    description = "top-k heads by mean probe accuracy only, logistic regression on their concatenation"


@register
class AllHeads(_GuardDetector):
    name = "all_heads"
    description = "every head concatenated, one logistic regression"

    def _heads(self, train: Signals) -> HeadSet:
        acts = train.head_activations()
        return HeadSet(Head(layer, head) for layer in range(acts.n_layers) for head in range(acts.n_heads))

    def info(self) -> dict[str, Any]:
        return {"heads": len(self.guard.heads)} if self.guard is not None else {}


@register
class RandomHeads(Detector):
    name = "random_heads"
    needs = frozenset({"z"})
    description = (
        "k random heads (several draws; mean and spread), logistic regression on their concatenation"
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.guards: list[SafetyHeadGuard] = []

    def _fit(self, train: Signals) -> None:
        acts = train.head_activations()
        draws = int(self.options.get("draws", 5))
        self.guards = [
            SafetyHeadGuard.fit(acts, random_heads(acts.n_layers, acts.n_heads, self.k, seed=self.seed + d))
            for d in range(draws)
        ]

    def _score(self, signals: Signals) -> np.ndarray:
        acts = signals.head_activations()
        return np.stack([guard.score(acts).numpy() for guard in self.guards])

    def info(self) -> dict[str, Any]:
        return {"draws": [str(g.heads) for g in self.guards]}
