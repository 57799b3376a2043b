"""Choosing the next token: greedy (argmax, Hugging Face's default) or sampling with temperature, top-k, top-p.

The filters follow Hugging Face's ``TemperatureLogitsWarper``, ``TopKLogitsWarper`` and
``TopPLogitsWarper`` in that order, so a seeded sampled generation is reproducible run to run.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def check_decoding(
    max_new_tokens: object,
    do_sample: object,
    temperature: object,
    top_k: object,
    top_p: object,
    seed: object,
) -> None:
    """Raise a clear error for a decoding argument of the wrong type or range, before any forward.

    ``max_new_tokens`` a positive int (2.5 and "3" are refused, not rounded); ``do_sample`` a bool;
    ``temperature`` a finite number > 0 when sampling; ``top_k`` None or an int >= 1; ``top_p`` None or
    a number in (0, 1]; ``seed`` None or an int.

    >>> check_decoding(2.5, False, 1.0, None, None, None)
    Traceback (most recent call last):
    ...
    ValueError: max_new_tokens must be a positive int (at least 1); got float 2.5
    """

    def is_int(value: object) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)

    def is_number(value: object) -> bool:
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))

    def refuse(name: str, expected: str, value: object) -> None:
        raise ValueError(f"{name} must be {expected}; got {type(value).__name__} {value!r}")

    if not is_int(max_new_tokens) or int(max_new_tokens) < 1:  # type: ignore[call-overload]
        refuse("max_new_tokens", "a positive int (at least 1)", max_new_tokens)
    if not isinstance(do_sample, bool):
        refuse("do_sample", "True or False", do_sample)
    if do_sample and (not is_number(temperature) or float(temperature) <= 0):  # type: ignore[arg-type]
        refuse("temperature", "a finite number > 0 when sampling (or use do_sample=False)", temperature)
    if top_k is not None and (not is_int(top_k) or int(top_k) < 1):  # type: ignore[call-overload]
        refuse("top_k", "None or an int >= 1", top_k)
    if top_p is not None and (not is_number(top_p) or not 0.0 < float(top_p) <= 1.0):  # type: ignore[arg-type]
        refuse("top_p", "None or a number in (0, 1]", top_p)
    if seed is not None and not is_int(seed):
        refuse("seed", "None or an int", seed)


def pick_tokens(
    logits: Tensor,
    do_sample: bool,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> Tensor:
    """Next tokens ``[batch]`` from ``logits [batch, vocab]``."""
    if not do_sample:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        remove = cum - sorted_logits.softmax(-1) > top_p
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
