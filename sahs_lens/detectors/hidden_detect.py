"""HiddenDetect's tuning-free score: how much each layer already "leans towards refusing".

HiddenDetect (Jiang et al., 2025) reads every layer's last-position hidden state through the model's own
final norm and unembedding (the logit lens) and measures the cosine between those vocabulary logits and a
*refusal vector*: one-hot on refusal and warning tokens (``signals.REFUSAL_WORDS``). On a malicious prompt
some middle layers lean towards those tokens more than on a benign one. The layers where they do (the
"safety-aware" layers) are located on a few labelled prompts: the mean cosine of malicious minus benign
prompts per layer, kept where it exceeds the last layer's; the score is the area (trapezoid rule) under the
prompt's cosine curve over the band those layers span. Nothing is trained: the training data only locate
the band.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sahs_lens.detectors.base import Detector, register
from sahs_lens.detectors.signals import Signals

__all__ = ["HiddenDetect", "safety_aware_band"]


def safety_aware_band(lens: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """``(first, last)`` layer (inclusive) of the band HiddenDetect integrates over, from ``lens [n, layer]``.

    The discrepancy ``mean(lens | malicious) - mean(lens | benign)`` per layer; the layers where it exceeds
    the last layer's span the band (all layers where it is positive if none does; the last layer if none is).
    """
    discrepancy = lens[labels == 1].mean(0) - lens[labels == 0].mean(0)
    chosen = np.flatnonzero(discrepancy > discrepancy[-1])
    if chosen.size == 0:
        chosen = np.flatnonzero(discrepancy > 0)
    if chosen.size == 0:
        chosen = np.array([lens.shape[1] - 1])
    return int(chosen.min()), int(chosen.max())


def _lens(signals: Signals) -> np.ndarray:
    if signals.lens is None:
        raise ValueError("these signals hold no logit-lens cosines; collect them with needs={'lens'}")
    return signals.lens.double().numpy()


@register
class HiddenDetect(Detector):
    name = "hidden_detect"
    needs = frozenset({"lens"})
    description = (
        "HiddenDetect: logit-lens cosine to a refusal vector, integrated over the safety-aware layers"
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.band = (-1, -1)

    def _fit(self, train: Signals) -> None:
        self.band = safety_aware_band(_lens(train), train.labels)

    def _score(self, signals: Signals) -> np.ndarray:
        first, last = self.band
        curve = _lens(signals)[:, first : last + 1]
        if curve.shape[1] == 1:
            return curve[:, 0]
        return np.trapezoid(curve, axis=1)

    def info(self) -> dict[str, Any]:
        return {"band": list(self.band)}
