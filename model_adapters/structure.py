"""Finding the language model inside a vision-language model by its structure, not by a per-family table.

Every vision-language model that sahs_lens can hook has a language model made of decoder layers, each with
a self-attention module that ends in an output projection ``o_proj``. The input of ``o_proj`` is the
concatenation of the heads' outputs, ``[batch, pos, n_heads * d_head]``: exactly TransformerLens'
``hook_z`` once reshaped to ``[batch, pos, n_heads, d_head]``. Vision towers use other names (CLIP and
SigLIP ``out_proj``, Qwen's ``proj``), so "a list of layers whose ``self_attn`` has an ``o_proj``" singles
out the language model's decoder layers in every family seen so far (LLaVA, LLaVA-NeXT, LLaVA-OneVision,
Gemma 3, Idefics3, SmolVLM, Qwen2.5-VL, Qwen3-VL, InternVL, PaliGemma).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class LanguageModel:
    """The decoder layers of a model's language model, and the shape of their attention heads."""

    path: str
    layers: tuple[nn.Module, ...]
    n_heads: int
    d_head: int

    @property
    def attention(self) -> list[nn.Module]:
        """Each layer's self-attention module (``.o_proj`` is its output projection)."""
        return [layer.self_attn for layer in self.layers]  # type: ignore[misc]


def _is_decoder_layer(module: nn.Module) -> bool:
    attention = getattr(module, "self_attn", None)
    return isinstance(attention, nn.Module) and isinstance(getattr(attention, "o_proj", None), nn.Module)


def find_language_model(hf_model: nn.Module) -> LanguageModel:
    """The language model's decoder layers: the longest ``ModuleList`` whose every element has
    ``self_attn.o_proj``. Raises ``ValueError`` saying what structure was missing when there is none."""
    candidates: list[tuple[str, nn.ModuleList]] = [
        (name, module)
        for name, module in hf_model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0 and all(_is_decoder_layer(m) for m in module)
    ]
    if not candidates:
        raise ValueError(
            f"cannot hook {type(hf_model).__name__}: found no list of decoder layers whose self-attention "
            "(`layer.self_attn`) ends in an output projection (`self_attn.o_proj`), the input of which is "
            "hook_z. sahs_lens hooks language models with standard self-attention; see "
            "model_adapters.supported_families() for the families known to work"
        )
    # wrapped modules (TransformerLens' bridge) repeat the list under `_original_component`: take the shortest path
    path, layers = max(candidates, key=lambda item: (len(item[1]), -len(item[0])))
    text = _text_config(hf_model)
    n_heads = int(getattr(text, "num_attention_heads", 0) or 0)
    d_head = int(getattr(text, "head_dim", None) or (text.hidden_size // n_heads if n_heads else 0))
    if n_heads <= 0 or d_head <= 0:
        raise ValueError(
            f"cannot read the attention shape of {type(hf_model).__name__}: its text config has "
            f"num_attention_heads={n_heads!r}, head_dim={getattr(text, 'head_dim', None)!r}"
        )
    return LanguageModel(path=path, layers=tuple(layers), n_heads=n_heads, d_head=d_head)


def _text_config(hf_model: nn.Module) -> Any:
    config = hf_model.config
    getter = getattr(config, "get_text_config", None)
    return getter() if callable(getter) else config
