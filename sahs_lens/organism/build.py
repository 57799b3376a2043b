"""Build the untrained organism: a byte-level BPE tokenizer, a tiny LLaVA config and its processor.

The organism is a plain Hugging Face ``LlavaForConditionalGeneration`` (CLIP vision tower, two-layer
projector, Llama language model), so ``model_adapters.load_vlm`` loads it like any hub model and nothing in
the method knows it is special. Three choices make it trainable on a CPU in minutes:

- the tokenizer is trained on the training prompts and answers only (``vocab_size`` tokens, 8,192 by
  default), so the embedding matrix is small and every token is used;
- the vision patch size equals the typographic grid's cell size (``render.CELL``), so one image token is
  one drawn word (``render.render_grid``);
- the image processor maps white to 0 and ink to -2, so a blank patch embeds to nothing and a cell's
  features are its word's, not the shared page's.

``build_organism_checkpoint`` writes the processor files (tokenizer, chat template) and returns the freshly
initialised model; ``train.train_organism`` trains it and saves the weights next to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from sahs_lens.data import FIGSTEP_PROMPT
from sahs_lens.organism.recipe import (
    REFUSALS,
    SPECIAL_TOKENS,
    OrganismConfig,
    TrainItem,
    benign_answer,
)

__all__ = ["build_organism_checkpoint", "tokenizer_corpus"]


def tokenizer_corpus(items: Sequence[TrainItem]) -> list[str]:
    """The texts the tokenizer is trained on: the template, refusals, training prompts and answers."""
    corpus = ["USER: ASSISTANT: <image>", FIGSTEP_PROMPT, *REFUSALS]
    corpus += [item.prompt for item in items if item.kind == "text"]
    corpus += [benign_answer(item.prompt) for item in items if item.kind == "text" and item.label == 0]
    corpus += ["abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-/&%$#+="]
    return corpus


def build_organism_checkpoint(
    directory: Path, cfg: OrganismConfig, items: Sequence[TrainItem]
) -> tuple[Any, Any]:
    """Write the untrained organism's processor files (tokenizer, chat template); return (model, processor).

    The model is initialised from ``cfg.seed``; the tokenizer is trained on the training prompts only.
    """
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from model_adapters.testing.common import train_tokenizer
    from model_adapters.testing.llava import LLAVA_HF_CHAT_TEMPLATE

    if cfg.image_size % cfg.patch_size:
        raise ValueError(
            f"image_size {cfg.image_size} must be a multiple of patch_size {cfg.patch_size} so that glyph "
            "cells and patches coincide"
        )
    tokenizer = train_tokenizer(
        list(SPECIAL_TOKENS),
        vocab_size=cfg.vocab_size,
        extra={"image_token": "<image>"},
        corpus=tokenizer_corpus(items),
    )
    n_patches = (cfg.image_size // cfg.patch_size) ** 2
    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_d_model,
        intermediate_size=4 * cfg.vision_d_model,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        projection_dim=cfg.vision_d_model,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=int(tokenizer.convert_tokens_to_ids("<image>")),  # type: ignore[arg-type]
        vision_feature_layer=-1,  # the tower's last layer (all of it is trained; -2 would leave one idle)
        vision_feature_select_strategy="default",
        image_seq_length=n_patches,
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    torch.manual_seed(cfg.seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": cfg.image_size},
        crop_size={"height": cfg.image_size, "width": cfg.image_size},
        resample=Image.Resampling.NEAREST,  # a glyph cell stays a glyph cell if a user passes a larger image
        # White (the page) is 0 and ink is -2: a blank patch embeds to nothing (the patch embedding has no
        # bias), so a cell's features are its word's, not the page's. CLIP's own statistics leave every
        # patch dominated by the shared white background, which the tiny tower then failed to see past.
        image_mean=[1.0, 1.0, 1.0],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=cfg.patch_size,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_HF_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    directory.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(directory)
    return model, processor
