"""Guarding plain Hugging Face ``generate``: ``o_proj`` pre-hooks read the heads, a logits processor acts.

``SafetyHeadGuard.attach_hf`` needs no TransformerLens at all: the input of each language-model attention
layer's output projection *is* ``hook_z`` (``[batch, pos, n_heads * d_head]``, reshaped to heads), so a
forward pre-hook on ``o_proj`` reads the decision position during Hugging Face's own prefill, and a
transformers-compatible logits processor applies the policy (``refuse`` or ``prefix``) to flagged rows.
Inputs must be left-padded, so that the last column is every row's decision position: a prefill whose last
column is padding in some row, or longer than the model's context, is refused before it is scored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from sahs_lens.guard.policies import REFUSAL_PREFIX, check_policy, policy_logits
from sahs_lens.guard.reading import GuardReading, HeadScorer


def check_hf_model(hf_model: Any) -> None:
    """Refuse what ``attach_hf`` cannot hook: a ``HookedVLM`` (guard it with ``generate``) or a module that is
    not a Hugging Face model (no ``config``)."""
    from model_adapters import HookedVLM

    if isinstance(hf_model, HookedVLM):
        raise TypeError(
            "attach_hf guards a plain Hugging Face model; this is a HookedVLM: use guard.generate(model, ...) "
            "or guard.score_inputs(model, ...), or pass its Hugging Face model (model.hf_model)"
        )
    if not isinstance(hf_model, nn.Module) or not hasattr(hf_model, "config"):
        raise TypeError(
            f"attach_hf needs a Hugging Face model (a PreTrainedModel, with .config and .generate); got "
            f"{type(hf_model).__name__}"
        )


class HFGuardSession:
    """State of a guard attached to a Hugging Face model: ``flagged`` and ``scores`` of the last prefill."""

    def __init__(
        self, guard: HeadScorer, policy: str, tokenizer: Any, hf_model: nn.Module, n_heads: int | None
    ) -> None:
        check_policy(policy, ("refuse", "prefix"))
        self.guard = guard
        self.policy = policy
        self.n_heads = n_heads
        config: Any = getattr(hf_model, "config", None)
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        context = getattr(text, "max_position_embeddings", None)
        self.n_ctx: int | None = int(context) if isinstance(context, int) and context > 0 else None
        self.reading = GuardReading(guard, stop_after_capture=False)
        gen = getattr(hf_model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        self.eos = eos if isinstance(eos, int) else (eos[0] if eos else 0)
        self.forced: list[int] = []
        if policy == "prefix":
            if tokenizer is None:
                raise ValueError("policy='prefix' needs tokenizer= to encode the refusal prefix")
            self.forced = tokenizer.encode(" " + REFUSAL_PREFIX, add_special_tokens=False)
        self.logits_processor = _HFLogitsProcessor(self)
        self.mismatches: list[str] = []
        """What differed from the guard's provenance when attached with ``allow_mismatch=True``."""

    def check_inputs(self, _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A forward pre-hook on the whole model: refuse, before anything is scored, a prefill whose last
        column is padding in some row (right padding: the guard would read a pad position) or that is
        longer than the model's context."""
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        if ids is None or ids.ndim != 2 or ids.shape[1] <= 1:
            return  # a decoding step (or inputs_embeds): nothing new to check
        if mask is not None and mask.ndim == 2 and not bool(mask[:, -1].all()):
            rows = (mask[:, -1] == 0).nonzero().flatten().tolist()
            raise ValueError(
                f"row(s) {rows[:10]} end in padding: the guard reads every row's last position, so inputs "
                "must be left-padded; set tokenizer.padding_side = 'left' before encoding"
            )
        if self.n_ctx is not None and ids.shape[1] > self.n_ctx:
            raise ValueError(
                f"the prompt is {ids.shape[1]} tokens long but the model's context is {self.n_ctx} tokens; the "
                "guard would score a position the model never trained on: shorten the prompt"
            )

    def pre_hook(self, layer: int) -> Callable[[nn.Module, tuple[Tensor, ...]], None]:
        """A forward pre-hook for layer ``layer`` 's ``o_proj``: its input, reshaped to heads, is ``hook_z``."""
        hook = self.reading.hook_fn(layer)
        d_head = self.guard.d_head

        def pre(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            x = args[0]
            heads = self.n_heads or x.shape[-1] // d_head
            if x.shape[1] > 1:  # a new prefill: forget the last call's state
                self.reading.reader.forget(layer)
                self.logits_processor.start = None
            hook(x.reshape(x.shape[0], x.shape[1], heads, d_head))

        return pre

    @property
    def flagged(self) -> list[bool]:
        return self.reading.flagged.tolist()  # type: ignore[no-any-return]

    @property
    def scores(self) -> list[float]:
        return self.reading.scores.tolist()  # type: ignore[no-any-return]


class _HFLogitsProcessor:
    """A transformers-compatible logits processor (``__call__(input_ids, scores)``) applying the policy."""

    def __init__(self, session: HFGuardSession) -> None:
        self.session = session
        self.start: int | None = None

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if self.start is None or input_ids.shape[1] < self.start:
            self.start = input_ids.shape[1]
        session = self.session
        return policy_logits(
            scores,
            session.reading.flagged,
            policy=session.policy,
            step=input_ids.shape[1] - self.start,
            eos=session.eos,
            forced=session.forced,
        )
