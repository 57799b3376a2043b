"""Detectors on the residual stream at the decision position: a layer probe and the refusal direction.

``residual_probe`` is the standard probe of the representation literature: a logistic regression (on
standardised features) on one layer's ``hook_resid_post`` at the last prompt position, the layer chosen by
cross-validated AUROC on the *training* data only. ``refusal_direction`` is Arditi et al.'s difference in
means: at each layer, the mean residual of malicious training prompts minus that of benign ones, normalised;
the prompt's projection on it is the score, at the layer whose projection best separates the training data.
Neither sees any test prompt before scoring it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sahs_lens.detectors.base import Detector, register
from sahs_lens.detectors.signals import Signals

__all__ = ["ResidualProbe", "RefusalDirection", "difference_in_means", "linear_probe"]


def linear_probe(C: float = 1.0, seed: int = 0) -> Pipeline:
    """The linear probe of the residual and logits detectors: standardise, then L2 logistic regression."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000, random_state=seed))


def _resid(signals: Signals) -> np.ndarray:
    if signals.resid is None:
        raise ValueError("these signals hold no residual stream; collect them with needs={'resid'}")
    return signals.resid.double().numpy()


@register
class ResidualProbe(Detector):
    name = "residual_probe"
    needs = frozenset({"resid"})
    description = "logistic regression on the last-position residual stream, layer chosen on training data"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layer = -1
        self.layer_auroc: list[float] = []
        self.probe: Pipeline | None = None

    def _fit(self, train: Signals) -> None:
        x, y = _resid(train), train.labels
        folds = min(3, int(np.bincount(y).min()))
        C = float(self.options.get("C", 1.0))
        if folds >= 2:
            cv = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
            self.layer_auroc = [
                float(roc_auc_score(y, cross_val_predict(linear_probe(C, self.seed), x[:, layer], y, cv=cv,
                                                          method="decision_function")))
                for layer in range(x.shape[1])
            ]  # fmt: skip
            self.layer = int(np.argmax(self.layer_auroc))
        else:  # one sample of a class: nothing to cross-validate, take the last layer
            self.layer = x.shape[1] - 1
        self.probe = linear_probe(C, self.seed).fit(x[:, self.layer], y)

    def _score(self, signals: Signals) -> np.ndarray:
        if self.probe is None:
            raise RuntimeError("residual_probe is not fitted")
        return self.probe.decision_function(_resid(signals)[:, self.layer])

    def info(self) -> dict[str, Any]:
        return {"layer": self.layer, "cv_auroc_by_layer": self.layer_auroc}


def difference_in_means(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unit vector along mean(x | y = 1) - mean(x | y = 0), ``x [n, d]``."""
    direction = x[y == 1].mean(0) - x[y == 0].mean(0)
    norm = float(np.linalg.norm(direction))
    return direction / norm if norm > 0 else direction


@register
class RefusalDirection(Detector):
    name = "refusal_direction"
    needs = frozenset({"resid"})
    description = "difference-in-means direction at the best training layer; the projection is the score"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.layer = -1
        self.direction: np.ndarray | None = None
        self.layer_auroc: list[float] = []

    def _fit(self, train: Signals) -> None:
        x, y = _resid(train), train.labels
        directions = [difference_in_means(x[:, layer], y) for layer in range(x.shape[1])]
        self.layer_auroc = [float(roc_auc_score(y, x[:, layer] @ d)) for layer, d in enumerate(directions)]
        self.layer = int(np.argmax(self.layer_auroc))
        self.direction = directions[self.layer]

    def _score(self, signals: Signals) -> np.ndarray:
        if self.direction is None:
            raise RuntimeError("refusal_direction is not fitted")
        return _resid(signals)[:, self.layer] @ self.direction

    def info(self) -> dict[str, Any]:
        return {"layer": self.layer, "train_auroc_by_layer": self.layer_auroc}
