"""Scoring inside the prefill: the safety heads' decision-position outputs -> one probability per row.

The guard never runs a forward of its own during generation: it reads the safety heads through the shared
``DecisionReader`` while the prefill that produces the first token runs, concatenates them in the guard's
head order (``k x d_head`` features) and scores them as soon as the deepest safety head has been read, so
the policy is known before the first token is chosen. A score that is not finite is flagged (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import torch
from jaxtyping import Float
from torch import Tensor

from sahs_lens.decision import DecisionReader
from sahs_lens.heads import HeadSet

if TYPE_CHECKING:
    from model_adapters import HookedVLM, VLMInputs


class HeadScorer(Protocol):
    """What reading needs of a guard: its heads, its threshold and its scoring of concatenated features."""

    heads: HeadSet
    d_head: int

    @property
    def nonfinite(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    def score_features(self, x: Float[Tensor, "batch features"]) -> Float[Tensor, " batch"]: ...


class GuardReading:
    """One prefill's reading: hooks for the model, then ``scores`` and ``flagged`` (CPU tensors) per row."""

    def __init__(self, guard: HeadScorer, *, stop_after_capture: bool) -> None:
        self.guard = guard
        by_layer = guard.heads.by_layer()
        self.reader = DecisionReader(
            by_layer, heads_of=by_layer, stop_after_last=stop_after_capture, on_complete=self._score
        )
        # where each of the guard's heads sits in its layer's kept columns, in the guard's head order
        position = {layer: 0 for layer in by_layer}
        self.columns: list[tuple[int, int]] = []
        for head in guard.heads:
            self.columns.append((head.layer, position[head.layer]))
            position[head.layer] += 1
        self.flagged = torch.zeros(0, dtype=torch.bool)
        self.scores = torch.zeros(0)
        self.nonfinite = torch.zeros(0, dtype=torch.bool)
        self.features = torch.zeros(0, 0)
        """``[batch, k * d_head]``: what was scored, in the guard's head order (``classify``'s evidence)."""

    def hooks(self) -> list[tuple[str, Callable[..., None]]]:
        return self.reader.hooks()

    def hook_fn(self, layer: int) -> Callable[..., None]:
        return self.reader.hook_fn(layer)

    def _score(self, values: dict[int, Tensor]) -> None:
        x = torch.stack([values[layer][:, column] for layer, column in self.columns], dim=1)
        self.features = x.reshape(x.shape[0], -1)
        scores = self.guard.score_features(self.features).cpu()
        nonfinite = ~torch.isfinite(scores)
        if bool(nonfinite.any()) and self.guard.nonfinite == "raise":
            rows = nonfinite.nonzero().flatten().tolist()
            raise ValueError(
                f"the guard's score is not finite for row(s) {rows} (NaN or inf in the safety heads' outputs, "
                "e.g. fp16 overflow, or a logit that overflows); run the model in float32 or bfloat16, or use "
                "nonfinite='flag'"
            )
        self.scores, self.nonfinite = scores, nonfinite
        # fail closed: a score that is not a number is flagged (NaN >= t is False, so say it explicitly)
        self.flagged = (scores >= self.guard.threshold) | nonfinite


def as_batch(model: HookedVLM, inputs: VLMInputs | str | Sequence[str]) -> VLMInputs:
    """A prepared batch: text prompts are prepared (without images) so that every policy can re-read them."""
    from model_adapters import VLMInputs

    if isinstance(inputs, VLMInputs):
        return inputs
    if isinstance(inputs, str) or (isinstance(inputs, Sequence) and all(isinstance(p, str) for p in inputs)):
        return model.prepare(inputs)
    raise TypeError(
        f"inputs must be a prepared batch (model.prepare(prompts, images)) or text prompts; got "
        f"{type(inputs).__name__}"
    )
