"""A tiny LLaVA with *planted* safety heads: known heads detect trigger words and push towards refusing.

This is a ground-truth model for testing the whole method. Residual dimension ``MALICE`` is written only by
the embeddings of trigger words (``bomb``, ``steal``, ...), and read only by the planted heads: their query
weights are zero (uniform attention over the prompt) and their value weights copy ``MALICE``, so their output
at the decision position is proportional to the fraction of trigger tokens in the prompt. Their output
projection writes into residual dimension ``REFUSE``, which the unembedding maps onto refusal-opening tokens
("Sorry", "I") and away from compliance-opening ones ("Sure", "Here"). Every other head is blind to
``MALICE``. So the planted heads are, by construction, the safety heads: probes should find them, a guard on
them should separate the classes, and ablating them should lower the refusal logit far more than ablating
random heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoProcessor, LlavaForConditionalGeneration

from model_adapters.testing.common import CORPUS
from model_adapters.testing.llava import build_llava

TRIGGER_WORDS = ("bomb", "steal", "malware", "poison", "weapon", "hack", "kill", "drugs")
REFUSAL_WORDS = ("Sorry", "I")
COMPLIANCE_WORDS = ("Sure", "Here")
MALICE, REFUSE = 0, 1
PLANTED_HEADS = ((1, 2), (2, 5), (3, 0))


def _single_tokens(tokenizer: object, words: Sequence[str]) -> list[int]:
    ids = []
    for word in words:
        spaced = tokenizer.encode(" " + word, add_special_tokens=False)  # type: ignore[attr-defined]
        if len(spaced) != 1:
            raise RuntimeError(f"{' ' + word!r} is not a single token in the planted tokenizer: {spaced}")
        ids.append(spaced[0])
        bare = tokenizer.encode(word, add_special_tokens=False)  # type: ignore[attr-defined]
        if len(bare) == 1:
            ids.append(bare[0])
    return ids


@torch.no_grad()
def build_planted_checkpoint(
    directory: str | Path,
    *,
    heads: Sequence[tuple[int, int]] = PLANTED_HEADS,
    seed: int = 0,
    n_layers: int = 4,
    n_heads: int = 8,
    d_model: int = 128,
    strength: float = 1.0,
) -> Path:
    """Write a tiny LLaVA whose ``heads`` are planted safety heads (see the module docstring)."""
    directory = Path(directory)
    words = " ".join(TRIGGER_WORDS + REFUSAL_WORDS + COMPLIANCE_WORDS)
    corpus = list(CORPUS) + [f"{words} " * 40, " ".join(f" {w}" for w in TRIGGER_WORDS) * 40]
    torch.manual_seed(seed)
    build_llava(
        directory,
        seed=seed,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=n_heads,
        d_mlp=2 * d_model,
        corpus=corpus,
    )
    model = LlavaForConditionalGeneration.from_pretrained(directory, dtype=torch.float32).eval()
    tokenizer = AutoProcessor.from_pretrained(directory).tokenizer
    lm = model.model.language_model
    d_head = d_model // n_heads
    trigger_ids = _single_tokens(tokenizer, TRIGGER_WORDS)
    refusal_ids = _single_tokens(tokenizer, REFUSAL_WORDS)
    compliance_ids = _single_tokens(tokenizer, COMPLIANCE_WORDS)
    embed = lm.embed_tokens.weight
    embed[:, MALICE] = 0.0
    embed[trigger_ids, MALICE] = 1.0 * strength
    embed[:, REFUSE] = 0.0
    projector = model.model.multi_modal_projector.linear_2
    projector.weight[[MALICE, REFUSE]] = 0.0
    projector.bias[[MALICE, REFUSE]] = 0.0
    planted = {(layer, head) for layer, head in heads}
    for index, layer in enumerate(lm.layers):
        attn, mlp = layer.self_attn, layer.mlp
        layer.input_layernorm.weight[[MALICE, REFUSE]] = 1.0
        # nobody but the planted heads reads MALICE / REFUSE, and nobody else writes them
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj):
            proj.weight[:, [MALICE, REFUSE]] = 0.0
        attn.o_proj.weight[[MALICE, REFUSE]] = 0.0
        mlp.down_proj.weight[[MALICE, REFUSE]] = 0.0
        for head in range(n_heads):
            if (index, head) not in planted:
                continue
            rows = slice(head * d_head, (head + 1) * d_head)
            attn.q_proj.weight[rows] = 0.0  # uniform attention over the prompt
            attn.v_proj.weight[rows] = 0.0
            attn.v_proj.weight[head * d_head, MALICE] = 1.0  # value dim 0 = normalised MALICE
            attn.o_proj.weight[:, rows] = 0.0
            attn.o_proj.weight[REFUSE, head * d_head] = 4.0
    lm.norm.weight[REFUSE] = 1.0
    head_out = model.lm_head.weight
    head_out[:, REFUSE] = 0.0
    head_out[refusal_ids, REFUSE] = 3.0
    head_out[compliance_ids, REFUSE] = -3.0
    model.save_pretrained(directory)
    return directory
