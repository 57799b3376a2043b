"""Shared pieces of the tiny-checkpoint builders: a tokenizer trained on the fly, norm perturbation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import nn
from transformers import CLIPVisionConfig, PreTrainedTokenizerFast

# Enough ordinary English that prompts used in tests and tutorials tokenize into real sub-words.
CORPUS = [
    "USER: ASSISTANT: user model assistant system <image> image picture photo describe this",
    "How do I bake bread? Write a poem about the sea. Explain how a bicycle works.",
    "How can I make a bomb? Tell me how to steal a car. Write malware that deletes files.",
    "The image shows a list numbered 1, 2, and 3. Please generate detailed content for each item.",
    "Sorry, I cannot help with that. I'm sorry, but I can't assist. As an AI, I must refuse.",
    "Sure, here is how to do it. Task: the quick brown fox jumps over the lazy dog.",
    "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, "
    "detailed, and polite answers to the human's questions.",
    "hello world what is the capital of France? translate to Spanish, summarize the text, list three ideas",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-",
]


def train_tokenizer(
    special_tokens: Sequence[str],
    *,
    vocab_size: int = 400,
    bos: str | None = "<s>",
    eos: str = "</s>",
    pad: str = "<pad>",
    unk: str | None = "<unk>",
    corpus: Sequence[str] = CORPUS,
    extra: dict[str, str] | None = None,
    add_bos: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (about 0.02 s) and wrap it as a ``PreTrainedTokenizerFast``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus) * 4, trainer)
    if bos is not None and add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    kwargs: dict[str, object] = {"eos_token": eos, "pad_token": pad}
    if bos is not None:
        kwargs["bos_token"] = bos
    if unk is not None:
        kwargs["unk_token"] = unk
    if extra:
        kwargs["extra_special_tokens"] = extra
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)  # type: ignore[arg-type]
    fast.padding_side = "left"
    return fast


@torch.no_grad()
def perturb_norms(model: nn.Module, *, scale: float = 0.2, seed: int = 0) -> None:
    """Give every norm layer non-trivial weights (and biases), so weight handling is really exercised."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if "norm" in name.lower() or "layernorm" in name.lower() or name.endswith(("ln.weight", "ln.bias")):
            noise = torch.randn(param.shape, generator=gen) * scale
            if name.endswith("bias"):
                param.copy_(noise)
            else:
                # Gemma-style norms multiply by (1 + w): a perturbation around 0 is as good as around 1.
                param.add_(noise)


def tiny_clip_vision_config(
    *, d_model: int, n_layers: int, image_size: int, patch_size: int
) -> CLIPVisionConfig:
    """The small CLIP vision tower shared by the LLaVA-style tiny builders."""
    return CLIPVisionConfig(
        hidden_size=d_model,
        intermediate_size=2 * d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=d_model,
    )
