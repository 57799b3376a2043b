"""Tiny LLaVA-OneVision: SigLIP tower (32 px tiles, 8 px patches), anyres-max tiling, Qwen2 LM (GQA, q/k/v bias).

As in LLaVA-NeXT (``testing/llava_next.py``), an image is resized into the best of ``image_grid_pinpoints``
(here 32x32 up to 64x64 pixels), cut into 32 px tiles plus one overview tile; each tile gives 16 patch
features (SigLIP has no CLS token, so all of them are kept: ``vision_feature_select_strategy="full"``), the
tile grid is unpadded to the image's aspect ratio and every row ends with ``image_newline``. So the number of
``<image>`` tokens depends on the image's size.

The Qwen2 tokenizer adds no BOS token; a turn ends with ``<|im_end|>``, the end-of-sequence token (generation
also stops at ``<|endoftext|>``, the pad token).

The processor is saved as a ``LlavaNextProcessor`` around OneVision's own PIL image processor
(``model_adapters.llava_onevision`` says why: ``LlavaOnevisionProcessor`` can be neither built nor loaded by
``AutoProcessor`` without torchvision, for its video processor). For one image per prompt it is exact here:
both count ``<image>`` tokens with the same anyres formula (overview + unpadded grid + a newline per row;
no CLS to drop), and OneVision's one addition, shrinking a grid larger than 9 tiles' worth
(``anyres_max_9``), never applies to grids of at most 2x2 tiles. The image processor's outputs
(``pixel_values``, ``image_sizes``, ``batch_num_images``) are OneVision's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    Qwen2Config,
)
from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
    LlavaOnevisionImageProcessorPil,
)

from model_adapters.testing.common import CORPUS, TinySizes, save_tiny_checkpoint, train_chatml_tokenizer

# The shape of llava-hf/llava-onevision-qwen2-*-ov-hf's chat template (ChatML; images first in a turn, then
# "\n" + text): "<|im_start|>user\n<image>\n{prompt}<|im_end|>\n<|im_start|>assistant\n".
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}"
    "{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}"
    "{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\n' + content['text'] if message['role'] != 'assistant' else content['text'] }}{% endfor %}"
    "{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]


def build_llava_onevision(
    directory: Path, *, seed: int = 0, image_size: int = 32, patch_size: int = 8, **sizes: Any
) -> Path:
    """Write a tiny LLaVA-OneVision; ``sizes``: any ``TinySizes`` field (other keys are ignored)."""
    lm = TinySizes.pick(sizes, max_positions=1024)
    tokenizer = train_chatml_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=lm.vocab_size,
        corpus=[*CORPUS, "<|im_start|>system You are a helpful assistant.<|im_end|>"],
        extra={"image_token": "<image>", "video_token": "<video>"},
    )
    vocab = tokenizer.get_vocab()
    # 1x1 up to 2x2 tiles, as llava-hf's anyres_max_9 grid (384 px tiles) is 1x1 up to 6x6
    pinpoints = [[h * image_size, w * image_size] for h in (1, 2) for w in (1, 2)]
    config = LlavaOnevisionConfig(
        vision_config=lm.siglip_vision_config(image_size=image_size, patch_size=patch_size),
        text_config=lm.text_config(
            Qwen2Config, tokenizer, stop=["<|endoftext|>"], head_dim=lm.d_model // lm.n_heads
        ),
        image_token_index=vocab["<image>"],
        video_token_index=vocab["<video>"],
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio="anyres_max_9",
    )
    processor = LlavaNextProcessor(
        image_processor=LlavaOnevisionImageProcessorPil(
            size={"height": image_size, "width": image_size},
            image_grid_pinpoints=pinpoints,
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
        ),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_CHAT_TEMPLATE,
        num_additional_image_tokens=0,
    )
    return save_tiny_checkpoint(
        directory, LlavaOnevisionForConditionalGeneration, config, processor, seed=seed
    )
