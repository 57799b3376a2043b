"""Tiny LLaVA-1.5: CLIP vision tower (32 px, 8 px patches -> 16 image tokens) + projector + Llama (GQA)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import (
    CLIPImageProcessor,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from model_adapters.testing.common import CORPUS, perturb_norms, tiny_clip_vision_config, train_tokenizer

# The llava-hf conversions' chat template: "USER: <image>\n{prompt} ASSISTANT:" (no system prompt).
LLAVA_HF_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_llava(
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
    max_positions: int = 512,
    corpus: Sequence[str] = CORPUS,
    **_: Any,
) -> Path:
    tokenizer = train_tokenizer(
        ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        vocab_size=vocab_size,
        extra={"image_token": "<image>"},
        corpus=corpus,
    )
    n_patches = (image_size // patch_size) ** 2
    vision = tiny_clip_vision_config(
        d_model=vision_d_model, n_layers=vision_layers, image_size=image_size, patch_size=patch_size
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.get_vocab()["<image>"],
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=n_patches,
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    model = LlavaForConditionalGeneration(config).eval()
    perturb_norms(model, seed=seed)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_HF_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
