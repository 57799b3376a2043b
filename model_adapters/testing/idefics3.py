"""Tiny Idefics3: SigLIP-style tower (32 px tiles, 8 px patches), pixel-shuffle connector (4 tokens per tile), Llama LM.

Image splitting is on: an image is resized so that its longest side is 96 px, rounded up to whole 32 px tiles
and cut into up to 3x3 tiles plus one 32 px global view, so the test images (40x40, 64x48, 30x50) give
different tile grids and ``<row_i_col_j>`` tokens. Generation stops at ``<|end_of_text|>`` or
``<end_of_utterance>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    Idefics3VisionConfig,
    LlamaConfig,
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

SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<pad>",
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *[f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)],
]


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
    config = Idefics3Config(
        vision_config=lm.vision_config(Idefics3VisionConfig, image_size=tile_size, patch_size=patch_size),
        text_config=lm.text_config(LlamaConfig, tokenizer, stop=["<end_of_utterance>"]),
        scale_factor=scale_factor,
        image_token_id=tokenizer.get_vocab()["<image>"],
    )
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(
            size={"longest_edge": longest_edge},
            max_image_size={"longest_edge": tile_size},
            do_image_splitting=True,
        ),
        tokenizer=tokenizer,
        image_seq_len=(tile_size // patch_size) ** 2 // scale_factor**2,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    return save_tiny_checkpoint(directory, Idefics3ForConditionalGeneration, config, processor, seed=seed)
