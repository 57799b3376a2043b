"""Tiny LLaVA-NeXT: CLIP tower (32 px tiles, 8 px patches), anyres tiling over small grid pinpoints, Mistral LM.

An image is resized into the best of ``image_grid_pinpoints`` (here 32x64, 64x32 and 64x64 pixels), cut into
32 px tiles plus one downscaled overview tile; each tile gives 16 patch features, the tile features are
unpadded to the image's aspect ratio and every row ends with the learned ``image_newline`` vector. So the
number of ``<image>`` tokens depends on the image's size (test images of different shapes give different
counts), which is what makes LLaVA-NeXT batches interesting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor, MistralConfig
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

from model_adapters.testing.common import CORPUS, TinySizes
from model_adapters.testing.llava import llava_tokenizer, save_llava_style

# The shape of llava-hf/llava-v1.6-mistral-7b-hf's chat template: "[INST] <image>\n{prompt} [/INST]".
LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}[INST] "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %} [/INST]"
    "{% elif message['role'] == 'assistant' %} {% for item in message['content'] %}{{ item['text'] }}"
    "{% endfor %}</s>{% endif %}{% endfor %}"
)


def build_llava_next(
    directory: Path, *, seed: int = 0, image_size: int = 32, patch_size: int = 8, **sizes: Any
) -> Path:
    """Write a tiny LLaVA-NeXT; ``sizes``: any ``TinySizes`` field (other keys are ignored)."""
    lm = TinySizes.pick(sizes, max_positions=1024)
    tokenizer = llava_tokenizer(lm, [*CORPUS, "[INST] [/INST]"])
    pinpoints = [[image_size, 2 * image_size], [2 * image_size, image_size], [2 * image_size, 2 * image_size]]
    return save_llava_style(
        directory,
        seed=seed,
        sizes=lm,
        tokenizer=tokenizer,
        text_config=lm.text_config(
            MistralConfig, tokenizer, head_dim=lm.d_model // lm.n_heads, sliding_window=None
        ),
        image_size=image_size,
        patch_size=patch_size,
        classes=(LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor),
        image_processor=LlavaNextImageProcessorPil(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
            image_grid_pinpoints=pinpoints,
        ),
        chat_template=LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE,
        image_grid_pinpoints=pinpoints,
    )
