"""Tiny InternVL (InternVL3-style): InternViT tower (32 px tiles, 4 px patches), pixel shuffle + MLP, Qwen2 LM.

A 32 px tile gives 8x8 patch features; the CLS feature is dropped, pixel shuffle (``downsample_ratio=0.5``)
folds every 2x2 block into one vector and the projector (LayerNorm, Linear, GELU, Linear) brings it to the
language model's width: 16 ``<IMG_CONTEXT>`` tokens per tile. Dynamic tiling is on: an image is cut into the
grid of up to 4 tiles whose aspect ratio is closest to its own, plus a thumbnail tile when there is more than
one, so the test images (40x40, 64x48, 30x50) give different numbers of image tokens. The language model is a
Qwen2 (biased q/k/v, GQA); the tokenizer adds no BOS; generation stops at ``<|im_end|>`` or
``<|endoftext|>``. The vision tower's layer-scale vectors are randomised too (Hugging Face sets them to 0.1).

The processor is saved as a ``QianfanOCRProcessor`` (``model_adapters.internvl.image_processor_for`` says why:
``InternVLProcessor`` cannot be built or loaded without torchvision, for its video processor); with
``image_placeholder_token="<IMG_CONTEXT>"`` it expands images exactly as ``InternVLProcessor`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLVisionConfig,
    PreTrainedModel,
    QianfanOCRProcessor,
    Qwen2Config,
)
from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

from model_adapters.testing.common import CORPUS, TinySizes, save_tiny_checkpoint, train_chatml_tokenizer

# The chat template of the OpenGVLab/InternVL3-*-hf conversions (ChatML, no default system prompt); an image
# item renders as "<IMG_CONTEXT>\n", which the processor expands to "<img>" + n x "<IMG_CONTEXT>" + "</img>".
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<img>",
    "</img>",
    "<IMG_CONTEXT>",
    "<video>",
]


def build_internvl(
    directory: Path,
    *,
    seed: int = 0,
    tile_size: int = 32,
    patch_size: int = 4,
    max_tiles: int = 4,
    **sizes: Any,
) -> Path:
    """Write a tiny InternVL; ``sizes``: any ``TinySizes`` field (other keys are ignored)."""
    lm = TinySizes.pick(sizes, max_positions=1024)
    tokenizer = train_chatml_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=lm.vocab_size,
        corpus=[*CORPUS, "user assistant system"],
        extra={
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
    )
    downsample_ratio = 0.5
    image_seq_length = int((tile_size // patch_size) ** 2 * downsample_ratio**2)
    config = InternVLConfig(
        vision_config=lm.vision_config(
            InternVLVisionConfig, image_size=tile_size, patch_size=patch_size, attention_bias=True
        ),
        text_config=lm.text_config(Qwen2Config, tokenizer, stop=["<|endoftext|>"], tie_word_embeddings=False),
        # InternVL3-1B ties its embeddings; untied, the tiny's greedy tokens vary instead of repeating the
        # last prompt token, which makes generation parity meaningful.
        tie_word_embeddings=False,
        image_token_id=tokenizer.get_vocab()["<IMG_CONTEXT>"],
        image_seq_length=image_seq_length,
        downsample_ratio=downsample_ratio,
    )

    def init_layer_scale(model: PreTrainedModel) -> None:
        # Hugging Face fills InternViT's layer-scale vectors with 0.1: give them distinct values per channel.
        for name, param in model.named_parameters():
            if name.endswith(("lambda_1", "lambda_2")):
                param.uniform_(0.5, 1.5)

    processor = QianfanOCRProcessor(
        image_processor=GotOcr2ImageProcessorPil(
            size={"height": tile_size, "width": tile_size},
            crop_to_patches=True,
            min_patches=1,
            max_patches=max_tiles,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        ),
        tokenizer=tokenizer,
        image_seq_length=image_seq_length,
        chat_template=INTERNVL_CHAT_TEMPLATE,
        image_placeholder_token="<IMG_CONTEXT>",
    )
    return save_tiny_checkpoint(
        directory, InternVLForConditionalGeneration, config, processor, seed=seed, init=init_layer_scale
    )
