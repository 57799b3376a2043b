"""Tiny Gemma 3 multimodal: SigLIP tower (32 px, 4 px patches) pooled to 16 soft tokens + a Gemma 3 LM (GQA).

Exercised on purpose: ``(1 + w)`` RMSNorms (q/k norms and the four per-layer norms, perturbed around 0),
``query_pre_attn_scalar`` different from ``head_dim``, a sliding-window layer whose window (8 tokens) is
shorter than an image, bidirectional attention inside each image block, the scaled token embedding, tied
embeddings, and ``<end_of_turn>`` as a second end-of-sequence token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3Processor,
    Gemma3TextConfig,
    SiglipVisionConfig,
)
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

from model_adapters.testing.common import CORPUS, perturb_norms, train_tokenizer

# google/gemma-3-*-it's chat template, reduced to what a one-turn prompt uses: it starts with the BOS token,
# turns are "<start_of_turn>{role}\n...<end_of_turn>\n", the assistant role is called "model", a system message
# is folded into the first user turn, and an image item renders as "<start_of_image>".
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

SPECIAL_TOKENS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]


def build_gemma3(
    directory: Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_head: int = 16,
    d_mlp: int = 128,
    image_size: int = 32,
    patch_size: int = 4,
    mm_tokens_per_image: int = 16,
    sliding_window: int = 8,
    query_pre_attn_scalar: int = 24,
    vision_d_model: int = 32,
    vision_layers: int = 2,
    vocab_size: int = 400,
    max_positions: int = 512,
    **_: Any,
) -> Path:
    tokenizer = train_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=vocab_size,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        corpus=[*CORPUS, "user model"],
        extra={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
            "start_of_turn_token": "<start_of_turn>",
            "end_of_turn_token": "<end_of_turn>",
        },
    )
    vocab = tokenizer.get_vocab()
    ids = {tok: vocab[tok] for tok in SPECIAL_TOKENS}
    vision = SiglipVisionConfig(
        hidden_size=vision_d_model,
        intermediate_size=2 * vision_d_model,
        num_hidden_layers=vision_layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        vision_use_head=False,
    )
    # Every layer but the last slides (window 8), the last attends globally: Gemma 3's 5:1 pattern, shortened.
    layer_types = ["sliding_attention"] * (n_layers - 1) + ["full_attention"]
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        head_dim=d_head,
        query_pre_attn_scalar=query_pre_attn_scalar,
        sliding_window=sliding_window,
        layer_types=layer_types,
        max_position_embeddings=max_positions,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<bos>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
    )
    config = Gemma3Config(
        vision_config=vision,
        text_config=text,
        mm_tokens_per_image=mm_tokens_per_image,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    config.architectures = ["Gemma3ForConditionalGeneration"]
    model = Gemma3ForConditionalGeneration(config).eval()
    with torch.no_grad():
        # Hugging Face initialises the projector to zero, which would make every image invisible to the LM.
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        proj.normal_(0.0, vision_d_model**-0.5)
    perturb_norms(model, seed=seed)
    model.generation_config.eos_token_id = [ids["<eos>"], ids["<end_of_turn>"]]
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.bos_token_id = ids["<bos>"]
    image_processor = Gemma3ImageProcessorPil(
        size={"height": image_size, "width": image_size}, do_pan_and_scan=False
    )
    processor = Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=mm_tokens_per_image,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
