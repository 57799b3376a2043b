"""The decision position: where a vision-language model decides how to answer, and the one reader of it.

A prompt's *decision position* is its last prompt token: the position whose logits give the first
generated token, so whatever the model has "noticed" about the request must be there before it speaks.
The SAHs feature of a prompt is every head's output at that position, ``blocks.{l}.attn.hook_z[:, -1]``.
Batches are left-padded, so the last column is every row's decision position.

``DecisionReader`` is the only code that reads it. It attaches one ``hook_z`` hook per needed layer that
keeps only the last column (never the whole cache), optionally only some heads of it, and either stops the
forward right after the deepest needed layer (collection, scoring: at most one forward pass) or lets it run
on (guarded generation, where the same prefill goes on to produce the first token). Activation collection
and the guard both read through it, so the two can never disagree about what a feature is.

>>> reader = DecisionReader([0, 1], stop_after_last=True)
>>> values = reader.read(model, batch)          # doctest: +SKIP
>>> values[1].shape                             # [batch, n_heads, d_head]   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from model_adapters import HookedVLM, VLMInputs
from model_adapters.hook_names import hook_z_name

POSITION_RULE = "last_prompt_token"
"""How the decision position is chosen, as recorded in every artifact's provenance."""


class _StopForward(Exception):
    """Raised by the deepest needed hook: the rest of the forward pass is not needed."""


class DecisionReader:
    """``hook_z`` hooks that keep the decision-position outputs of some layers (and heads) at prefill.

    Args:
        layers: the layers to read.
        heads_of: ``{layer: [head, ...]}`` to keep only those heads of a layer (default: every head).
        stop_after_last: stop the forward pass once the deepest layer is read (see ``read``).
        on_complete: called with ``values`` once every layer has been read in a prefill.

    After a prefill, ``values[layer]`` is ``[batch, n_heads, d_head]`` (or ``[batch, k, d_head]`` for the
    heads kept), on the model's device. Decoding steps (one new position) after a prefill are ignored.
    """

    def __init__(
        self,
        layers: Iterable[int],
        *,
        heads_of: Mapping[int, Sequence[int]] | None = None,
        stop_after_last: bool,
        on_complete: Callable[[dict[int, Tensor]], None] | None = None,
    ) -> None:
        self.layers = sorted({int(layer) for layer in layers})
        if not self.layers:
            raise ValueError("a decision reader needs at least one layer to read")
        self.last_layer = self.layers[-1]
        self.heads_of = {int(k): torch.tensor(list(v), dtype=torch.long) for k, v in (heads_of or {}).items()}
        self.stop_after_last = stop_after_last
        self.on_complete = on_complete
        self.values: dict[int, Tensor] = {}

    def hooks(self) -> list[tuple[str, Callable[..., None]]]:
        """``(hook name, fn)`` pairs for ``model.hooks`` / ``run_with_hooks`` / ``generate_tokens``."""
        return [(hook_z_name(layer), self.hook_fn(layer)) for layer in self.layers]

    def hook_fn(self, layer: int) -> Callable[..., None]:
        """The hook of one layer, taking ``z [batch, pos, head_index, d_head]`` (TransformerLens' form)."""
        index = self.heads_of.get(layer)

        def hook(z: Float[Tensor, "batch pos head_index d_head"], hook: Any = None) -> None:
            if z.shape[1] == 1 and layer in self.values:
                return  # a decoding step: this prefill was read already
            last = z[:, -1]
            self.values[layer] = last if index is None else last[:, index.to(z.device)]
            if layer == self.last_layer:
                if self.on_complete is not None:
                    self.on_complete(self.values)
                if self.stop_after_last:
                    raise _StopForward

        return hook

    def forget(self, layer: int | None = None) -> None:
        """Drop what was read (of one layer, or all): the next forward is a new prefill."""
        if layer is None:
            self.values.clear()
        else:
            self.values.pop(layer, None)

    def read(self, model: HookedVLM, inputs: VLMInputs) -> dict[int, Tensor]:
        """One prefill forward of ``inputs``, stopped after the deepest layer; returns ``values``.

        Hooks are attached for this call only and removed on every exit, errors included.
        """
        self.forget()
        with contextlib.suppress(_StopForward), model.hooks(self.hooks()):
            model(inputs)
        return self.values
