"""Tiny PaliGemma 2: SigLIP tower (32 px, 8 px patches -> 16 image tokens), linear projector, Gemma 2 LM (GQA).

Exercised on purpose: the prefix (image tokens, BOS, prompt, newline) attends bidirectionally through
``token_type_ids``, while generated tokens are causal; Gemma 2's ``(1 + w)`` RMSNorms (four per layer,
perturbed around 0), attention-logit soft-capping, ``query_pre_attn_scalar`` different from ``head_dim``,
a sliding-window layer whose window (8 tokens) is shorter than an image, the scaled token embedding and
tied embeddings. PaliGemma counts positions from 1, not 0.

PaliGemma checkpoints ship no chat template, and neither does this one: ``PaliGemmaProcessor`` writes the
image tokens, the BOS token and the closing newline itself. Its constructor adds the 1,024 ``<locXXXX>``
and 128 ``<segXXX>`` detection/segmentation tokens to the tokenizer, so the vocabulary is sized after it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    Gemma2Config,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
)
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from model_adapters.testing.common import CORPUS, TinySizes, save_tiny_checkpoint, train_tokenizer

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]


def build_paligemma(
    directory: Path,
    *,
    seed: int = 0,
    d_head: int = 16,
    image_size: int = 32,
    patch_size: int = 8,
    sliding_window: int = 8,
    query_pre_attn_scalar: int = 24,
    **sizes: Any,
) -> Path:
    """Write a tiny PaliGemma 2; ``sizes``: any ``TinySizes`` field (other keys are ignored)."""
    lm = TinySizes.pick(sizes)
    # The tokenizer adds no BOS of its own: PaliGemma's processor writes it after the image tokens.
    tokenizer = train_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=lm.vocab_size,
        bos="<bos>",
        eos="<eos>",
        corpus=[*CORPUS, "caption en answer en detect"],
        extra={"image_token": "<image>"},
        add_bos=False,
    )
    n_image_tokens = (image_size // patch_size) ** 2
    processor = PaliGemmaProcessor(
        image_processor=SiglipImageProcessorPil(
            size={"height": image_size, "width": image_size}, image_seq_length=n_image_tokens
        ),
        tokenizer=tokenizer,
    )
    # Every layer but the last slides (window 8), the last attends globally.
    text = lm.gemma_text_config(
        Gemma2Config,
        tokenizer,
        d_head=d_head,
        query_pre_attn_scalar=query_pre_attn_scalar,
        sliding_window=sliding_window,
    )
    text.vocab_size = len(tokenizer)  # the processor added the <loc>/<seg> tokens
    config = PaliGemmaConfig(
        vision_config=lm.siglip_vision_config(image_size=image_size, patch_size=patch_size),
        text_config=text,
        image_token_index=tokenizer.get_vocab()["<image>"],
        vocab_size=len(tokenizer),
        projection_dim=lm.d_model,
        hidden_size=lm.d_model,
    )
    return save_tiny_checkpoint(directory, PaliGemmaForConditionalGeneration, config, processor, seed=seed)
