"""Tiny Qwen2.5-VL: windowed ViT (4 px patches, 2x2 merge: one token per 8x8 px) + a Qwen2.5 LM (GQA, mRoPE).

Exercised on purpose: dynamic resolution (the test images become 5x5, 6x8 and 6x4 token grids), window
attention that cuts those grids into 2x2-token windows (padded at the edges) with one full-attention block,
3-D mRoPE with sections of unequal size, biased q/k/v projections, ``<|im_end|>`` and ``<|endoftext|>`` as
end-of-sequence tokens, and no BOS token.

The processor: ``Qwen2_5_VLProcessor`` cannot be built or loaded without torchvision (it always carries a
torchvision video processor, and transformers checks that its class can be imported). The checkpoint saves
transformers' ``PaddleOCRVLProcessor`` instead: an image-only processor that does for images exactly what
the Qwen processors do (``<|image_pad|>`` repeated ``grid_thw.prod() // merge_size**2`` times,
``mm_token_type_ids`` returned) around the same ``Qwen2VLImageProcessorPil`` and tokenizer, so
``AutoProcessor.from_pretrained`` loads it with no torchvision and the model sees the very inputs the Qwen
processor would give it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import (
    PaddleOCRVLProcessor,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLVisionConfig,
)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from model_adapters.testing.common import CORPUS, TinySizes, save_tiny_checkpoint, train_chatml_tokenizer

# Qwen/Qwen2.5-VL-*-Instruct's chat template, reduced to images and text: a default system prompt when the
# conversation has none, "<|im_start|>{role}\n...<|im_end|>\n" turns, an image item rendered as
# "<|vision_start|><|image_pad|><|vision_end|>".
QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def qwen_tokenizer(sizes: TinySizes, corpus: Sequence[str] = CORPUS) -> PreTrainedTokenizerFast:
    """The Qwen-VL tokenizer layout: no BOS, eos ``<|im_end|>``, pad ``<|endoftext|>``, the vision tokens."""
    tokenizer = train_chatml_tokenizer(
        QWEN_SPECIAL_TOKENS,
        vocab_size=sizes.vocab_size,
        corpus=[*corpus, "system user assistant You are a helpful assistant."],
        extra={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
    )
    tokenizer.model_input_names = ["input_ids", "attention_mask"]  # as Qwen2Tokenizer: no token_type_ids
    return tokenizer


def qwen_vision_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """The four vision token ids every Qwen-VL config names."""
    vocab = tokenizer.get_vocab()
    return {
        "image_token_id": vocab["<|image_pad|>"],
        "video_token_id": vocab["<|video_pad|>"],
        "vision_start_token_id": vocab["<|vision_start|>"],
        "vision_end_token_id": vocab["<|vision_end|>"],
    }


def qwen_processor(
    tokenizer: PreTrainedTokenizerFast,
    *,
    patch_size: int,
    min_pixels: int,
    max_pixels: int,
    chat_template: str,
) -> PaddleOCRVLProcessor:
    """An image-only processor with the Qwen-VL image path (see the module docstring for why not Qwen's)."""
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch_size,
        merge_size=2,
        temporal_patch_size=2,
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
    )
    return PaddleOCRVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template
    )


def qwen_text_config(
    sizes: TinySizes,
    config_class: Callable[..., PretrainedConfig],
    tokenizer: PreTrainedTokenizerFast,
    *,
    init_std: float,
    **extra: Any,
) -> PretrainedConfig:
    """A Qwen-VL text config: ``<|endoftext|>`` as a second eos, ``init_std`` as the init scale."""
    return sizes.text_config(
        config_class, tokenizer, stop=["<|endoftext|>"], initializer_range=init_std, **extra
    )


def qwen_vision_config(
    sizes: TinySizes, config_class: Callable[..., PretrainedConfig], *, patch_size: int, **extra: Any
) -> PretrainedConfig:
    """A Qwen-VL vision tower of ``sizes`` (2 heads, 2x2 merge, 2-frame patches) projecting to the LM width."""
    return config_class(
        depth=sizes.vision_layers,
        hidden_size=sizes.vision_d_model,
        intermediate_size=2 * sizes.vision_d_model,
        num_heads=2,
        patch_size=patch_size,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=sizes.d_model,
        **extra,
    )


def save_qwen_checkpoint(
    directory: Path,
    model_class: type[PreTrainedModel],
    config: PretrainedConfig,
    tokenizer: PreTrainedTokenizerFast,
    *,
    seed: int,
    patch_size: int,
    min_pixels: int,
    max_pixels: int,
    chat_template: str,
) -> Path:
    """Save a tiny Qwen-VL with its image-only processor (``qwen_processor``)."""
    processor = qwen_processor(
        tokenizer,
        patch_size=patch_size,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        chat_template=chat_template,
    )
    return save_tiny_checkpoint(directory, model_class, config, processor, seed=seed)


def build_qwen2_5_vl(
    directory: Path,
    *,
    seed: int = 0,
    patch_size: int = 4,
    window_size: int = 16,
    min_pixels: int = 32 * 32,
    max_pixels: int = 64 * 64,
    mrope_section: Sequence[int] = (2, 3, 3),
    init_std: float = 0.08,
    **sizes: Any,
) -> Path:
    """Write a tiny Qwen2.5-VL; ``sizes``: any ``TinySizes`` field (other keys are ignored).

    d_head is ``d_model // n_heads`` (16 by default); ``mrope_section`` must sum to ``d_head // 2``.
    ``init_std``: the language model's init scale (Hugging Face's 0.02 gives a tiny model so flat that greedy
    decoding soon repeats one token, a weak test of decode-step positions).
    """
    lm = TinySizes.pick(sizes)
    tokenizer = qwen_tokenizer(lm)
    text = qwen_text_config(
        lm,
        Qwen2_5_VLTextConfig,
        tokenizer,
        init_std=init_std,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": list(mrope_section)},
    )
    vision = qwen_vision_config(
        lm,
        Qwen2_5_VLVisionConfig,
        patch_size=patch_size,
        window_size=window_size,
        fullatt_block_indexes=[lm.vision_layers - 1],
        tokens_per_second=2,
    )
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **qwen_vision_ids(tokenizer))
    return save_qwen_checkpoint(
        directory,
        Qwen2_5_VLForConditionalGeneration,
        config,
        tokenizer,
        seed=seed,
        patch_size=patch_size,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
    )
