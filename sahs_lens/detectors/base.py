"""One interface for every detector of malicious prompts, and the registry of their names.

A detector is fitted on the signals of a training set (``fit``) and then gives every prompt of a test set
a score, higher meaning more likely malicious (``score``). It declares which signals it reads (``needs``,
see ``sahs_lens.detectors.signals``: the same prefill forward serves every detector that reads the model)
and what it costs beyond the forward the model runs anyway (``extra_forwards``: forward passes before its
decision can be made). A detector with several random draws (``random_heads``) scores ``[draws, n]``;
the comparison reports the mean over draws and their spread.

>>> detector = make_detector("residual_probe", k=8, seed=0).fit(train_signals)   # doctest: +SKIP
>>> detector.score(test_signals)                                                  # [n] scores
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from sahs_lens.detectors.signals import Signals

__all__ = ["DETECTORS", "Detector", "check_detector_names", "make_detector", "register"]

DETECTORS: dict[str, type[Detector]] = {}
"""Name -> detector class; every module of ``sahs_lens.detectors`` registers its own."""


class Detector:
    """Base of every detector: ``fit(train) -> self``, ``score(signals) -> [n]`` (or ``[draws, n]``)."""

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    train_needs: ClassVar[frozenset[str] | None] = None  # None: the same as needs
    extra_forwards: ClassVar[int] = 0
    calibrated: ClassVar[bool] = True  # False: the score is a verdict, flagged at 0.5
    description: ClassVar[str] = ""

    def __init__(self, *, k: int = 8, seed: int = 0, **options: Any) -> None:
        self.k = int(k)
        self.seed = int(seed)
        self.options = options
        self.fitted = False

    @classmethod
    def needs_for_training(cls) -> frozenset[str]:
        return cls.needs if cls.train_needs is None else cls.train_needs

    def fit(self, train: Signals) -> Detector:
        """Fit on ``train`` (both classes); returns ``self``."""
        labels = train.labels
        if len(set(labels.tolist())) < 2:
            raise ValueError(
                f"{self.name} needs malicious and benign training samples; got {int(labels.sum())} malicious "
                f"and {int((labels == 0).sum())} benign"
            )
        self._fit(train)
        self.fitted = True
        return self

    def score(self, signals: Signals) -> np.ndarray:
        """Scores of ``signals`` ( ``[n]``, or ``[draws, n]``), higher = more likely malicious."""
        if not self.fitted:
            raise RuntimeError(f"{self.name} is not fitted; call fit(train_signals) first")
        for need in self.needs:
            if not signals.has(need):
                raise ValueError(f"{self.name} reads the {need!r} signal, which these signals lack")
        return np.asarray(self._score(signals), dtype=np.float64)

    def info(self) -> dict[str, Any]:
        """What fitting chose (heads, layer, band), for the report."""
        return {}

    def _fit(self, train: Signals) -> None:
        raise NotImplementedError

    def _score(self, signals: Signals) -> np.ndarray:
        raise NotImplementedError


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: add a detector to ``DETECTORS`` under its ``name``."""
    if not cls.name or cls.name in DETECTORS:
        raise ValueError(f"a detector needs a new, non-empty name; got {cls.name!r}")
    DETECTORS[cls.name] = cls
    return cls


def check_detector_names(names: Any) -> list[str]:
    """``names`` as a list, or a ``ValueError`` naming the unknown ones and listing every detector."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown or not names:
        listing = "\n".join(f"  {n}: {cls.description}" for n, cls in DETECTORS.items())
        what = f"no detector named {', '.join(map(repr, unknown))}" if unknown else "no detector given"
        raise ValueError(f"{what}; the detectors are:\n{listing}")
    if len(set(names)) != len(names):
        raise ValueError(f"detectors must be given once each; got {names}")
    return names


def make_detector(name: str, **kwargs: Any) -> Detector:
    """A new, unfitted detector by name (``k``, ``seed`` and the detector's own options)."""
    check_detector_names([name])
    return DETECTORS[name](**kwargs)
