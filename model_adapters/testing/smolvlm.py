"""Tiny SmolVLM: SigLIP-style tower (32 px tiles, 4 px patches), pixel shuffle x4 (4 tokens per tile), Llama LM.

SmolVLM is Idefics3's design with a smaller, more aggressive connector: the real checkpoints fold 4x4 blocks of
patch features (``scale_factor=4``), which this builder exercises (the tiny Idefics3 uses 2x2). Image splitting
is on: an image is resized so that its longest side is 96 px, rounded up to whole 32 px tiles and cut into up to
3x3 tiles plus one 32 px global view. The tokenizer adds no BOS of its own; the chat template writes
``<|im_start|>`` as SmolVLM's do. Generation stops at ``<end_of_utterance>`` or ``<|endoftext|>``.

The processor is saved as an ``Idefics3Processor`` (``model_adapters.smolvlm.image_processor_for`` says why:
``SmolVLMProcessor`` cannot be built or loaded without torchvision, for its video processor), with SmolVLM's
own PIL image processor; for images it gives the same ids, pixel values and pixel mask as ``SmolVLMProcessor``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMVisionConfig
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

from model_adapters.testing.common import CORPUS, TinySizes, train_tokenizer
from model_adapters.testing.idefics3 import IMAGE_TOKENS, TILE_TOKENS, save_idefics3_style

# HuggingFaceTB/SmolVLM2-*-Instruct's chat template (transformers' SmolVLM DEFAULT_CHAT_TEMPLATE):
# "<|im_start|>User:<image>{prompt}<end_of_utterance>\nAssistant:".
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *IMAGE_TOKENS, "<video>", *TILE_TOKENS]


def build_smolvlm(
    directory: Path,
    *,
    seed: int = 0,
    tile_size: int = 32,
    patch_size: int = 4,
    scale_factor: int = 4,
    longest_edge: int = 96,
    **sizes: Any,
) -> Path:
    """Write a tiny SmolVLM; ``sizes``: any ``TinySizes`` field (other keys are ignored)."""
    lm = TinySizes.pick(sizes, max_positions=1024)
    tokenizer = train_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=lm.vocab_size,
        bos="<|im_start|>",
        eos="<end_of_utterance>",
        pad="<|im_end|>",
        unk="<|endoftext|>",
        corpus=[*CORPUS, "User: Assistant:"],
        extra={
            "fake_image_token": "<fake_token_around_image>",
            "image_token": "<image>",
            "end_of_utterance_token": "<end_of_utterance>",
            "global_image_token": "<global-img>",
            "video_token": "<video>",
        },
        add_bos=False,
    )
    return save_idefics3_style(
        directory,
        SmolVLMForConditionalGeneration,
        SmolVLMConfig,
        SmolVLMVisionConfig,
        SmolVLMImageProcessorPil,
        lm,
        tokenizer,
        seed=seed,
        tile_size=tile_size,
        patch_size=patch_size,
        scale_factor=scale_factor,
        longest_edge=longest_edge,
        stop="<|endoftext|>",
        chat_template=SMOLVLM_CHAT_TEMPLATE,
    )
