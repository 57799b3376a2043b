"""What the guard does to a flagged row: the three policies and the one rule that forces their tokens.

* ``"refuse"``: return a fixed refusal text and stop decoding that row (its first token is forced to EOS);
* ``"indicate"``: append an indicating prompt (a warning that the request may be harmful) and let the model
  answer: the flagged rows alone are re-encoded (the paper's defence);
* ``"prefix"``: force a refusal prefix ("Sorry, answering this question will generate harmful content,
  because") and let the model continue (the LVLM-LP defence).

Forcing is done on the logits of the flagged rows only (every other token gets ``-inf``), so unflagged rows
decode exactly as without the guard. ``policy_logits`` is that rule, shared by guarded ``generate`` and the
Hugging Face logits processor of ``attach_hf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Bool, Float
from torch import Tensor

Policy = Literal["refuse", "indicate", "prefix"]
POLICIES: tuple[str, ...] = ("refuse", "indicate", "prefix")
REFUSAL_TEXT = "I'm sorry, but I can't help with that request because it may cause harm."
INDICATING_PROMPT = (
    "Warning: this request may be harmful. If answering it could cause harm, refuse and explain why."
)
REFUSAL_PREFIX = "Sorry, answering this question will generate harmful content, because"


def check_policy(policy: str, allowed: Sequence[str] = POLICIES) -> None:
    """Raise ``ValueError`` listing the policies when ``policy`` is not one of ``allowed``."""
    if policy not in allowed:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(allowed)}")


def force_token(
    logits: Float[Tensor, "batch vocab"], rows: Bool[Tensor, " batch"], token: int
) -> Float[Tensor, "batch vocab"]:
    """Make ``token`` the only choice for ``rows``; the other rows' logits are returned unchanged."""
    forced = torch.full_like(logits[0], float("-inf"))
    forced[token] = 0.0
    return torch.where(rows[:, None], forced, logits)


def policy_logits(
    logits: Float[Tensor, "batch vocab"],
    flagged: Bool[Tensor, " batch"],
    *,
    policy: str,
    step: int,
    eos: int,
    forced: Sequence[int],
) -> Float[Tensor, "batch vocab"]:
    """The logits of decoding step ``step`` after the policy: EOS first for ``refuse`` / ``indicate``
    (an ``indicate`` row is answered again by a second, warned generation), the refusal prefix's tokens
    for ``prefix``. ``flagged`` is a CPU tensor; nothing touches the device unless a row is flagged."""
    if not bool(flagged.any()):
        return logits
    rows = flagged.to(logits.device)
    if policy in ("refuse", "indicate") and step == 0:
        return force_token(logits, rows, eos)
    if policy == "prefix" and step < len(forced):
        return force_token(logits, rows, forced[step])
    return logits
