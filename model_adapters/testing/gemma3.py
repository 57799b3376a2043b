"""Tiny Gemma 3 multimodal: SigLIP tower (32 px, 4 px patches) pooled to 16 soft tokens + a Gemma 3 LM (GQA).

Exercised on purpose: ``(1 + w)`` RMSNorms (q/k norms and the four per-layer norms, perturbed around 0),
``query_pre_attn_scalar`` different from ``head_dim``, a sliding-window layer whose window (8 tokens) is
shorter than an image, bidirectional attention inside each image block, the scaled token embedding, tied
embeddings, and ``<end_of_turn>`` as a second end-of-sequence token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3Processor,
    Gemma3TextConfig,
    PreTrainedModel,
)
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

from model_adapters.testing.common import CORPUS, TinySizes, save_tiny_checkpoint, train_tokenizer

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
    d_head: int = 16,
    image_size: int = 32,
    patch_size: int = 4,
    mm_tokens_per_image: int = 16,
    sliding_window: int = 8,
    query_pre_attn_scalar: int = 24,
    **sizes: Any,
) -> Path:
    """Write a tiny Gemma 3; ``sizes``: any ``TinySizes`` field (other keys are ignored)."""
    lm = TinySizes.pick(sizes)
    tokenizer = train_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=lm.vocab_size,
        bos="<bos>",
        eos="<eos>",
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
    config = Gemma3Config(
        vision_config=lm.siglip_vision_config(image_size=image_size, patch_size=patch_size),
        # Every layer but the last slides (window 8), the last attends globally: Gemma 3's 5:1 pattern, shortened.
        text_config=lm.gemma_text_config(
            Gemma3TextConfig,
            tokenizer,
            stop=["<end_of_turn>"],
            d_head=d_head,
            query_pre_attn_scalar=query_pre_attn_scalar,
            sliding_window=sliding_window,
        ),
        mm_tokens_per_image=mm_tokens_per_image,
        boi_token_index=vocab["<start_of_image>"],
        eoi_token_index=vocab["<end_of_image>"],
        image_token_index=vocab["<image_soft_token>"],
    )

    def init_projector(model: PreTrainedModel) -> None:
        # Hugging Face initialises the projector to zero, which would make every image invisible to the LM.
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, lm.vision_d_model**-0.5)

    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessorPil(
            size={"height": image_size, "width": image_size}, do_pan_and_scan=False
        ),
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=mm_tokens_per_image,
    )
    return save_tiny_checkpoint(
        directory, Gemma3ForConditionalGeneration, config, processor, seed=seed, init=init_projector
    )
