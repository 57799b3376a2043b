"""Is the model already safe? Its own unguarded answer, judged by the refusal judge.

A detector is only needed where the model would answer a malicious request. ``model_refusal`` generates
the unguarded greedy answer and scores 1 when the refusal judge (``RefusalJudge``, keyword preset
``"sahs"``) finds a refusal, 0 otherwise: a verdict, not a score, so it is flagged at 0.5 with no
calibration. It costs a whole answer: ``max_new_tokens - 1`` decoding forwards before the verdict exists.
"""

from __future__ import annotations

import numpy as np

from sahs_lens.detectors.base import Detector, register
from sahs_lens.detectors.signals import Signals
from sahs_lens.evaluation import RefusalJudge

__all__ = ["ModelRefusal"]


@register
class ModelRefusal(Detector):
    name = "model_refusal"
    needs = frozenset({"answers"})
    train_needs = frozenset()
    calibrated = False
    extra_forwards = 23  # max_new_tokens (24 by default) - 1 decoding forwards; compare sets the real count
    description = "the unguarded model's own answer, judged by the refusal judge (is the model already safe?)"

    def _fit(self, train: Signals) -> None:
        self.judge = RefusalJudge(str(self.options.get("judge", "sahs")))

    def _score(self, signals: Signals) -> np.ndarray:
        if signals.answers is None:
            raise ValueError("model_refusal needs the answers signal")
        return np.array(self.judge(signals.answers), dtype=np.float64)
