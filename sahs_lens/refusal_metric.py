"""The first-token refusal metric: does the model lean towards opening a refusal?

At the decision position the model chooses its first answer token. ``RefusalLogitDiff`` compares the
logits of tokens that open a refusal ("Sorry", "I", "As", ...) with those that open compliance ("Sure",
"Here", "1", ...): their mean difference is positive when the model leans towards refusing. Patching and the
demo measure each head's effect on it (``interventions.patching_sweep``). ``first_token_ids`` finds each
word's first token with and without a leading space, as tokenizers split them differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jaxtyping import Float
from torch import Tensor

from model_adapters import HookedVLM

__all__ = ["DEFAULT_COMPLIANCE_WORDS", "DEFAULT_REFUSAL_WORDS", "RefusalLogitDiff", "first_token_ids"]

DEFAULT_REFUSAL_WORDS = ("Sorry", "I", "As", "Unfortunately", "No")
DEFAULT_COMPLIANCE_WORDS = ("Sure", "Here", "Certainly", "1", "To", "The", "Step")


def first_token_ids(model: HookedVLM, words: Sequence[str]) -> list[int]:
    """The first token of each word, written with and without a leading space (duplicates removed)."""
    ids: list[int] = []
    for word in words:
        for variant in (word, " " + word):
            tokens = model.tokenizer.encode(variant, add_special_tokens=False)
            if tokens and tokens[0] not in ids:
                ids.append(int(tokens[0]))
    return ids


@dataclass
class RefusalLogitDiff:
    """Metric: mean logit of refusal-opening tokens minus mean logit of compliance-opening tokens.

    Computed at the decision position (the logits of the first generated token), per row. Positive means
    the model leans towards starting a refusal.
    """

    refusal_ids: list[int]
    compliance_ids: list[int]

    @classmethod
    def for_model(
        cls,
        model: HookedVLM,
        refusal_words: Sequence[str] = DEFAULT_REFUSAL_WORDS,
        compliance_words: Sequence[str] = DEFAULT_COMPLIANCE_WORDS,
    ) -> RefusalLogitDiff:
        refusal = first_token_ids(model, refusal_words)
        compliance = [i for i in first_token_ids(model, compliance_words) if i not in refusal]
        if not refusal or not compliance:
            raise ValueError("the refusal and compliance token sets must both be non-empty and disjoint")
        return cls(refusal, compliance)

    def __call__(self, logits: Float[Tensor, "batch pos d_vocab"]) -> Float[Tensor, " batch"]:
        last = logits[:, -1].float()
        return last[:, self.refusal_ids].mean(-1) - last[:, self.compliance_ids].mean(-1)
