"""Tiny Idefics3: SigLIP-style tower (32 px tiles, 8 px patches), pixel-shuffle connector (4 tokens per tile), Llama LM.

Image splitting is on: an image is resized so that its longest side is 96 px, rounded up to whole 32 px tiles
and cut into up to 3x3 tiles plus one 32 px global view, so the test images (40x40, 64x48, 30x50) give
different tile grids and ``<row_i_col_j>`` tokens. Generation stops at ``<|end_of_text|>`` or
``<end_of_utterance>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3Processor,
    Idefics3VisionConfig,
    LlamaConfig,
)
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

from model_adapters.testing.common import CORPUS, perturb_norms, train_tokenizer

# HuggingFaceM4/Idefics3-8B-Llama3's chat template: "<|begin_of_text|>User:<image>{prompt}<end_of_utterance>\n
# Assistant:" (a role is followed by ":" before an image and ": " before text).
IDEFICS3_CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<pad>",
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *[f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)],
]


def build_idefics3(
    directory: Path,
    *,
    seed: int = 0,
    n_layers: int = 2,
    d_model: int = 64,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    d_mlp: int = 128,
    tile_size: int = 32,
    patch_size: int = 8,
    scale_factor: int = 2,
    longest_edge: int = 96,
    vision_d_model: int = 32,
    vision_layers: int = 2,
    vocab_size: int = 400,
    max_positions: int = 1024,
    **_: Any,
) -> Path:
    tokenizer = train_tokenizer(
        SPECIAL_TOKENS,
        vocab_size=vocab_size,
        bos="<|begin_of_text|>",
        eos="<|end_of_text|>",
        pad="<pad>",
        unk=None,
        corpus=[*CORPUS, "User: Assistant:"],
    )
    vocab = tokenizer.get_vocab()
    ids = {tok: vocab[tok] for tok in SPECIAL_TOKENS}
    image_seq_len = (tile_size // patch_size) ** 2 // scale_factor**2
    vision = Idefics3VisionConfig(
        hidden_size=vision_d_model,
        intermediate_size=2 * vision_d_model,
        num_hidden_layers=vision_layers,
        num_attention_heads=2,
        image_size=tile_size,
        patch_size=patch_size,
    )
    eos = [ids["<|end_of_text|>"], ids["<end_of_utterance>"]]
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=max_positions,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<|begin_of_text|>"],
        eos_token_id=eos,
    )
    config = Idefics3Config(
        vision_config=vision,
        text_config=text,
        scale_factor=scale_factor,
        image_token_id=ids["<image>"],
    )
    config.architectures = ["Idefics3ForConditionalGeneration"]
    model = Idefics3ForConditionalGeneration(config).eval()
    perturb_norms(model, seed=seed)
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = ids["<pad>"]
    model.generation_config.bos_token_id = ids["<|begin_of_text|>"]
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": longest_edge},
        max_image_size={"longest_edge": tile_size},
        do_image_splitting=True,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory
