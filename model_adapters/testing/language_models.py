"""Tiny causal language models (Llama, Qwen3, Gemma 3 text), loaded by structure with no family of their own.

Each is a real ``*ForCausalLM`` checkpoint directory (``config.json``, ``model.safetensors``, tokenizer files
with the line's chat template) with random weights and perturbed norms, like the vision-language builders.
What each exercises on purpose:

* ``llama_lm``: grouped-query attention, a BOS token that the chat template writes *and* the tokenizer
  adds (``registry.strip_template_bos`` must keep one), untied embeddings;
* ``qwen3_lm``: ChatML turns, no BOS, per-head q/k RMSNorms, an explicit ``head_dim`` (d_head x n_heads is
  not d_model), two end-of-sequence tokens;
* ``gemma3_lm``: ``(1 + w)`` norms, ``query_pre_attn_scalar``, a sliding-window layer shorter than a prompt,
  the scaled embedding, tied embeddings, the assistant role called ``model``.

Their chat templates take the message content as a plain string, as real text chat templates do (SmolLM2's
concatenates ``message['content']``): ``language_models.TextProcessor`` must flatten the content for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from model_adapters.testing.common import (
    CORPUS,
    TinySizes,
    perturb_norms,
    train_chatml_tokenizer,
    train_tokenizer,
)

# Llama 3 Instruct's template, one turn, content as a string.
LLAMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim }}"
    "{{ '<|eot_id|>' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif -%}"
)
# ChatML (Qwen, SmolLM2) with a default system prompt, content as a string (SmolLM2's template is this shape).
CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
GEMMA_TEXT_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def _save(
    directory: Path,
    model_class: type[PreTrainedModel],
    config: PretrainedConfig,
    tokenizer: PreTrainedTokenizerFast,
    chat_template: str,
    *,
    seed: int,
) -> Path:
    config.architectures = [model_class.__name__]
    model = model_class(config).eval()
    perturb_norms(model, seed=seed)
    if not getattr(config, "tie_word_embeddings", False):
        with torch.no_grad():  # a random tiny model with tied embeddings only repeats its last token
            model.get_output_embeddings().weight.normal_(0.0, 0.5)  # type: ignore[union-attr]
    generation = model.generation_config
    generation.eos_token_id = config.eos_token_id
    generation.pad_token_id = config.pad_token_id
    generation.bos_token_id = config.bos_token_id
    model.save_pretrained(directory)
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(directory)
    return Path(directory)


def build_llama_lm(directory: Path, *, seed: int = 0, **sizes: Any) -> Path:
    """A tiny ``LlamaForCausalLM`` with a Llama 3-style chat template (BOS written and added)."""
    lm = TinySizes.pick(sizes)
    tokenizer = train_tokenizer(
        ["<s>", "</s>", "<pad>", "<unk>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        vocab_size=lm.vocab_size,
        corpus=[*CORPUS, "user assistant system"],
    )
    config = lm.text_config(LlamaConfig, tokenizer, stop=["<|eot_id|>"], tie_word_embeddings=False)
    return _save(directory, LlamaForCausalLM, config, tokenizer, LLAMA_CHAT_TEMPLATE, seed=seed)


def build_qwen3_lm(directory: Path, *, seed: int = 0, d_head: int = 24, **sizes: Any) -> Path:
    """A tiny ``Qwen3ForCausalLM`` with a ChatML template (no BOS) and an explicit ``head_dim``."""
    lm = TinySizes.pick(sizes)
    tokenizer = train_chatml_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        vocab_size=lm.vocab_size,
        corpus=[*CORPUS, "user assistant system"],
        extra={},
    )
    config = lm.text_config(
        Qwen3Config, tokenizer, stop=["<|endoftext|>"], head_dim=d_head, tie_word_embeddings=False
    )
    return _save(directory, Qwen3ForCausalLM, config, tokenizer, CHATML_TEMPLATE, seed=seed)


def build_gemma3_lm(
    directory: Path,
    *,
    seed: int = 0,
    d_head: int = 16,
    sliding_window: int = 8,
    query_pre_attn_scalar: int = 24,
    **sizes: Any,
) -> Path:
    """A tiny ``Gemma3ForCausalLM`` (the text-only Gemma 3, as gemma-3-270m) with Gemma's chat template."""
    lm = TinySizes.pick(sizes)
    tokenizer = train_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"],
        vocab_size=lm.vocab_size,
        bos="<bos>",
        eos="<eos>",
        corpus=[*CORPUS, "user model"],
    )
    config = lm.gemma_text_config(
        Gemma3TextConfig,
        tokenizer,
        stop=["<end_of_turn>"],
        d_head=d_head,
        query_pre_attn_scalar=query_pre_attn_scalar,
        sliding_window=sliding_window,
    )
    return _save(directory, Gemma3ForCausalLM, config, tokenizer, GEMMA_TEXT_CHAT_TEMPLATE, seed=seed)
