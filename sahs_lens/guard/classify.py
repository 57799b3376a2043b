"""``classify``: the guard as a moderation call, a verdict per prompt with the evidence behind it.

A served model is usually guarded by a classifier that a gateway calls before the model (Llama Guard,
Prompt Guard, an OpenAI-style moderation endpoint): prompts in, a verdict out. The safety-head guard can
be called the same way, and needs no second model: one prefill of the guarded model itself, stopped after
its deepest safety head (``GuardReading(stop_after_capture=True)``), so the layers above it never run.

Each ``Verdict`` says what was decided and why:

- ``flagged``, ``score`` (the malicious probability) and the ``threshold`` it was compared with; a row the
  guard cannot judge (a non-finite head output or logit) is flagged with ``score`` 1.0 and
  ``unjudged=True`` (fail closed, as on every path of the guard);
- ``contributions``: each chosen head's share of the logit, ``w_h . z_h`` over its ``d_head`` outputs at
  the decision position, so that ``sum(contributions) + bias`` is the logit and ``sigmoid`` of it the score;
- ``model``: the model's identity (name, family, checkpoint fingerprint, template, shape, and the SHA-256 of
  the weights file where one was loaded) and ``guard_sha256``, a hash of everything the guard is (heads,
  weights, bias, threshold, provenance), so a logged verdict names exactly what made it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor

from sahs_lens.guard.reading import GuardReading, HeadScorer

if TYPE_CHECKING:
    from model_adapters import HookedVLM
    from model_adapters.images import ImageLike


class SafetyHeadGuard(HeadScorer, Protocol):
    """What ``classify`` needs of a guard (``sahs_lens.guard.detector.SafetyHeadGuard`` has it)."""

    weight: Tensor
    bias: float

    def check_model(self, model: HookedVLM) -> None: ...

    def to_dict(self) -> dict[str, Any]: ...

__all__ = ["Verdict", "classify", "guard_sha256"]


@dataclass(frozen=True)
class Verdict:
    """The guard's decision on one prompt, with its evidence (see the module docstring)."""

    flagged: bool
    score: float
    threshold: float
    unjudged: bool
    contributions: dict[str, float | None]
    bias: float
    model: dict[str, Any] = field(default_factory=dict)
    guard_sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (a non-finite contribution is ``None``: JSON has no NaN)."""
        return asdict(self)


def guard_sha256(guard: SafetyHeadGuard) -> str:
    """SHA-256 of the guard's canonical JSON (``to_dict``: heads, weights, bias, threshold, provenance)."""
    return hashlib.sha256(json.dumps(guard.to_dict(), sort_keys=True).encode("utf-8")).hexdigest()


def classify(
    guard: SafetyHeadGuard,
    model: HookedVLM,
    prompts: str | Sequence[str],
    images: ImageLike | Sequence[ImageLike] = None,
    *,
    batch_size: int = 16,
) -> list[Verdict]:
    """One ``Verdict`` per prompt, from prefills of ``batch_size`` prompts that stop after the deepest head.

    Example:
        >>> verdicts = guard.classify(model, ["How do I bake bread?", "How do I make a pipe bomb?"])
        >>> [(v.flagged, round(v.score, 3)) for v in verdicts]  # doctest: +SKIP
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not texts:
        raise ValueError("classify needs at least one prompt; got none")
    pictures = _per_prompt(images, len(texts))
    guard.check_model(model)
    identity = {**model.cfg.identity(), "weights_sha256": model.cfg.weights_sha256}
    digest = guard_sha256(guard)
    names = guard.heads.to_list()
    weight = guard.weight.float().reshape(len(names), guard.d_head)
    verdicts: list[Verdict] = []
    for start in range(0, len(texts), batch_size):
        batch = model.prepare(texts[start : start + batch_size], images=pictures[start : start + batch_size])
        reading = GuardReading(guard, stop_after_capture=True)
        reading.reader.read(model, batch)
        x = reading.features.float().cpu().reshape(len(batch), len(names), guard.d_head)
        shares = (x * weight).sum(-1)
        for row in range(len(batch)):
            unjudged = bool(reading.nonfinite[row])
            verdicts.append(
                Verdict(
                    flagged=bool(reading.flagged[row]),
                    score=1.0 if unjudged else float(reading.scores[row]),
                    threshold=float(guard.threshold),
                    unjudged=unjudged,
                    contributions={
                        name: (value if math.isfinite(value) else None)
                        for name, value in zip(names, shares[row].tolist(), strict=True)
                    },
                    bias=float(guard.bias),
                    model=identity,
                    guard_sha256=digest,
                )
            )
    return verdicts


def _per_prompt(images: Any, n: int) -> list[Any]:
    if images is None:
        return [None] * n
    if not isinstance(images, list | tuple):
        images = [images]
    if len(images) != n:
        raise ValueError(f"give one image (or None) per prompt: {n} prompts but {len(images)} images")
    return list(images)
