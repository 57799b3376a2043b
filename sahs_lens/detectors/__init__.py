"""Detectors of malicious prompts behind one interface, and ``compare``: all of them side by side.

A safety-head guard is only interesting if it beats the obvious alternatives on the same prompts: a probe
on the residual stream, a probe on the first-token logits (LVLM-LP), HiddenDetect's tuning-free refusal
score, the refusal direction, a model that is already safe by itself, and, above all, a bag-of-words
classifier that never sees the model (on typed text, harmful and benign requests differ in their words).
Each detector is one small module behind ``base.Detector`` (``fit`` -> ``score``, with ``needs`` and
``extra_forwards``); every model-based one reads the same prefill forward (``signals``), and ``compare``
trains them all on one set and scores every test set, transfer included.

=======================  ==============================================================================
detector                 what it scores
=======================  ==============================================================================
``sahs``                 the guard: top-k heads by the stable criterion, logistic regression (``heads``)
``sahs_mean``            top-k heads by mean accuracy only
``random_heads``         k random heads, several draws (mean and spread)
``all_heads``            every head concatenated
``residual_probe``       logistic regression on one layer's residual stream (``residual``)
``first_token_logits``   LVLM-LP: logistic regression on the first-token logits (``logits``)
``hidden_detect``        HiddenDetect: logit-lens cosine to a refusal vector over its layers (``hidden_detect``)
``refusal_direction``    difference-in-means projection at the best layer (``residual``)
``text_only``            the lexical control: TF-IDF n-grams of the prompt text (``text_only``)
``model_refusal``        the unguarded model's own answer, judged by the refusal judge (``model_refusal``)
=======================  ==============================================================================

>>> from sahs_lens.detectors import compare
>>> result = compare(model, train_samples, {"held-out": test_samples}, k=8)   # doctest: +SKIP
>>> print(result.table())
"""

from __future__ import annotations

from sahs_lens.detectors import heads, hidden_detect, logits, model_refusal, residual, text_only
from sahs_lens.detectors.base import DETECTORS, Detector, check_detector_names, make_detector
from sahs_lens.detectors.compare import DEFAULT_DETECTORS, compare, is_transfer
from sahs_lens.detectors.results import RESULT_FIELDS, Comparison
from sahs_lens.detectors.signals import REFUSAL_WORDS, SIGNALS, Signals, collect_signals

__all__ = [
    "DEFAULT_DETECTORS",
    "DETECTORS",
    "REFUSAL_WORDS",
    "RESULT_FIELDS",
    "SIGNALS",
    "Comparison",
    "Detector",
    "Signals",
    "check_detector_names",
    "collect_signals",
    "compare",
    "heads",
    "hidden_detect",
    "is_transfer",
    "logits",
    "make_detector",
    "model_refusal",
    "residual",
    "text_only",
]
