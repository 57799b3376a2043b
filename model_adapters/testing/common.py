"""Shared pieces of the tiny-checkpoint builders.

Every builder does the same four things, which live here: train a byte-level BPE tokenizer on the fly
(``train_tokenizer``), size a Llama-shaped language model and a small vision tower (``TinySizes``), and
instantiate the model with random weights, perturb its norms and save it next to its processor
(``save_tiny_checkpoint``). A builder adds only what its family needs: special tokens, the family's config
and processor classes, its chat template.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast, SiglipVisionConfig

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


def train_chatml_tokenizer(
    special_tokens: Sequence[str], *, vocab_size: int, corpus: Sequence[str], extra: dict[str, str]
) -> PreTrainedTokenizerFast:
    """A Qwen-style (ChatML) tokenizer: no BOS or unk, eos ``<|im_end|>``, pad ``<|endoftext|>``."""
    return train_tokenizer(
        special_tokens,
        vocab_size=vocab_size,
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        unk=None,
        corpus=corpus,
        extra=extra,
    )


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


@dataclass(frozen=True)
class TinySizes:
    """The sizes every tiny builder shares; each builder takes any of them as a keyword override.

    >>> TinySizes.pick({"n_layers": 3, "image_size": 64}, max_positions=1024).n_layers
    3
    """

    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int = 2
    d_mlp: int = 128
    vocab_size: int = 400
    max_positions: int = 512
    vision_d_model: int = 32
    vision_layers: int = 2

    @classmethod
    def pick(cls, overrides: Mapping[str, Any], **defaults: int) -> TinySizes:
        """The sizes named in ``overrides`` (other keys are ignored), else ``defaults``, else the class's."""
        names = {field.name for field in fields(cls)}
        return cls(**{**defaults, **{key: value for key, value in overrides.items() if key in names}})

    def text_config(
        self,
        config_class: Callable[..., PretrainedConfig],
        tokenizer: PreTrainedTokenizerFast,
        *,
        stop: Sequence[str] = (),
        **extra: Any,
    ) -> PretrainedConfig:
        """A Llama-shaped text config of these sizes with the tokenizer's pad, bos and eos token ids.

        ``stop``: further end-of-sequence tokens; eos is then the list ``[eos, *stop]``. ``extra``: more
        ``config_class`` arguments (``head_dim``, ``sliding_window``, ...).
        """
        eos: int | list[int] = tokenizer.eos_token_id
        if stop:
            vocab = tokenizer.get_vocab()
            eos = [tokenizer.eos_token_id, *(vocab[token] for token in stop)]
        return config_class(
            vocab_size=len(tokenizer),
            hidden_size=self.d_model,
            intermediate_size=self.d_mlp,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_kv_heads,
            max_position_embeddings=self.max_positions,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=eos,
            **extra,
        )

    def vision_config(
        self, config_class: Callable[..., PretrainedConfig], *, image_size: int, patch_size: int, **extra: Any
    ) -> PretrainedConfig:
        """A small vision tower of these sizes (2 heads, MLP twice as wide); ``extra``: more arguments."""
        return config_class(
            hidden_size=self.vision_d_model,
            intermediate_size=2 * self.vision_d_model,
            num_hidden_layers=self.vision_layers,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch_size,
            **extra,
        )

    def siglip_vision_config(self, *, image_size: int, patch_size: int) -> PretrainedConfig:
        """A small SigLIP tower of these sizes, without SigLIP's pooling head."""
        return self.vision_config(
            SiglipVisionConfig, image_size=image_size, patch_size=patch_size, vision_use_head=False
        )

    def gemma_text_config(
        self,
        config_class: Callable[..., PretrainedConfig],
        tokenizer: PreTrainedTokenizerFast,
        *,
        d_head: int,
        query_pre_attn_scalar: int,
        sliding_window: int,
        stop: Sequence[str] = (),
    ) -> PretrainedConfig:
        """A Gemma 2/3 text config: every layer but the last slides (window ``sliding_window``), the last
        attends globally (Gemma's local:global pattern, shortened)."""
        return self.text_config(
            config_class,
            tokenizer,
            stop=stop,
            head_dim=d_head,
            query_pre_attn_scalar=query_pre_attn_scalar,
            sliding_window=sliding_window,
            layer_types=["sliding_attention"] * (self.n_layers - 1) + ["full_attention"],
        )


def save_tiny_checkpoint(
    directory: str | Path,
    model_class: type[PreTrainedModel],
    config: PretrainedConfig,
    processor: Any,
    *,
    seed: int,
    init: Callable[[PreTrainedModel], None] | None = None,
) -> Path:
    """Instantiate ``model_class(config)`` with random weights, perturb its norms, save it with ``processor``.

    ``init`` runs on the fresh model (under ``torch.no_grad``) before the norms are perturbed, for weights
    that Hugging Face initialises to something useless. The generation config takes the text config's eos,
    pad and bos ids. The processor carries the tokenizer and the chat template, so the directory loads with
    ``AutoProcessor`` and ``load_vlm``. Returns ``directory`` as a ``Path``.
    """
    config.architectures = [model_class.__name__]
    model = model_class(config).eval()
    if init is not None:
        with torch.no_grad():
            init(model)
    perturb_norms(model, seed=seed)
    text = config.get_text_config()
    generation = model.generation_config
    generation.eos_token_id = text.eos_token_id
    generation.pad_token_id = text.pad_token_id
    generation.bos_token_id = text.bos_token_id
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return Path(directory)
