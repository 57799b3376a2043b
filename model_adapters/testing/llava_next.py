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

from transformers import (
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextProcessor,
    MistralConfig,
)
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

from model_adapters.testing.common import CORPUS, perturb_norms, tiny_clip_vision_config, train_tokenizer

# The shape of llava-hf/llava-v1.6-mistral-7b-hf's chat template: "[INST] <image>\n{prompt} [/INST]".
LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}[INST] "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %} [/INST]"
    "{% elif message['role'] == 'assistant' %} {% for item in message['content'] %}{{ item['text'] }}"
    "{% endfor %}</s>{% endif %}{% endfor %}"
)


def build_llava_next(
    directory: Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    image_size: int = 32,
    patch_size: int = 8,
    vision_d_model: int = 32,
    vision_layers: int = 2,
    vocab_size: int = 400,
    max_positions: int = 1024,
    **_: Any,
) -> Path:
    tokenizer = train_tokenizer(
        ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        vocab_size=vocab_size,
        corpus=[*CORPUS, "[INST] [/INST]"],
        extra={"image_token": "<image>"},
    )
    pinpoints = [[image_size, 2 * image_size], [2 * image_size, image_size], [2 * image_size, 2 * image_size]]
    vision = tiny_clip_vision_config(
        d_model=vision_d_model, n_layers=vision_layers, image_size=image_size, patch_size=patch_size
    )
    text = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        head_dim=d_model // n_heads,
        max_position_embeddings=max_positions,
        sliding_window=None,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaNextConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.get_vocab()["<image>"],
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=pinpoints,
        image_seq_length=(image_size // patch_size) ** 2,
    )
    config.architectures = ["LlavaNextForConditionalGeneration"]
    model = LlavaNextForConditionalGeneration(config).eval()
    perturb_norms(model, seed=seed)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
