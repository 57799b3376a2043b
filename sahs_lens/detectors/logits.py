"""LVLM-LP's detector: a linear probe on the logits of the first answer token.

The first-token logits are the model's own next-word preferences at the decision position: if the model
"knows" a request is harmful, refusal openings should already rank higher there. LVLM-LP fits a linear
probe on that vector; here it is the same standardised L2 logistic regression as the residual probe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from sahs_lens.detectors.base import Detector, register
from sahs_lens.detectors.residual import linear_probe
from sahs_lens.detectors.signals import Signals

__all__ = ["FirstTokenLogits"]


def _logits(signals: Signals) -> np.ndarray:
    if signals.logits is None:
        raise ValueError("these signals hold no logits; collect them with needs={'logits'}")
    return signals.logits.double().numpy()


@register
class FirstTokenLogits(Detector):
    name = "first_token_logits"
    needs = frozenset({"logits"})
    description = "LVLM-LP: logistic regression on the first answer token's logits"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.probe: Pipeline | None = None

    def _fit(self, train: Signals) -> None:
        self.probe = linear_probe(float(self.options.get("C", 1.0)), self.seed).fit(
            _logits(train), train.labels
        )

    def _score(self, signals: Signals) -> np.ndarray:
        if self.probe is None:
            raise RuntimeError("first_token_logits is not fitted")
        return self.probe.decision_function(_logits(signals))
