"""How a model is hooked: one seam, two backends, the same hook names on both.

``HookedVLM`` (``model_adapters.base``) is the one surface the method uses; underneath it a *backend*
runs the Hugging Face model and exposes TransformerLens hook points:

* ``"hf"`` (``hf.py``): the unmodified Hugging Face model. TransformerLens ``HookPoint`` s are placed where
  the method reads and writes (``blocks.{l}.attn.hook_z`` at the input of each language-model attention
  layer's output projection, ``hook_pattern``, ``hook_attn_out``, ``hook_resid_post``), wired in only while
  a hook context is open, and generation is Hugging Face's own ``generate``: every generation option, cache
  type, mRoPE and device map works as in Hugging Face. Any ``AutoModelForImageTextToText`` whose language
  model has standard self-attention with an ``o_proj`` can be hooked (``model_adapters.structure``).
* ``"bridge"`` (``bridge.py``): TransformerLens' ``TransformerBridge``, which rewrites the model's modules
  in place and offers TransformerLens' full hook vocabulary (``hook_q/k/v``, ``hook_resid_pre``,
  ``ln_final.hook_scale``, ...) and ``ActivationCache`` analyses (``stack_head_results``,
  ``decompose_resid``, ``logit_attrs``); for the families it supports.

``choose_backend`` implements ``load_vlm(..., backend="auto")``: the bridge when it supports the family and
the caller asked for the full hook vocabulary (``full_hooks=True``), the ``hf`` backend otherwise. Both give
the same logits, the same ``hook_z`` and the same greedy tokens as Hugging Face, so artifacts made on one
load on the other (the backend is recorded in provenance but not compared).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from model_adapters.families import family_for, supported_families
from model_adapters.registry import Family

BACKENDS: tuple[str, ...] = ("auto", "bridge", "hf")

HookFn = Callable[..., Any]
FwdHook = tuple[str | Callable[[str], bool], HookFn]
# A logits processor for generate: (step, generated tokens so far [batch, step], logits [batch, vocab]) -> logits
LogitsProcessor = Callable[[int, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Decoding:
    """Everything a backend needs to decode: budget, sampling settings, stopping, hooks, the logits rule."""

    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int | None
    stop_at_eos: bool
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    prefill_hooks: Sequence[FwdHook]
    logits_processor: LogitsProcessor | None
    decode_kwargs: tuple[str, ...]


class Backend(Protocol):
    """What ``HookedVLM`` needs of a backend."""

    name: str

    @property
    def hf_model(self) -> nn.Module: ...

    @property
    def hook_dict(self) -> Mapping[str, nn.Module]: ...

    def hooks(self, fwd_hooks: Sequence[FwdHook]) -> AbstractContextManager[Any]: ...

    def forward(self, input_ids: Tensor, **kwargs: Any) -> Tensor: ...

    def run_with_cache(self, input_ids: Tensor, names_filter: Any, **kwargs: Any) -> tuple[Tensor, Any]: ...

    def generate(
        self, input_ids: Tensor, model_kwargs: dict[str, Any], decoding: Decoding
    ) -> tuple[Tensor, Tensor]:
        """New tokens ``[batch, n_new]`` (pad after a row finished) and ``finished [batch]``."""
        ...


def choose_backend(backend: str, family: Family, *, full_hooks: bool) -> str:
    """The backend ``load_vlm`` uses: ``backend`` itself, or what ``"auto"`` means for this family."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "bridge" if (full_hooks and family.bridge) else "hf"
    if backend == "bridge" and not family.bridge:
        bridged = sorted(name for name in supported_families() if family_for(name).bridge)
        raise ValueError(
            f"TransformerLens' bridge cannot wrap the {family.name} family here; it supports "
            f"{', '.join(bridged)}. Use backend='hf' (the Hugging Face model with hook points), which "
            "hooks every supported family"
        )
    return backend


@dataclass
class PrefillGate:
    """Hooks that run on the prefill forward only: open until the first logits are processed."""

    open: bool = True

    def wrap(self, hooks: Sequence[FwdHook]) -> list[FwdHook]:
        def gated(fn: HookFn) -> HookFn:
            def hook(tensor: Tensor, hook: Any) -> Any:
                return fn(tensor, hook=hook) if self.open else None

            return hook

        return [(name, gated(fn)) for name, fn in hooks]


def shape_checked(hooks: Sequence[FwdHook]) -> list[FwdHook]:
    """``hooks``, each refusing to return anything but ``None`` or a tensor of the shape it was given.

    A hook that returns the wrong shape would otherwise fail later, deep inside the model (a reshape or a
    matmul), without naming the hook; this names the hook point and the two shapes."""

    def checked(name: str | Callable[[str], bool], fn: HookFn) -> HookFn:
        def hook(tensor: Tensor, hook: Any) -> Any:
            out = fn(tensor, hook=hook)
            if out is not None and (not isinstance(out, Tensor) or out.shape != tensor.shape):
                what = (
                    f"a tensor of shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
                )
                raise ValueError(
                    f"a hook on {name if isinstance(name, str) else hook.name} returned {what}; a hook must return "
                    "a tensor of the "
                    f"shape it was given {tuple(tensor.shape)} (or None to leave it unchanged)"
                )
            return out

        return hook

    return [(name, checked(name, fn)) for name, fn in hooks]


def sampling_generator(decoding: Decoding, device: torch.device) -> torch.Generator | None:
    if not decoding.do_sample:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(0 if decoding.seed is None else decoding.seed)
    return generator
