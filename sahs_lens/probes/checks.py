"""Input checks shared by the probe fitters and the sweep: say what is wrong before any solving starts.

A probe needs finite features and both classes among its (weighted) training samples; ``C`` must be a
positive number. These checks run once per call, on the whole batch of problems, and raise ``ValueError``
with what was given and what to do (fp16 overflow is the usual source of NaN features). The NaN check is one
summing pass over the data: NaN and inf survive a sum, so only the problems whose sum is not finite are
looked at entry by entry.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sahs_lens.head_activations import HeadActivations


def _all_finite(X: Tensor) -> bool:
    """Whether every entry of ``X [P, N, D]`` is finite, in one summing pass (NaN and inf survive a sum);
    only problems whose sum is not finite are checked entry by entry (their sum may just have overflowed)."""
    sums = X.sum(dim=(1, 2), dtype=torch.float32 if X.dtype in (torch.float16, torch.bfloat16) else X.dtype)
    suspects = (~torch.isfinite(sums)).nonzero().flatten()
    return all(bool(torch.isfinite(X[int(i)]).all()) for i in suspects)


def _check_C(C: float) -> float:
    if isinstance(C, bool) or not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive finite number (inverse regularisation strength); got {C!r}")
    return float(C)


def _check_problems(X: Any, y: Any, sample_weight: Any) -> tuple[Tensor, Tensor, Tensor]:
    """Validate and broadcast ``fit_probes`` inputs to ``X [P, N, D]``, ``y [P, N]``, weights ``[P, N]``."""
    X = torch.as_tensor(X)
    if X.ndim == 2:
        X = X.unsqueeze(0)
    if X.ndim != 3:
        raise ValueError(
            f"X must be [n_problems, n_samples, n_features] or [n_samples, n_features]; got "
            f"shape {tuple(X.shape)}"
        )
    P, N, D = X.shape
    if P == 0 or N == 0 or D == 0:
        raise ValueError(
            f"X is empty (shape {tuple(X.shape)}); pass at least one problem, sample and feature"
        )
    if not X.is_floating_point():
        X = X.float()
    if not _all_finite(X):
        raise ValueError("X holds NaN or inf; probes need finite features (check for fp16 overflow)")
    y = torch.as_tensor(y, device=X.device)
    if y.ndim == 1:
        y = y.unsqueeze(0).expand(P, N)
    if tuple(y.shape) != (P, N):
        raise ValueError(f"y must be [{N}] or [{P}, {N}] to match X {tuple(X.shape)}; got {tuple(y.shape)}")
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("y must hold labels 0 (benign) and 1 (malicious) only")
    if sample_weight is None:
        c = torch.ones(P, N, device=X.device)
    else:
        c = torch.as_tensor(sample_weight, device=X.device).float()
        if c.ndim == 1:
            c = c.unsqueeze(0).expand(P, N)
        if tuple(c.shape) != (P, N):
            raise ValueError(f"sample_weight must be [{N}] or [{P}, {N}]; got {tuple(c.shape)}")
        if not bool((torch.isfinite(c) & (c >= 0)).all()):
            raise ValueError("sample_weight must be finite and non-negative")
    live = c > 0
    has_pos = (live & (y == 1)).any(1)
    has_neg = (live & (y == 0)).any(1)
    bad = (~(has_pos & has_neg)).nonzero().flatten()
    if bad.numel():
        first = int(bad[0])
        only = 1 if bool(has_pos[first]) else 0
        raise ValueError(
            f"probes need both malicious and benign samples; problem {first} (and {bad.numel() - 1} more) has "
            f"only label {only} among its weighted samples"
        )
    return X, y.float(), c


def _check_acts(acts: HeadActivations) -> None:
    if not isinstance(acts, HeadActivations):
        raise TypeError(
            f"expected HeadActivations (from collect_head_activations); got {type(acts).__name__}"
        )
    if acts.n_samples == 0:
        raise ValueError("the activations are empty (0 samples); collect activations for some samples first")
    if not _all_finite(acts.z.reshape(acts.n_samples, 1, -1)):
        acts.check_finite()  # names the offending samples


def _check_classes(labels: Tensor, what: str) -> None:
    counts = torch.bincount(labels.long().flatten(), minlength=2)
    if int(counts.min()) == 0:
        only = 1 if int(counts[1]) else 0
        raise ValueError(
            f"probes need both malicious and benign samples; got only label {only} in {what} "
            f"({int(counts[only])} samples)"
        )
