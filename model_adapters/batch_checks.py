"""A prepared batch handed back to a model is checked before its forward.

``model.prepare(...)`` returns a ``VLMInputs`` that any model accepts as it is, including one it did not
prepare. A batch of another model's tokenizer has ids past this model's vocabulary (an ``IndexError``
deep inside the embedding), and a hand-built one may have ids that are not integers or a mask of another
shape. ``check_batch`` turns each into one clear error naming what was given; it costs one ``max`` over
the ids.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from torch import Tensor

__all__ = ["check_batch"]


class _Batch(Protocol):
    input_ids: Tensor
    attention_mask: Tensor


B = TypeVar("B", bound=_Batch)


def check_batch(inputs: B, d_vocab: int) -> B:
    """``inputs`` unchanged if this model (vocabulary ``d_vocab``) can read it; ``ValueError`` otherwise."""
    ids, mask = inputs.input_ids, inputs.attention_mask
    if ids.ndim != 2 or ids.dtype.is_floating_point or ids.dtype.is_complex:
        raise ValueError(
            f"the batch's input_ids are {ids.dtype} {tuple(ids.shape)}; expected integer token ids [batch, pos] "
            "as model.prepare(prompts, images) makes them"
        )
    if tuple(mask.shape) != tuple(ids.shape):
        raise ValueError(
            f"the batch's attention_mask is {tuple(mask.shape)} but its input_ids are {tuple(ids.shape)}; "
            "prepare the batch with model.prepare"
        )
    if ids.numel() and (int(ids.max()) >= d_vocab or int(ids.min()) < 0):
        raise ValueError(
            f"the batch holds token id {int(ids.max()) if int(ids.max()) >= d_vocab else int(ids.min())}, outside "
            f"this model's vocabulary of {d_vocab}: it was prepared by another model (another tokenizer); "
            "prepare it with this model's prepare"
        )
    return inputs
