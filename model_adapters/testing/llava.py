"""Tiny LLaVA-1.5: CLIP vision tower (32 px, 8 px patches -> 16 image tokens) + projector + Llama (GQA)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from model_adapters.testing.common import CORPUS, TinySizes, save_tiny_checkpoint, train_tokenizer

# The llava-hf conversions' chat template: "USER: <image>\n{prompt} ASSISTANT:" (no system prompt).
LLAVA_HF_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for item in message['content'] %}{{ item['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def llava_tokenizer(sizes: TinySizes, corpus: Sequence[str]) -> PreTrainedTokenizerFast:
    """The LLaVA family's Llama-style tokenizer: ``<s>``, ``</s>``, ``<pad>``, ``<unk>``, ``<image>``."""
    return train_tokenizer(
        ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        vocab_size=sizes.vocab_size,
        extra={"image_token": "<image>"},
        corpus=corpus,
    )


def save_llava_style(
    directory: Path,
    *,
    seed: int,
    sizes: TinySizes,
    tokenizer: PreTrainedTokenizerFast,
    text_config: PretrainedConfig,
    image_size: int,
    patch_size: int,
    classes: tuple[Callable[..., PretrainedConfig], type[PreTrainedModel], Callable[..., Any]],
    image_processor: Any,
    chat_template: str,
    **config_extra: Any,
) -> Path:
    """Write a LLaVA-style checkpoint: a CLIP tower (penultimate layer, no CLS), a projector, ``text_config``.

    ``classes``: the family's (config, model, processor) classes; ``config_extra``: more config arguments.
    """
    config_class, model_class, processor_class = classes
    vision = sizes.vision_config(
        CLIPVisionConfig, image_size=image_size, patch_size=patch_size, projection_dim=sizes.vision_d_model
    )
    config = config_class(
        vision_config=vision,
        text_config=text_config,
        image_token_index=tokenizer.get_vocab()["<image>"],
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=(image_size // patch_size) ** 2,
        **config_extra,
    )
    processor = processor_class(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        chat_template=chat_template,
        num_additional_image_tokens=1,
    )
    return save_tiny_checkpoint(directory, model_class, config, processor, seed=seed)


def build_llava(
    directory: Path,
    *,
    seed: int = 0,
    image_size: int = 32,
    patch_size: int = 8,
    corpus: Sequence[str] = CORPUS,
    **sizes: Any,
) -> Path:
    """Write a tiny LLaVA-1.5; ``sizes``: any ``TinySizes`` field (other keys are ignored)."""
    lm = TinySizes.pick(sizes)
    tokenizer = llava_tokenizer(lm, corpus)
    return save_llava_style(
        directory,
        seed=seed,
        sizes=lm,
        tokenizer=tokenizer,
        text_config=lm.text_config(LlamaConfig, tokenizer),
        image_size=image_size,
        patch_size=patch_size,
        classes=(LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor),
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        ),
        chat_template=LLAVA_HF_CHAT_TEMPLATE,
    )
