"""Tiny Qwen3-VL: ViT with DeepStack (4 px patches, 2x2 merge: one token per 8x8 px) + a Qwen3 LM (GQA, mRoPE).

Exercised on purpose: dynamic resolution, the learned position grid (8x8) resampled to each image's patch
grid, DeepStack (the features of both vision blocks are added to the residual stream at the image tokens
after both decoder layers), interleaved 3-D mRoPE, per-head q/k RMSNorms (perturbed like every norm), an
explicit ``head_dim``, ``<|im_end|>`` and ``<|endoftext|>`` as end-of-sequence tokens, and no BOS token.
The embeddings are untied (as in the 8B checkpoint): tied, a random tiny model only repeats its last token,
which would make greedy-generation parity a weak test.

The processor is the same image-only stand-in as the tiny Qwen2.5-VL's (``Qwen3VLProcessor`` needs
torchvision for its video processor; ``model_adapters.testing.qwen2_5_vl`` says why the stand-in is exact).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import (
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLTextConfig,
    Qwen3VLVisionConfig,
)

from model_adapters.testing.common import TinySizes
from model_adapters.testing.qwen2_5_vl import (
    qwen_text_config,
    qwen_tokenizer,
    qwen_vision_config,
    qwen_vision_ids,
    save_qwen_checkpoint,
)

# Qwen/Qwen3-VL-*-Instruct's chat template, reduced to images and text: no default system prompt (a system
# message, when given, comes first), "<|im_start|>{role}\n...<|im_end|>\n" turns, an image item rendered as
# "<|vision_start|><|image_pad|><|vision_end|>".
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{{- '<|im_start|>system\n' -}}"
    "{%- if messages[0]['content'] is string -%}{{- messages[0]['content'] -}}"
    "{%- else -%}{%- for content in messages[0]['content'] -%}"
    "{%- if 'text' in content -%}{{- content['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if not (loop.first and message['role'] == 'system') -%}"
    "{{- '<|im_start|>' + message['role'] + '\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for content in message['content'] -%}"
    "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif 'text' in content -%}{{- content['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)


def build_qwen3_vl(
    directory: Path,
    *,
    seed: int = 0,
    d_head: int = 16,
    patch_size: int = 4,
    min_pixels: int = 32 * 32,
    max_pixels: int = 64 * 64,
    position_grid: int = 8,
    mrope_section: Sequence[int] = (4, 2, 2),
    init_std: float = 0.08,
    **sizes: Any,
) -> Path:
    """Write a tiny Qwen3-VL; ``sizes``: any ``TinySizes`` field (other keys are ignored).

    ``mrope_section`` must sum to ``d_head // 2``; ``position_grid`` is the side of the learned position grid;
    ``init_std``: the language model's init scale (see ``build_qwen2_5_vl``).
    """
    lm = TinySizes.pick(sizes)
    tokenizer = qwen_tokenizer(lm)
    text = qwen_text_config(
        lm,
        Qwen3VLTextConfig,
        tokenizer,
        init_std=init_std,
        head_dim=d_head,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5e6,
            "mrope_section": list(mrope_section),
            "mrope_interleaved": True,
        },
    )
    vision = qwen_vision_config(
        lm,
        Qwen3VLVisionConfig,
        patch_size=patch_size,
        num_position_embeddings=position_grid**2,
        deepstack_visual_indexes=list(range(min(lm.vision_layers, lm.n_layers))),
    )
    config = Qwen3VLConfig(
        text_config=text, vision_config=vision, tie_word_embeddings=False, **qwen_vision_ids(tokenizer)
    )
    return save_qwen_checkpoint(
        directory,
        Qwen3VLForConditionalGeneration,
        config,
        tokenizer,
        seed=seed,
        patch_size=patch_size,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        chat_template=QWEN3_VL_CHAT_TEMPLATE,
    )
