"""The ``hf`` backend: the unmodified Hugging Face model, with TransformerLens hook points where they matter.

The SAHs method reads and writes one place: each attention head's output before the output projection.
In Hugging Face models that place is the *input* of each language-model layer's ``self_attn.o_proj``,
``[batch, pos, n_heads * d_head]``; reshaped to ``[batch, pos, n_heads, d_head]`` it is TransformerLens'
``blocks.{l}.attn.hook_z``. This backend puts a ``HookPoint`` there (a forward pre-hook on ``o_proj`` that
passes the reshaped input through it), plus:

* ``blocks.{l}.attn.hook_pattern``: the attention weights ``[batch, head_index, query_pos, key_pos]``
  where the attention implementation returns them (eager attention does; read-only: changing them does
  not change the output, which is already computed);
* ``blocks.{l}.hook_attn_out``: the attention layer's output (after ``o_proj``), ``[batch, pos, d_model]``;
* ``blocks.{l}.hook_resid_post``: the decoder layer's output, ``[batch, pos, d_model]``.

The wiring (PyTorch hooks on the Hugging Face modules) is attached only while a hook context is open
(``hooks()``, ``run_with_cache``) and removed when it closes, also on error; outside, the model is exactly
Hugging Face's. Generation is Hugging Face's own ``generate`` with a logits processor, so every generation
option, cache type and device map behaves as in Hugging Face, and mRoPE models (Qwen) compute their own
3-D positions. Hooks meant for the prefill only stop running once the first logits are processed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from transformer_lens import HookedRootModule
from transformer_lens.ActivationCache import ActivationCache
from transformer_lens.hook_points import HookPoint

from model_adapters.backends import Decoding, FwdHook, PrefillGate, shape_checked
from model_adapters.structure import LanguageModel

_BRIDGE_ONLY = {
    "stack_head_results": "blocks.{l}.attn.hook_result",
    "accumulated_resid": "blocks.{l}.hook_resid_pre and ln_final.hook_scale",
    "decompose_resid": "blocks.{l}.hook_resid_pre, hook_mlp_out and ln_final.hook_scale",
    "logit_attrs": "ln_final.hook_scale and the unembedding W_U",
    "get_full_resid_decomposition": "blocks.{l}.attn.hook_result and hook_mlp_out",
    "apply_ln_to_stack": "ln_final.hook_scale",
    "compute_head_results": "blocks.{l}.attn.hook_result",
    "stack_neuron_results": "blocks.{l}.mlp.hook_post",
}


class HFActivationCache(ActivationCache):
    """TransformerLens' ``ActivationCache`` of the ``hf`` backend: indexing works as usual; the analyses
    that need hooks this backend does not place raise an error naming those hooks and the backend that has
    them."""

    def __getattribute__(self, name: str) -> Any:
        if name in _BRIDGE_ONLY:
            needs = _BRIDGE_ONLY[name]

            def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise NotImplementedError(
                    f"ActivationCache.{name} needs {needs}, which the 'hf' backend does not place (it hooks "
                    "hook_z, hook_pattern, hook_attn_out and hook_resid_post); load the model with "
                    "load_vlm(..., backend='bridge') for TransformerLens' full hook vocabulary"
                )

            return unavailable
        return super().__getattribute__(name)


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_z = HookPoint()
        self.hook_pattern = HookPoint()


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = _Attention()
        self.hook_attn_out = HookPoint()
        self.hook_resid_post = HookPoint()


def _active(point: HookPoint) -> bool:
    return bool(point._forward_hooks)


class HFHookPoints(HookedRootModule):
    """The hook points of one Hugging Face model, named as TransformerLens names them.

    A ``HookedRootModule``: ``hooks()`` and ``run_with_cache`` are TransformerLens' own, with the wiring onto
    the Hugging Face modules attached for the duration of each hook context.
    """

    def __init__(self, hf_model: nn.Module, language_model: LanguageModel) -> None:
        super().__init__()
        object.__setattr__(self, "_hf", hf_model)  # not a submodule: the hook tree stays small
        object.__setattr__(self, "_lm", language_model)
        self.blocks = nn.ModuleList(_Block() for _ in language_model.layers)
        self._depth = 0
        self._handles: list[Any] = []
        self.setup()

    def forward(self, input_ids: Tensor, **kwargs: Any) -> Tensor:
        hf: Any = self._hf
        return hf(input_ids=input_ids, **kwargs).logits  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def hooks(  # type: ignore[override]
        self,
        fwd_hooks: Sequence[FwdHook] = (),
        bwd_hooks: Sequence[FwdHook] = (),
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
    ) -> Iterator[HFHookPoints]:
        if not fwd_hooks and not bwd_hooks:  # nothing to attach: the model stays exactly Hugging Face's
            yield self
            return
        self._wire()
        try:
            with super().hooks(list(fwd_hooks), list(bwd_hooks), reset_hooks_end, clear_contexts):
                yield self
        finally:
            self._unwire()

    def _wire(self) -> None:
        self._depth += 1
        if self._depth > 1:
            return
        lm: Any = self._lm
        blocks: list[Any] = list(self.blocks)
        layer: Any
        for block, layer in zip(blocks, lm.layers, strict=True):
            attention = layer.self_attn
            self._handles += [
                attention.o_proj.register_forward_pre_hook(self._z_hook(block.attn.hook_z, lm)),
                attention.register_forward_hook(self._attention_hook(block)),
                layer.register_forward_hook(self._resid_hook(block.hook_resid_post)),
            ]

    def drop_wiring_early(self) -> None:
        """After the prefill of a generation whose only hooks were prefill hooks: remove the wiring now, so
        the decode steps run exactly Hugging Face's modules (the hook context still closes as usual)."""
        if self._depth == 1 and self._handles:
            for handle in self._handles:
                handle.remove()
            self._handles = []

    def _unwire(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            for handle in self._handles:
                handle.remove()
            self._handles = []

    @staticmethod
    def _z_hook(point: HookPoint, lm: LanguageModel) -> Any:
        def pre(_module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
            if not _active(point):
                return None
            x = args[0]
            z = point(x.reshape(*x.shape[:-1], lm.n_heads, lm.d_head))
            return (z.reshape(x.shape), *args[1:])

        return pre

    @staticmethod
    def _attention_hook(block: _Block) -> Any:
        def post(_module: nn.Module, _args: Any, output: Any) -> Any:
            attn_out, rest = (output[0], output[1:]) if isinstance(output, tuple) else (output, ())
            if rest and rest[0] is not None and _active(block.attn.hook_pattern):
                block.attn.hook_pattern(rest[0])
            if _active(block.hook_attn_out):
                attn_out = block.hook_attn_out(attn_out)
                return (attn_out, *rest) if isinstance(output, tuple) else attn_out
            return None

        return post

    @staticmethod
    def _resid_hook(point: HookPoint) -> Any:
        def post(_module: nn.Module, _args: Any, output: Any) -> Any:
            if not _active(point):
                return None
            if isinstance(output, tuple):
                return (point(output[0]), *output[1:])
            return point(output)

        return post


class HFBackend:
    """``Backend`` over the plain Hugging Face model."""

    name = "hf"

    def __init__(self, hf_model: nn.Module, language_model: LanguageModel) -> None:
        self._hf = hf_model
        self.points = HFHookPoints(hf_model, language_model)

    @property
    def hf_model(self) -> nn.Module:
        return self._hf

    @property
    def hook_dict(self) -> Mapping[str, nn.Module]:
        return self.points.hook_dict

    def hooks(self, fwd_hooks: Sequence[FwdHook]) -> contextlib.AbstractContextManager[Any]:
        return self.points.hooks(shape_checked(fwd_hooks))

    def forward(self, input_ids: Tensor, **kwargs: Any) -> Tensor:
        return self.points(input_ids, **kwargs)  # type: ignore[no-any-return]

    def run_with_cache(self, input_ids: Tensor, names_filter: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        return_cache_object = kwargs.pop("return_cache_object", True)
        remove_batch_dim = bool(kwargs.get("remove_batch_dim", False))
        logits, cache = self.points.run_with_cache(input_ids, names_filter=names_filter, **kwargs)
        if return_cache_object:
            return logits, HFActivationCache(dict(cache), self.points, has_batch_dim=not remove_batch_dim)
        return logits, dict(cache)

    def generate(
        self, input_ids: Tensor, model_kwargs: dict[str, Any], decoding: Decoding
    ) -> tuple[Tensor, Tensor]:
        config: Any = copy.deepcopy(self._hf.generation_config)
        config.max_new_tokens = decoding.max_new_tokens
        config.min_new_tokens = None
        config.do_sample = decoding.do_sample
        config.num_beams = 1
        config.temperature = decoding.temperature if decoding.do_sample else None
        config.top_k = decoding.top_k if decoding.do_sample else None
        config.top_p = decoding.top_p if decoding.do_sample else None
        # [] and not None: None makes Hugging Face fall back to the model's own eos and stop there anyway
        config.eos_token_id = list(decoding.eos_token_ids) if decoding.stop_at_eos else []
        config.pad_token_id = decoding.pad_token_id
        gate = PrefillGate()
        prompt_length = input_ids.shape[1]
        needed = decoding.logits_processor is not None or bool(decoding.prefill_hooks)
        processors = (
            [_LogitsAdapter(decoding, gate, prompt_length, self.points.drop_wiring_early)] if needed else []
        )
        rng = torch.random.fork_rng(devices=[]) if decoding.do_sample else contextlib.nullcontext()
        with rng, self.hooks(gate.wrap(decoding.prefill_hooks)):
            if decoding.do_sample:
                torch.manual_seed(0 if decoding.seed is None else decoding.seed)
            out = self._hf.generate(  # type: ignore[operator]
                input_ids=input_ids, generation_config=config, logits_processor=processors, **model_kwargs
            )
        tokens = out[:, prompt_length:]
        eos = torch.tensor(decoding.eos_token_ids, device=tokens.device, dtype=torch.long)
        finished = (
            torch.isin(tokens, eos).any(-1)
            if decoding.stop_at_eos
            else torch.zeros_like(tokens[:, 0], dtype=torch.bool)
        )
        return tokens, finished


class _LogitsAdapter:
    """Hugging Face's ``(input_ids, scores)`` logits-processor call as our ``(step, generated, logits)``;
    its first call also closes the prefill gate (the prefill forward is done by then)."""

    def __init__(
        self, decoding: Decoding, gate: PrefillGate, prompt_length: int, after_prefill: Callable[[], None]
    ) -> None:
        self.decoding, self.gate, self.prompt_length = decoding, gate, prompt_length
        self.after_prefill = after_prefill

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if self.gate.open:
            self.gate.open = False
            self.after_prefill()
        if self.decoding.logits_processor is None:
            return scores
        generated = input_ids[:, self.prompt_length :]
        return self.decoding.logits_processor(generated.shape[1], generated, scores.float()).to(scores.dtype)
