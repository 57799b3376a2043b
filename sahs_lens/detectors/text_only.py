"""The lexical control: a bag-of-words classifier that never sees the model or the image.

On typed requests, harmful and benign prompts differ in their words ("bomb", "steal" vs "poem", "recipe"),
so any detector that scores well on them may only be matching words. ``text_only`` measures how far words
alone go: TF-IDF of word 1-2-grams and character 2-5-grams of the prompt text (scikit-learn), one logistic
regression. Where every prompt has the same text (typographic attacks: the request is in the image) it
must sit at chance; a model-based detector is only worth its cost where it beats this control.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline, make_union

from sahs_lens.detectors.base import Detector, register
from sahs_lens.detectors.signals import Signals

__all__ = ["TextOnly", "lexical_pipeline"]


def lexical_pipeline(C: float = 1.0, seed: int = 0) -> Pipeline:
    """TF-IDF word (1-2) and character (2-5, within word boundaries) n-grams, then logistic regression."""
    features = make_union(
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, lowercase=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=True),
    )
    return make_pipeline(features, LogisticRegression(C=C, max_iter=2000, random_state=seed))


@register
class TextOnly(Detector):
    name = "text_only"
    needs = frozenset({"text"})
    description = "lexical control: TF-IDF word and character n-grams of the prompt text, logistic regression"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline: Pipeline | None = None

    def _fit(self, train: Signals) -> None:
        self.pipeline = lexical_pipeline(float(self.options.get("C", 1.0)), self.seed).fit(
            train.prompts, train.labels
        )

    def _score(self, signals: Signals) -> np.ndarray:
        if self.pipeline is None:
            raise RuntimeError("text_only is not fitted")
        return self.pipeline.decision_function(signals.prompts)
