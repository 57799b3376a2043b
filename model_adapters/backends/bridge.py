"""The bridge backend: TransformerLens' ``TransformerBridge`` around the Hugging Face model.

The bridge adds ``HookPoint`` s to the Hugging Face modules without converting or folding any weight (it
does rewrap them in place), so the numbers are Hugging Face's own and TransformerLens' whole hook
vocabulary and ``ActivationCache`` analyses are available. Its own ``generate`` passes images on the first
step only and lacks a KV cache for image models, so decoding here is our loop: a KV-cached greedy (or
sampling) loop that reproduces Hugging Face ``generate`` token for token while hooks stay active.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import Tensor, nn

from model_adapters.backends import Decoding, FwdHook, sampling_generator, shape_checked
from model_adapters.sampling import pick_tokens


class BridgeBackend:
    """``Backend`` over a booted ``TransformerBridge``."""

    name = "bridge"

    def __init__(self, bridge: Any) -> None:
        self.bridge = bridge

    @property
    def hf_model(self) -> nn.Module:
        return self.bridge.original_model  # type: ignore[no-any-return]

    @property
    def hook_dict(self) -> Mapping[str, nn.Module]:
        return self.bridge.hook_dict  # type: ignore[no-any-return]

    def hooks(self, fwd_hooks: Sequence[FwdHook]) -> AbstractContextManager[Any]:
        return self.bridge.hooks(fwd_hooks=shape_checked(fwd_hooks))  # type: ignore[no-any-return]

    def forward(self, input_ids: Tensor, **kwargs: Any) -> Tensor:
        return self.bridge(input_ids, **kwargs)  # type: ignore[no-any-return]

    def run_with_cache(self, input_ids: Tensor, names_filter: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        return self.bridge.run_with_cache(input_ids, names_filter=names_filter, **kwargs)  # type: ignore[no-any-return]

    def generate(
        self, input_ids: Tensor, model_kwargs: dict[str, Any], decoding: Decoding
    ) -> tuple[Tensor, Tensor]:
        n, device = input_ids.shape[0], input_ids.device
        generator = sampling_generator(decoding, device)
        eos = torch.tensor(decoding.eos_token_ids, device=device, dtype=torch.long)
        finished = torch.zeros(n, dtype=torch.bool, device=device)
        generated = torch.empty(n, 0, dtype=torch.long, device=device)
        mask = model_kwargs["attention_mask"]
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        extra = {k: v for k, v in model_kwargs.items() if k != "attention_mask"}
        step_ids, past = input_ids, None
        for step in range(decoding.max_new_tokens):
            prefill = self.hooks(decoding.prefill_hooks) if step == 0 else contextlib.nullcontext()
            with prefill:
                logits, past = self.bridge(
                    step_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=past,
                    use_cache=True,
                    return_type="logits_and_cache",
                    **extra,
                )
            if past is None:
                raise RuntimeError(
                    "the model returned no KV cache; this transformers version is not supported by the "
                    "TransformerLens bridge (transformers 5.24.0 renamed the cache argument). Install "
                    "transformers<5.24, or use backend='hf'"
                )
            next_logits = logits[:, -1, :].float()
            if decoding.logits_processor is not None:
                next_logits = decoding.logits_processor(step, generated, next_logits)
            next_tokens = pick_tokens(
                next_logits,
                decoding.do_sample,
                decoding.temperature,
                decoding.top_k,
                decoding.top_p,
                generator,
            )
            if decoding.stop_at_eos:
                next_tokens = torch.where(
                    finished, torch.full_like(next_tokens, decoding.pad_token_id), next_tokens
                )
                finished |= torch.isin(next_tokens, eos)
            generated = torch.cat([generated, next_tokens[:, None]], dim=1)
            if decoding.stop_at_eos and bool(finished.all()):
                break
            step_ids = next_tokens[:, None]
            mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
            positions = positions[:, -1:] + 1
            extra = {k: v for k, v in model_kwargs.items() if k in decoding.decode_kwargs}
        return generated, finished
