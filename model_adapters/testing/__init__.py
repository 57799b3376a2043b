"""Tiny offline checkpoints of every supported family and of three language models, for tests, tutorials
and benchmarks.

Each builder writes a real Hugging Face checkpoint directory (``config.json``, ``model.safetensors``,
tokenizer files, processor config and chat template) with random weights, a byte-level BPE tokenizer trained
on the fly, and **perturbed norm weights** (random init sets every norm weight to 1, which would hide any
bug in weight handling). Nothing touches the network; a checkpoint builds in well under a second.

>>> from model_adapters.testing import load_tiny
>>> model = load_tiny("llava")            # a HookedVLM around a 2-layer tiny LLaVA
>>> path = build_tiny_checkpoint("llava")  # or just the directory, to load with load_vlm / Hugging Face
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from model_adapters.base import HookedVLM
from model_adapters.loading import load_vlm
from model_adapters.testing.gemma3 import build_gemma3
from model_adapters.testing.idefics3 import build_idefics3
from model_adapters.testing.internvl import build_internvl
from model_adapters.testing.language_models import build_gemma3_lm, build_llama_lm, build_qwen3_lm
from model_adapters.testing.llava import build_llava
from model_adapters.testing.llava_next import build_llava_next
from model_adapters.testing.llava_onevision import build_llava_onevision
from model_adapters.testing.paligemma import build_paligemma
from model_adapters.testing.qwen2_5_vl import build_qwen2_5_vl
from model_adapters.testing.qwen3_vl import build_qwen3_vl
from model_adapters.testing.smolvlm import build_smolvlm

Builder = Callable[..., Path]
"""``fn(directory, *, seed, **overrides) -> directory``: writes one family's tiny checkpoint."""
_BUILDERS: dict[str, Builder] = {
    "gemma3": build_gemma3,
    "idefics3": build_idefics3,
    "internvl": build_internvl,
    "llava": build_llava,
    "llava_next": build_llava_next,
    "llava_onevision": build_llava_onevision,
    "paligemma": build_paligemma,
    "qwen2_5_vl": build_qwen2_5_vl,
    "qwen3_vl": build_qwen3_vl,
    "smolvlm": build_smolvlm,
}
_LM_BUILDERS: dict[str, Builder] = {
    "gemma3_lm": build_gemma3_lm,
    "llama_lm": build_llama_lm,
    "qwen3_lm": build_qwen3_lm,
}
_CACHE: dict[tuple[Any, ...], Path] = {}
_CACHE_ROOT: tempfile.TemporaryDirectory[str] | None = None


def tiny_families() -> list[str]:
    """Vision-language families that have a tiny-checkpoint builder."""
    return sorted(_BUILDERS)


def tiny_language_models() -> list[str]:
    """Tiny causal language models (``testing.language_models``), loaded by structure."""
    return sorted(_LM_BUILDERS)


def build_tiny_checkpoint(
    family: str = "llava", directory: str | Path | None = None, *, seed: int = 0, **overrides: Any
) -> Path:
    """Write a tiny random checkpoint of ``family`` to ``directory`` (a cached temp dir when None)."""
    builders = {**_BUILDERS, **_LM_BUILDERS}
    if family not in builders:
        raise ValueError(
            f"no tiny checkpoint builder for {family!r}; available: "
            f"{', '.join(tiny_families() + tiny_language_models())}"
        )
    if directory is None:
        key = (family, seed, tuple(sorted(overrides.items())))
        if key in _CACHE and (_CACHE[key] / "config.json").exists():
            return _CACHE[key]
        global _CACHE_ROOT
        if _CACHE_ROOT is None:
            _CACHE_ROOT = tempfile.TemporaryDirectory(prefix="sahs_tiny_")
        directory = Path(_CACHE_ROOT.name) / f"{family}-{len(_CACHE)}"
        _CACHE[key] = directory
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return builders[family](directory, seed=seed, **overrides)


def load_tiny(
    family: str = "llava",
    *,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    template: str | None = None,
    **overrides: Any,
) -> HookedVLM:
    """Build (or reuse) a tiny checkpoint of ``family`` and load it with ``load_vlm``."""
    path = build_tiny_checkpoint(family, seed=seed, **overrides)
    return load_vlm(path, dtype=dtype, template=template)
