"""Tiny Idefics3: SigLIP-style tower (32 px tiles, 8 px patches), pixel-shuffle connector (4 tokens per tile), Llama LM.

Image splitting is on: an image is resized so that its longest side is 96 px, rounded up to whole 32 px tiles
and cut into up to 3x3 tiles plus one 32 px global view, so the test images (40x40, 64x48, 30x50) give
different tile grids and ``<row_i_col_j>`` tokens. Generation stops at ``<|end_of_text|>`` or
``<end_of_utterance>``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    Idefics3VisionConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

from model_adapters.testing.common import CORPUS, TinySizes, save_tiny_checkpoint, train_tokenizer

# HuggingFaceM4/Idefics3-8B-Llama3's chat template: "<|begin_of_text|>User:<image>{prompt}<end_of_utterance>\n
# Assistant:" (a role is followed by ":" before an image and ": " before text).
IDEFICS3_CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
"""The image-layout tokens Idefics3-style processors write (SmolVLM's too)."""

TILE_TOKENS = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
"""One ``<row_i_col_j>`` token per tile of an up-to-6x6 split."""

SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<pad>", *IMAGE_TOKENS, *TILE_TOKENS]


def save_idefics3_style(
    directory: Path,
    model_class: type[PreTrainedModel],
    config_class: Callable[..., PretrainedConfig],
    vision_config_class: Callable[..., PretrainedConfig],
    image_processor_class: Callable[..., Any],
    lm: TinySizes,
    tokenizer: PreTrainedTokenizerFast,
    *,
    seed: int,
    tile_size: int,
    patch_size: int,
    scale_factor: int,
    longest_edge: int,
    stop: str,
    chat_template: str,
) -> Path:
    """Configure and save an Idefics3-design checkpoint (Idefics3, SmolVLM) with an ``Idefics3Processor``.

    ``stop``: the end-of-sequence token besides the tokenizer's eos. Image splitting is on: images are resized
    to ``longest_edge`` and cut into ``tile_size`` tiles plus one global view.
    """
    config = config_class(
        vision_config=lm.vision_config(vision_config_class, image_size=tile_size, patch_size=patch_size),
        text_config=lm.text_config(LlamaConfig, tokenizer, stop=[stop]),
        scale_factor=scale_factor,
        image_token_id=tokenizer.get_vocab()["<image>"],
    )
    processor = Idefics3Processor(
        image_processor=image_processor_class(
            size={"longest_edge": longest_edge},
            max_image_size={"longest_edge": tile_size},
            do_image_splitting=True,
        ),
        tokenizer=tokenizer,
        image_seq_len=(tile_size // patch_size) ** 2 // scale_factor**2,
        chat_template=chat_template,
    )
    return save_tiny_checkpoint(directory, model_class, config, processor, seed=seed)


def build_idefics3(
    directory: Path,
    *,
    seed: int = 0,
    tile_size: int = 32,
    patch_size: int = 8,
    scale_factor: int = 2,
    longest_edge: int = 96,
    **sizes: Any,
) -> Path:
    """Write a tiny Idefics3; ``sizes``: any ``TinySizes`` field (other keys are ignored)."""
    lm = TinySizes.pick(sizes, max_positions=1024)
    tokenizer = train_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=lm.vocab_size,
        bos="<|begin_of_text|>",
        eos="<|end_of_text|>",
        pad="<pad>",
        unk=None,
        corpus=[*CORPUS, "User: Assistant:"],
    )
    return save_idefics3_style(
        directory,
        Idefics3ForConditionalGeneration,
        Idefics3Config,
        Idefics3VisionConfig,
        Idefics3ImageProcessorPil,
        lm,
        tokenizer,
        seed=seed,
        tile_size=tile_size,
        patch_size=patch_size,
        scale_factor=scale_factor,
        longest_edge=longest_edge,
        stop="<end_of_utterance>",
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
