"""Linear probes on every attention head at once, and the few-shot sweep that finds the safety heads.

**What a probe says about a head.** A probe is a logistic regression that reads one head's output at the
decision position (``blocks.{l}.attn.hook_z[:, -1, h]``, a ``d_head`` vector) and predicts whether the prompt
is malicious. If a *linear* read-out of a head separates malicious from benign prompts on held-out data, the
head already carries the information "this request is risky" before the model has produced a single token.
Probe accuracy is evidence of *information*, not of *use*: a head can encode risk that the model ignores. The
causal test is ablation and patching (``sahs_lens.interventions``); probes only nominate candidates.

**Why few shots, and why stability.** With ~10% of the data more than half of all heads of LLaVA-1.5-7B
probe above 80% accuracy, so accuracy alone cannot single out the heads that matter. Shrink the training set
to a handful of samples per class and most heads degrade and start to swing from one random draw to the next;
a few stay accurate with low variance across draws. Those are the *safety heads*: their risk signal is so
strong and low-dimensional that two or four examples suffice to find it. ``probe_sweep`` measures this:
for each shot count ``n`` it draws ``n`` samples per class at random, fits a probe on every head, scores it on
the held-out rest, and repeats, giving ``accuracy[shot, repeat, layer, head_index]``. ``rank_heads``
(``sahs_lens.ranking``) turns that into a ``HeadSet``.

**How the probes are solved.** Every probe minimises scikit-learn's ``LogisticRegression(C=C)`` objective,

    f(w, b) = 0.5 * ||w||^2 + C * sum_i s_i * log(1 + exp(-(2 y_i - 1) * (x_i . w + b)))

(L2 on the weights, unpenalised intercept ``b``, sample weights ``s_i``), so a probe here and a probe there
are the same probe. A sweep over LLaVA-1.5-7B is 1,024 heads x 20 repeats = 20,480 independent problems per
shot count; instead of a Python loop they are solved together by a batched damped Newton method (IRLS with
an Armijo line search), stopping each problem when the largest entry of the gradient of
``f / (C * sum_i s_i)`` falls below ``tol``: scikit-learn's stopping rule for ``lbfgs`` (default 1e-6 here,
1e-4 there). Newton needs a handful of steps where L-BFGS needs 20-100 on anisotropic head outputs with large
offsets. Each step solves one linear system per problem, in whichever space is smaller:

* ``primal`` (more samples than features): ``theta = (w, b)`` and the ``(D + 1) x (D + 1)`` Hessian
  ``X^T S X + diag(1, ..., 1, 0)`` (``X`` with a column of ones; ``S = C p (1 - p)``), by batched Cholesky.
* ``dual`` (``N`` below ~``7/8 D``, every few-shot probe): the weights stay in the span of the training
  samples, ``w = X^T a`` (representer theorem), and the Newton step reduces to the ``N x N`` system
  ``I + S^1/2 K S^1/2`` with the Gram matrix ``K = X X^T`` formed once per problem. A 4-shot probe on
  ``d_head = 128`` is then an 8 x 8 solve instead of a 129 x 129 one.

Forming and factoring the system is most of the cost of a step, so a factorisation is reused (a *chord*
step: two products with ``X`` and two triangular solves) for as long as it keeps shrinking the gradient at
least 4-fold per step. In a sweep, repeat 0 of each head is solved first and warm-starts the head's other
repeats (same pool, nearby optimum): a cold probe needs 2-3 factorisations, a warm one about one. Features
are centred first (the intercept absorbs the mean exactly), which keeps float32 accurate when head outputs
share a large offset. Finished problems leave the batch, so stragglers do not cost the rest; problems are
solved in chunks of ~64 MB whose scratch buffers are reused, so repeated passes stay in cache and large
buffers are not page-faulted in again for every chunk.

**Precision.** Few-shot probes on large head outputs are the hard case: with one or two samples per class
and norms in the hundreds, the optimum sits at margins of 10-15, where ``p (1 - p)`` is ~1e-6. Residuals
and curvature weights are computed as ``-sigmoid(-m)`` and ``sigmoid(m) sigmoid(-m)`` (never ``p - 1``,
which keeps two digits in float32 there). Every float32 solve is then *certified*: the gradient is
recomputed from scratch at the returned probe, and the few problems that stalled at float32's floor, or
whose tracked margins drifted, are solved again in float64 (``_refine_in_float64``). A sweep on such
activations once returned NaN for every 1-shot probe (chance accuracy on every head) before this.

``tests/unit/test_probes.py`` checks coefficients, intercepts and test accuracy against scikit-learn.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from sahs_lens._version import __version__
from sahs_lens.head_activations import HeadActivations

__all__ = [
    "METRICS",
    "HeadProbes",
    "ProbeFit",
    "ProbeSweep",
    "fit_head_probes",
    "fit_probes",
    "predict_proba",
    "probe_sweep",
    "resolve_shots",
]

Space = Literal["auto", "primal", "dual"]
ShotSpec = int | float | str
METRICS = ("accuracy", "auroc", "f1")
SWEEP_FORMAT = "sahs_lens.probe_sweep/1"
SWEEP_TENSORS = "probe_sweep.safetensors"
SWEEP_JSON = "probe_sweep.json"

_ARMIJO = 1e-4  # sufficient-decrease constant of the line search
_MAX_HALVINGS = 30  # step halvings before a problem is declared stalled
_CERTIFY = 10.0  # a returned probe's recomputed gradient may exceed tol by this factor (float32 round-off)
_PATIENCE = 6  # steps without a 10% better gradient before a problem is declared stalled
_PROGRESS = 0.9
_REFRESH = 0.25  # refactor a problem's Hessian when its last step shrank the gradient less than 4-fold
_SOLVE_BYTES = 64 * 2**20  # working memory of one batched solve (a chunk of problems; cache-friendly)
_SWEEP_BYTES = 512 * 2**20  # working memory of one head batch of a sweep


# =========================================================================================================
# Batched Newton solver (one chunk of problems)
# =========================================================================================================


def _log_loss(m: Tensor, y: Tensor, c: Tensor) -> Tensor:
    """Weighted logistic loss per problem, ``sum_i c_i log(1 + exp(-(2 y_i - 1) m_i))``, in the stable form."""
    return (c * F.softplus(m * (1.0 - 2.0 * y))).sum(-1)


def _residual(m: Tensor, y: Tensor) -> Tensor:
    """``sigmoid(m) - y`` for labels in {0, 1}, without cancellation: ``-sigmoid(-m)`` where ``y = 1``.

    Written as ``p - 1`` a confident positive's residual (``p = 1 - 1e-5``) keeps only two significant digits
    in float32, and the gradient ``X^T rho`` inherits that error times the feature scale: on head outputs of
    norm ~1,000 (two-sample probes, where the optimum has margins ~10) it sits above any useful tolerance.
    """
    return torch.where(y > 0.5, -torch.sigmoid(-m), torch.sigmoid(m))


def _curvature(m: Tensor) -> Tensor:
    """``p (1 - p)`` as ``sigmoid(m) sigmoid(-m)``: relative precision at any margin (same reason)."""
    return torch.sigmoid(m) * torch.sigmoid(-m)


def _cho_solve(L: Tensor, rhs: Tensor) -> Tensor:
    """Solve ``L L^T x = rhs`` by two batched triangular solves (much faster than ``cholesky_solve`` on CPU)."""
    half = torch.linalg.solve_triangular(L, rhs, upper=False)
    return torch.linalg.solve_triangular(L.mT, half, upper=True)


def _line_search(
    m: Tensor,
    u: Tensor,
    y: Tensor,
    c: Tensor,
    C: float,
    ww: Tensor,
    wd: Tensor,
    dd: Tensor,
    slope: Tensor,
    live: Tensor,
) -> tuple[Tensor, Tensor]:
    """Armijo backtracking along a Newton direction, for every problem at once.

    The objective along the step is ``0.5 * (ww + 2 t wd + t^2 dd) + C * loss(m + t u)``: the quadratic
    coefficients of ``||w + t dw||^2`` and the margin change ``u`` are known, so every trial step costs only
    elementwise work over the samples. Returns the accepted step ``t`` per problem (0 where none was found,
    and for problems that are not ``live``) and a mask of the live problems where the search failed.
    """
    f0 = 0.5 * ww + C * _log_loss(m, y, c)
    # Allow float round-off: close to the optimum the decrease is below the precision of f itself.
    slack = 16 * torch.finfo(m.dtype).eps * f0.abs()
    t = torch.ones_like(f0)
    accepted = ~live
    for _ in range(_MAX_HALVINGS):
        ft = 0.5 * (ww + 2 * t * wd + t * t * dd) + C * _log_loss(m + t[:, None] * u, y, c)
        accepted |= ft <= f0 + _ARMIJO * t * slope + slack
        if bool(accepted.all()):
            break
        t = torch.where(accepted, t, 0.5 * t)
    return torch.where(accepted & live, t, torch.zeros_like(t)), ~accepted


class _Workspace:
    """Scratch tensors reused across the steps and chunks of one solve.

    A fresh multi-megabyte CPU tensor is page-faulted in on first touch, which costs more than the
    arithmetic done in it; reusing the same few buffers avoids that (and allocator churn on a GPU).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device, self.dtype = device, dtype
        self.buffers: dict[str, Tensor] = {}

    def get(self, name: str, *shape: int) -> Tensor:
        """A contiguous ``shape`` view of buffer ``name`` (grown when too small); contents are undefined."""
        n = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < n:
            buffer = self.buffers[name] = torch.empty(n, dtype=self.dtype, device=self.device)
        return buffer[:n].view(shape)


@dataclass
class _Solution:
    weight: Tensor
    bias: Tensor
    n_iter: Tensor
    grad_max: Tensor
    converged: Tensor


def _newton(
    X: Tensor,
    y: Tensor,
    c: Tensor,
    *,
    C: float,
    tol: float,
    max_iter: int,
    space: str,
    ws: _Workspace,
    init: tuple[Tensor, Tensor] | None = None,
) -> _Solution:
    """Damped Newton on ``P`` independent L2 logistic regressions (features already centred).

    ``space="primal"``: ``X [P, N, D + 1]`` carries a last column of ones, so the weights and the intercept
    form one vector ``theta = (w, b)`` and the bordered Hessian is a single product ``X^T S X + diag(1, .., 1,
    0)``. ``space="dual"``: ``X [P, N, D]``; ``w = X^T a`` and the system is ``N``-dimensional (derivation in
    ``_dual_step``). A factorisation is reused for the next step (a *chord* step: no product over
    ``N x D^2``, no factorisation) as long as the previous step shrank the gradient at least
    ``1 / _REFRESH``-fold; otherwise it is refreshed at the current point. From a cold start with balanced
    classes the first factorisation (every ``p (1 - p) = 1/4``) bounds the true Hessian from above, so the
    first chord steps are safe majorisation steps; the line search guards every other case. A problem is finished
    when it meets the gradient test, stalls, or reaches ``max_iter``; finished problems are frozen, and
    dropped from the working set once they are the majority, so the last iterations only touch the
    stragglers. ``init`` (primal only): a starting point ``(w [P, D], b [P])`` in the centred coordinates.
    """
    P, N, F = X.shape
    D = F - 1 if space == "primal" else F
    sw = c.sum(1)
    pos = (c * y).sum(1)
    b0 = torch.log(pos / (sw - pos))  # start from the class log-odds: the best model with w = 0
    out = _Solution(
        weight=X.new_zeros(P, D),
        bias=X.new_zeros(P),
        n_iter=torch.zeros(P, dtype=torch.long, device=X.device),
        grad_max=X.new_full((P,), math.inf),
        converged=torch.zeros(P, dtype=torch.bool, device=X.device),
    )
    k = N if space == "dual" else F
    flag = torch.zeros(P, dtype=torch.bool, device=X.device)
    st: dict[str, Tensor] = {
        "idx": torch.arange(P, device=X.device), "X": X, "y": y, "c": c, "inv_scale": 1.0 / (C * sw),
        "stalled": flag, "live": ~flag, "factored": flag, "g_prev": X.new_full((P,), math.inf),
        "g_best": X.new_full((P,), math.inf), "since": X.new_zeros(P),
        "L": X.new_empty(P, k, k), "m": b0[:, None].expand(P, N).clone(),
    }  # fmt: skip
    if space == "dual":
        st["K"] = torch.bmm(X, X.mT, out=ws.get("K", P, N, N))
        st["a"] = X.new_zeros(P, N)
        st["b"] = b0
        st["s_f"] = X.new_zeros(P, N)  # the curvature weights the factor was built with
    else:
        # Batched "row vector x matrix" products run 2-4x faster than "matrix x vector" ones on CPU, so the
        # primal keeps X^T too (one transposing copy) and computes margins as theta^T X^T.
        st["XT"] = ws.get("XT", P, F, N).copy_(X.mT)
        st["theta"] = (
            torch.cat([X.new_zeros(P, D), b0[:, None]], 1)
            if init is None
            else torch.cat([init[0], init[1][:, None]], 1)
        )
        if init is not None:
            st["m"] = torch.bmm(st["theta"][:, None, :], st["XT"])[:, 0]
    for it in range(max_iter + 1):
        rho = C * st["c"] * _residual(st["m"], st["y"])
        # gradient of f: g_w = w + X^T rho (= X^T (a + rho) in the dual), g_b = sum(rho)
        if space == "dual":
            v = st["a"] + rho
            g = torch.cat([torch.bmm(v[:, None, :], st["X"])[:, 0], rho.sum(1, keepdim=True)], 1)
        else:
            v = rho
            g = torch.bmm(rho[:, None, :], st["X"])[:, 0]
            g[:, :D] += st["theta"][:, :D]
        gmax = g.abs().amax(1) * st["inv_scale"]
        # a problem whose gradient has not improved for _PATIENCE steps sits at its precision floor
        improved = gmax < _PROGRESS * st["g_best"]
        st["g_best"] = torch.where(improved, gmax, st["g_best"])
        st["since"] = torch.where(improved, 0.0, st["since"] + 1.0)
        st["stalled"] = st["stalled"] | (st["since"] >= _PATIENCE)
        newly = st["live"] & ((gmax <= tol) | st["stalled"] | (it == max_iter))
        if bool(newly.any()):
            i = st["idx"][newly]
            if space == "primal":
                out.weight[i] = st["theta"][newly, :D]
                out.bias[i] = st["theta"][newly, D]
            else:  # w = X^T a
                out.weight[i] = torch.bmm(st["a"][newly][:, None, :], st["X"][newly])[:, 0]
                out.bias[i] = st["b"][newly]
            out.n_iter[i] = it
            out.grad_max[i] = gmax[newly]
            out.converged[i] = gmax[newly] <= tol
            live = st["live"] & ~newly
            if not bool(live.any()):
                break
            if 2 * int(live.sum()) <= live.numel():
                st = {key: t[live] for key, t in st.items()}
                rho, v, g, gmax = rho[live], v[live], g[live], gmax[live]
            else:
                st["live"] = live
        refresh = st["live"] & (~st["factored"] | (gmax > _REFRESH * st["g_prev"]))
        if bool(refresh.any()):
            (_dual_factor if space == "dual" else _primal_factor)(st, refresh, C, ws)
        st["g_prev"] = gmax
        if space == "dual":
            _dual_step(st, rho, v, g[:, -1], C)
        else:
            _primal_step(st, g, C)
    return out


def _rows(st: dict[str, Tensor], key: str, rows: Tensor | None, ws: _Workspace) -> Tensor:
    """``st[key]`` restricted to ``rows`` (all when None), gathered into a reused buffer."""
    if rows is None:
        return st[key]
    t = st[key]
    return torch.index_select(t, 0, rows, out=ws.get(f"rows.{key}", rows.numel(), *t.shape[1:]))


def _store_factor(st: dict[str, Tensor], rows: Tensor | None, L: Tensor, info: Tensor) -> None:
    if rows is None:
        st["L"] = L
        st["stalled"] = st["stalled"] | (info != 0)
        st["factored"] = torch.ones_like(st["factored"])
    else:
        st["L"][rows] = L
        st["stalled"][rows] |= info != 0
        st["factored"][rows] = True


def _primal_factor(st: dict[str, Tensor], refresh: Tensor, C: float, ws: _Workspace) -> None:
    """Cholesky factor of the Hessian ``X^T S X + diag(1, ..., 1, 0)``, ``s = C c p (1 - p)``.

    With the column of ones in ``X`` this is the bordered ``[[I + X^T S X, X^T s], [s^T X, sum s]]`` in one
    product, computed as ``(S^1/2 X)^T (S^1/2 X)``: a symmetric product, faster on CPU than ``X^T (S X)``.
    """
    rows = None if bool(refresh.all()) else refresh.nonzero().flatten()
    X, c = _rows(st, "X", rows, ws), st["c"] if rows is None else st["c"][rows]
    m = st["m"] if rows is None else st["m"][rows]
    P, N, F = X.shape
    s = C * c * _curvature(m)
    Xs = torch.mul(X, s.sqrt()[..., None], out=ws.get("Xs", P, N, F))
    H = torch.bmm(Xs.mT, Xs, out=ws.get("H", P, F, F))
    H.diagonal(dim1=1, dim2=2)[:, : F - 1] += 1.0
    # A curvature floor on the intercept only shapes the step, never the optimum: it keeps the system
    # positive definite when every probability has saturated.
    H[:, F - 1, F - 1] += torch.finfo(X.dtype).eps * c.sum(1) * C
    L, info = torch.linalg.cholesky_ex(H)
    _store_factor(st, rows, L, info)


def _primal_step(st: dict[str, Tensor], g: Tensor, C: float) -> None:
    """A (chord-)Newton step ``d = -H^-1 g`` in ``theta = (w, b)`` with the stored factor, then a line search."""
    theta = st["theta"]
    D = theta.shape[-1] - 1
    d = -_cho_solve(st["L"], g[..., None])[..., 0]
    d = torch.where(st["stalled"][:, None], torch.zeros_like(d), d)
    u = torch.bmm(d[:, None, :], st["XT"])[:, 0]  # change of the margins along d
    w, dw = theta[:, :D], d[:, :D]
    live = st["live"] & ~st["stalled"]
    ww, wd, dd = (w * w).sum(1), (w * dw).sum(1), (dw * dw).sum(1)
    t, failed = _line_search(st["m"], u, st["y"], st["c"], C, ww, wd, dd, (g * d).sum(1), live)
    st["theta"] = theta + t[:, None] * d
    st["m"] = st["m"] + t[:, None] * u
    st["stalled"] = st["stalled"] | (failed & st["live"])


def _dual_factor(st: dict[str, Tensor], refresh: Tensor, C: float, ws: _Workspace) -> None:
    """Cholesky factor of ``B = I + S^1/2 K S^1/2`` (see ``_dual_step``), ``s = C c p (1-p)``."""
    rows = None if bool(refresh.all()) else refresh.nonzero().flatten()
    K, c = _rows(st, "K", rows, ws), st["c"] if rows is None else st["c"][rows]
    m = st["m"] if rows is None else st["m"][rows]
    s = C * c * _curvature(m)
    tt = s.sqrt()
    B = torch.mul(K, tt[:, :, None], out=ws.get("B", *K.shape)).mul_(tt[:, None, :])
    B.diagonal(dim1=1, dim2=2).add_(1.0)
    L, info = torch.linalg.cholesky_ex(B)
    _store_factor(st, rows, L, info)
    if rows is None:
        st["s_f"] = s
    else:
        st["s_f"][rows] = s


def _dual_step(st: dict[str, Tensor], rho: Tensor, v: Tensor, gb: Tensor, C: float) -> None:
    """A (chord-)Newton step with ``w = X^T a``, solved in the ``N``-dimensional sample space.

    With ``K = X X^T``, curvature weights ``s`` and ``v = a + rho`` the primal Newton equations are satisfied
    by ``da = -v - s * u`` and ``db``, where ``u = K da + db`` is the change of the margins and solves
    ``(I + K S) u = -K v + db``. ``(I + K S)^-1 = I - K T B^-1 T`` with ``T = S^1/2`` and
    ``B = I + T K T`` (symmetric positive definite, eigenvalues >= 1: a well-conditioned Cholesky even in
    float32). ``db`` follows from the intercept equation ``s . u = -sum(rho)``. ``s`` is the one the stored
    factor was built with, so a chord step is the exact Newton step of that (earlier) Hessian.
    """
    K, a, m, b, s = st["K"], st["a"], st["m"], st["b"], st["s_f"]
    tt = s.sqrt()
    Kv = (m - b[:, None]) + torch.bmm(rho[:, None, :], K)[:, 0]  # K a = m - b; K symmetric
    rhs = torch.stack([-Kv, torch.ones_like(Kv)], 2)
    z = _cho_solve(st["L"], tt[..., None] * rhs)
    sol = rhs - torch.bmm((tt[..., None] * z).mT, K).mT  # (I + K S)^-1 rhs, two right-hand sides
    u0, u1 = sol[..., 0], sol[..., 1]
    db = (-gb - (s * u0).sum(1)) / (s * u1).sum(1).clamp_min(torch.finfo(K.dtype).tiny)
    u = u0 + db[:, None] * u1
    da = -v - s * u
    Kda = u - db[:, None]
    # ||w||^2 = a K a, and the slope g . d = v K da + g_b db (no extra products with X needed)
    ww, wd, dd = (a * (m - b[:, None])).sum(1), (a * Kda).sum(1), (da * Kda).sum(1)
    slope = (v * Kda).sum(1) + gb * db
    t, failed = _line_search(m, u, st["y"], st["c"], C, ww, wd, dd, slope, st["live"] & ~st["stalled"])
    st["a"] = a + t[:, None] * da
    st["b"] = b + t * db
    st["m"] = m + t[:, None] * u
    st["stalled"] = st["stalled"] | (failed & st["live"])


# =========================================================================================================
# fit_probes: many independent probes in one call
# =========================================================================================================


@dataclass(frozen=True)
class ProbeFit:
    """``P`` fitted logistic-regression probes (the output of ``fit_probes``).

    Attributes:
        weight: ``[P, D]`` coefficients in the space of the features you passed (also with
            ``standardize=True``: scaling is folded in, so ``X @ weight + bias`` is the decision function).
        bias: ``[P]`` intercepts.
        n_iter: ``[P]`` Newton steps taken.
        converged: ``[P]`` whether the solver met the gradient test ``max|grad f| / (C sum s) <= tol`` and
            the gradient recomputed from scratch at the returned solution is within 10x of ``tol``.
        grad_max: ``[P]`` that recomputed scaled gradient at the returned solution.
        C, tol: the settings used; ``space``: ``"primal"`` or ``"dual"`` (the Newton system solved).
        mean, scale: ``[P, D]`` the training mean and standard deviation when ``standardize=True``, else None.
    """

    weight: Float[Tensor, "problem feature"]
    bias: Float[Tensor, " problem"]
    n_iter: Int[Tensor, " problem"]
    converged: Bool[Tensor, " problem"]
    grad_max: Float[Tensor, " problem"]
    C: float
    tol: float
    space: str
    mean: Float[Tensor, "problem feature"] | None = None
    scale: Float[Tensor, "problem feature"] | None = None

    @property
    def n_problems(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_not_converged(self) -> int:
        return int((~self.converged).sum())

    @property
    def standardized_weight(self) -> Float[Tensor, "problem feature"]:
        """Coefficients on the z-scored features (scikit-learn's ``coef_`` after a ``StandardScaler``)."""
        if self.scale is None:
            raise ValueError("this fit was made with standardize=False; use .weight")
        return self.weight * self.scale

    def decision_function(
        self, X: Float[Tensor, "problem sample feature"] | Float[Tensor, "sample feature"]
    ) -> Float[Tensor, "problem sample"]:
        """Margins ``x . w + b``: ``[P, M]`` for ``X [P, M, D]``, or ``X [M, D]`` shared by all problems."""
        X = torch.as_tensor(X)
        w = self.weight.to(X.device)
        if X.ndim == 2:
            X = X.unsqueeze(0).expand(self.n_problems, -1, -1)
        if X.ndim != 3 or X.shape[0] != self.n_problems or X.shape[2] != w.shape[1]:
            raise ValueError(
                f"expected features [{self.n_problems}, n_samples, {w.shape[1]}] or [n_samples, {w.shape[1]}]; "
                f"got {tuple(X.shape)}"
            )
        X = X.to(w.dtype)
        return torch.bmm(X, w[..., None])[..., 0] + self.bias.to(X.device)[:, None]

    def predict_proba(
        self, X: Float[Tensor, "problem sample feature"] | Float[Tensor, "sample feature"]
    ) -> Float[Tensor, "problem sample"]:
        """Probability of the malicious class (label 1), ``[P, M]``."""
        return torch.sigmoid(self.decision_function(X))

    def predict(
        self, X: Float[Tensor, "problem sample feature"] | Float[Tensor, "sample feature"]
    ) -> Int[Tensor, "problem sample"]:
        """Hard labels at probability 0.5 (margin > 0, as scikit-learn's ``predict``)."""
        return (self.decision_function(X) > 0).long()


def predict_proba(
    fit: ProbeFit, X: Float[Tensor, "problem sample feature"] | Float[Tensor, "sample feature"]
) -> Float[Tensor, "problem sample"]:
    """``fit.predict_proba(X)``: malicious-class probabilities ``[P, M]`` of every probe in ``fit``."""
    return fit.predict_proba(X)


def fit_probes(
    X: Float[Tensor, "problem sample feature"] | Float[Tensor, "sample feature"],
    y: Int[Tensor, "problem sample"] | Int[Tensor, " sample"],
    C: float = 1.0,
    *,
    sample_weight: Float[Tensor, "problem sample"] | Float[Tensor, " sample"] | None = None,
    standardize: bool = False,
    tol: float = 1e-6,
    max_iter: int = 100,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    space: Space = "auto",
    chunk_size: int | None = None,
    init: tuple[Tensor, Tensor] | None = None,
) -> ProbeFit:
    """Fit ``P`` independent L2 logistic regressions at once, each exactly scikit-learn's ``LogisticRegression(C)``.

    Args:
        X: ``[P, N, D]`` features, one ``[N, D]`` design matrix per problem (``[N, D]`` is one problem).
        y: ``[P, N]`` or ``[N]`` (shared) labels, 1 = malicious, 0 = benign.
        C: inverse L2 strength, as in scikit-learn (default 1.0).
        sample_weight: ``[P, N]`` or ``[N]`` non-negative weights, as scikit-learn's ``sample_weight``. A 0/1
            mask lets problems with different training sets share one padded ``X``.
        standardize: z-score each problem's features with its own (weighted) training mean and standard
            deviation first, as a ``StandardScaler`` would (constant features keep scale 1). The penalty then
            acts on the standardized coefficients. Default False: the paper probes raw ``hook_z``.
        tol: stop a problem when ``max|grad f| / (C * sum(sample_weight)) <= tol``: scikit-learn's
            ``lbfgs`` rule on the same objective, 100x tighter than its default 1e-4 (at 1e-4 an
            ill-conditioned probe can still be ~0.05 off in its intercept and flip held-out predictions;
            the last two decades cost Newton one or two cheap steps).
        max_iter: cap on Newton steps (of each pass: float32, then float64 for the few problems float32
            could not finish, see ``_refine_in_float64``); problems that hit it are reported in ``converged``.
        dtype: solve precision (float32 default; float64 for tight agreement, about 2x slower on CPU).
        device: where to solve (default: ``X``'s device); results come back on ``X``'s device.
        space: ``"auto"`` (dual when ``N <= 7/8 D``, else primal), ``"primal"`` or ``"dual"``.
        chunk_size: problems per batched solve (default: as many as fit in ~64 MB of working memory, which
            keeps a chunk's repeated passes in cache).
        init: a warm start ``(weight [P, D], bias [P])``, e.g. the probes of similar problems. It changes
            how fast, not where, a problem converges (the optimum is unique). Needs the primal system, which
            ``space="auto"`` then uses.

    Returns:
        ``ProbeFit`` with ``weight [P, D]``, ``bias [P]``, ``converged [P]`` and friends.

    Example:
        >>> X = torch.randn(64, 40, 16)          # 64 problems (e.g. heads), 40 samples, 16 features
        >>> y = torch.arange(40) % 2              # shared labels
        >>> fit = fit_probes(X, y)
        >>> fit.weight.shape, fit.predict_proba(X).shape
        (torch.Size([64, 16]), torch.Size([64, 40]))
    """
    X, y_f, c = _check_problems(X, y, sample_weight)
    C = _check_C(C)
    if not tol > 0:
        raise ValueError(f"tol must be positive; got {tol!r}")
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter must be a positive int; got {max_iter!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    if space not in ("auto", "primal", "dual"):
        raise ValueError(f"space must be 'auto', 'primal' or 'dual'; got {space!r}")
    if chunk_size is not None and not (isinstance(chunk_size, int) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    if init is not None:
        if space == "dual":
            raise ValueError("init (a warm start) needs the primal system; use space='auto' or 'primal'")
        space = "primal"
        w0, b0 = (torch.as_tensor(t, device=X.device) for t in init)
        P, _, D = X.shape
        if tuple(w0.shape) != (P, D) or tuple(b0.shape) != (P,):
            raise ValueError(f"init must be (weight [{P}, {D}], bias [{P}]); got {tuple(w0.shape)} and "
                             f"{tuple(b0.shape)}")  # fmt: skip
        if not (bool(torch.isfinite(w0).all()) and bool(torch.isfinite(b0).all())):
            raise ValueError("init holds NaN or inf; pass a finite starting point")
        init = (w0, b0)
    return _fit(
        X,
        y_f,
        c,
        C=float(C),
        standardize=standardize,
        tol=tol,
        max_iter=max_iter,
        dtype=dtype,
        device=device,
        space=space,
        chunk_size=chunk_size,
        init=init,
    )


def _fit(
    X: Tensor,
    y: Tensor,
    c: Tensor,
    *,
    C: float,
    standardize: bool,
    tol: float = 1e-6,
    max_iter: int = 100,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    space: Space = "auto",
    chunk_size: int | None = None,
    init: tuple[Tensor, Tensor] | None = None,
    ws: _Workspace | None = None,
) -> ProbeFit:
    """``fit_probes`` on inputs already checked: ``X [P, N, D]`` finite, ``y`` and weights ``c [P, N]``.

    ``init``: a starting point ``(weight [P, D], bias [P])`` in the input feature space (primal only).
    ``ws``: scratch buffers to reuse (a sweep passes the same one to every solve)."""
    P, N, D = X.shape
    if space == "auto":
        space = _auto_space(N, D)
    home = X.device
    dev = torch.device(device) if device is not None else home
    if chunk_size is None:
        k = (N if space == "dual" else D) + 1
        per_problem = (4 * N * D + 4 * k * k + 16 * N) * torch.finfo(dtype).bits // 8
        chunk_size = max(1, _SOLVE_BYTES // per_problem)

    parts: list[_Solution] = []
    means: list[Tensor] = []
    scales: list[Tensor] = []
    ws = ws if ws is not None and ws.device == dev and ws.dtype == dtype else _Workspace(dev, dtype)
    for lo in range(0, P, chunk_size):
        hi = min(P, lo + chunk_size)
        raw = X[lo:hi].to(dev, dtype)
        yc = y[lo:hi].to(dev, dtype)
        cc = c[lo:hi].to(dev, dtype)
        sw = cc.sum(1, keepdim=True)
        mu = torch.bmm(cc[:, None, :], raw)[:, 0] / sw
        # the primal carries a column of ones for the intercept (see _newton)
        Xc = ws.get("X", hi - lo, N, D + (space == "primal"))
        features = torch.sub(raw, mu[:, None, :], out=Xc[..., :D])
        if space == "primal":
            Xc[..., D] = 1.0
        sigma = None
        if standardize:
            var = torch.bmm(cc[:, None, :], features * features)[:, 0] / sw
            sigma = var.sqrt()
            sigma = torch.where(sigma < 10 * torch.finfo(dtype).eps, torch.ones_like(sigma), sigma)
            features.div_(sigma[:, None, :])
        start = None
        if init is not None:
            w0 = init[0][lo:hi].to(dev, dtype)
            b0 = init[1][lo:hi].to(dev, dtype) + (mu * w0).sum(1)  # the intercept of the centred features
            start = (w0 if sigma is None else w0 * sigma, b0)
        sol = _newton(Xc, yc, cc, C=C, tol=tol, max_iter=max_iter, space=space, ws=ws, init=start)
        _refine_in_float64(sol, Xc, yc, cc, C=C, tol=tol, max_iter=max_iter, space=space, init=start)
        if sigma is not None:
            sol.weight = sol.weight / sigma
            scales.append(sigma.to(home))
        sol.bias = sol.bias - (mu * sol.weight).sum(1)  # undo the centring: m = (x - mu) . w + b_c
        means.append(mu.to(home))
        parts.append(
            _Solution(*(t.to(home) for t in (sol.weight, sol.bias, sol.n_iter, sol.grad_max, sol.converged)))
        )
    return ProbeFit(
        weight=torch.cat([s.weight for s in parts]),
        bias=torch.cat([s.bias for s in parts]),
        n_iter=torch.cat([s.n_iter for s in parts]),
        converged=torch.cat([s.converged for s in parts]),
        grad_max=torch.cat([s.grad_max for s in parts]),
        C=C,
        tol=float(tol),
        space=space,
        mean=torch.cat(means) if standardize else None,
        scale=torch.cat(scales) if standardize else None,
    )


def _gradient_max(weight: Tensor, bias: Tensor, X: Tensor, y: Tensor, c: Tensor, C: float) -> Tensor:
    """``max|grad f| / (C sum c)`` at ``(weight, bias)``, recomputed from the data (centred ``X``)."""
    Xf = X[..., : weight.shape[1]]
    m = torch.bmm(Xf, weight[..., None])[..., 0] + bias[:, None]
    rho = C * c * _residual(m, y)
    g = weight + torch.bmm(rho[:, None, :], Xf)[:, 0]
    return torch.maximum(g.abs().amax(1), rho.sum(1).abs()) / (C * c.sum(1))


def _refine_in_float64(
    sol: _Solution,
    X: Tensor,
    y: Tensor,
    c: Tensor,
    *,
    C: float,
    tol: float,
    max_iter: int,
    space: str,
    init: tuple[Tensor, Tensor] | None,
) -> None:
    """Check a float32 solve, and solve again in float64 the problems that failed (in place).

    The check (a *certificate*): the solver tracks margins incrementally, so its gradient test is also
    recomputed from scratch at the returned ``(w, b)``; a problem passes when that fresh gradient is within
    ``_CERTIFY * tol`` (float32 round-off of the fresh computation itself is a few ``tol`` on ordinary
    problems; a solve whose margins drifted is off by orders of magnitude).

    float32 has a floor: when a head's outputs are large (norms of hundreds to thousands) and the training
    set tiny, the optimum sits at margins ~10-15 with curvature weights ~1e-6, the Gram matrix spans ten
    decades, and round-off in forming it exceeds the curvature the Newton system must resolve, so a few
    problems stop short of the gradient test (or, with norms ~1e4, the factorisation breaks down). The same
    problems converge in a few float64 steps from where float32 stopped (primal; the dual restarts). They
    are usually a small minority, so the cost is small; the rest keep their float32 solution, and of the two
    solutions of a re-solved problem the one with the smaller recomputed gradient is kept. Problems that hit
    ``max_iter`` are not re-solved (they are slow, not imprecise). ``grad_max`` becomes the recomputed
    gradient of every problem and ``n_iter`` counts the steps of both passes. A problem that still yields
    no finite solution gets zero weights and the class log-odds as intercept (the best constant model) and
    stays marked as not converged.
    """
    fresh = _gradient_max(sol.weight, sol.bias, X, y, c, C)
    sol.converged &= fresh <= _CERTIFY * tol
    sol.grad_max = fresh
    # Problems that ran out of steps are slow, not imprecise: they stay as they are (not converged).
    redo = (~sol.converged & (sol.n_iter < max_iter)).nonzero().flatten()
    if X.dtype == torch.float32 and redo.numel():
        X64, y64, c64 = X[redo].double(), y[redo].double(), c[redo].double()
        w32, b32 = sol.weight[redo], sol.bias[redo]
        start = None if init is None else (init[0][redo].double(), init[1][redo].double())
        if space == "primal" and bool(torch.isfinite(w32).all()) and bool(torch.isfinite(b32).all()):
            start = (w32.double(), b32.double())  # float32 got close: float64 finishes in a step or two
        fix = _newton(X64, y64, c64, C=C, tol=tol, max_iter=max_iter, space=space,
                      ws=_Workspace(X.device, torch.float64), init=start)  # fmt: skip
        fix_grad = _gradient_max(fix.weight, fix.bias, X64, y64, c64, C)
        better = torch.nan_to_num(fix_grad, nan=math.inf) <= torch.nan_to_num(fresh[redo], nan=math.inf)
        take = redo[better]  # keep whichever solution has the smaller recomputed gradient
        sol.weight[take] = fix.weight[better].to(sol.weight.dtype)
        sol.bias[take] = fix.bias[better].to(sol.bias.dtype)
        sol.grad_max[take] = fix_grad[better].to(sol.grad_max.dtype)
        sol.converged[take] = fix.converged[better] & (fix_grad[better] <= _CERTIFY * tol)
        sol.n_iter[redo] += fix.n_iter
    finite = torch.isfinite(sol.weight).all(1) & torch.isfinite(sol.bias)
    broken = (~finite).nonzero().flatten()
    if broken.numel():
        pos = (c[broken] * y[broken]).sum(1)
        sol.weight[broken] = 0.0
        sol.bias[broken] = torch.log(pos / (c[broken].sum(1) - pos))
        sol.converged[broken] = False
        sol.grad_max[broken] = math.inf


def _auto_space(n_samples: int, n_features: int) -> Literal["primal", "dual"]:
    """The Newton system to solve: dual (``N x N``) below ~7/8 of the feature count, else primal."""
    return "dual" if 8 * n_samples <= 7 * n_features else "primal"  # measured crossover on CPU


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


# =========================================================================================================
# Per-head probes
# =========================================================================================================


def _problems(z: Tensor) -> Tensor:
    """``[n, layer, head, d_head]`` -> ``[layer*head, n, d_head]`` (one problem per head)."""
    n, n_layers, n_heads, d_head = z.shape
    return z.reshape(n, n_layers * n_heads, d_head).transpose(0, 1)


@dataclass
class HeadProbes:
    """One fitted probe per attention head (the output of ``fit_head_probes``).

    Attributes:
        weight: ``[n_layers, n_heads, d_head]``; bias: ``[n_layers, n_heads]``.
        converged: ``[n_layers, n_heads]``; C, standardize: the fitting settings.
        provenance: the provenance of the training activations (their model must match at prediction time).
    """

    weight: Float[Tensor, "layer head_index d_head"]
    bias: Float[Tensor, "layer head_index"]
    converged: Bool[Tensor, "layer head_index"]
    C: float = 1.0
    standardize: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)

    def decision_function(self, acts: HeadActivations) -> Float[Tensor, "n layer head_index"]:
        """Margins ``z . w + b`` of every head's probe on every sample, ``[n, n_layers, n_heads]``."""
        acts.check_compatible(self.provenance, what="the activations to score")
        if acts.z.shape[1:] != self.weight.shape:
            raise ValueError(
                f"probes are for [{', '.join(map(str, self.weight.shape))}] heads x d_head; "
                f"activations have {tuple(acts.z.shape[1:])}"
            )
        z = acts.z.to(self.weight.dtype)
        return torch.einsum("nlhd,lhd->nlh", z, self.weight) + self.bias

    def predict_proba(self, acts: HeadActivations) -> Float[Tensor, "n layer head_index"]:
        """Malicious-class probability of every head's probe on every sample, ``[n, n_layers, n_heads]``."""
        return torch.sigmoid(self.decision_function(acts))

    def accuracy(self, acts: HeadActivations) -> Float[Tensor, "layer head_index"]:
        """Accuracy of every head's probe on ``acts`` at threshold 0.5, ``[n_layers, n_heads]``."""
        margins = self.decision_function(acts).permute(1, 2, 0)
        return _accuracy(margins, acts.labels.to(margins.device))

    def auroc(self, acts: HeadActivations) -> Float[Tensor, "layer head_index"]:
        """Rank-based AUROC of every head's probe on ``acts``, ``[n_layers, n_heads]``."""
        margins = self.decision_function(acts).permute(1, 2, 0)
        return _auroc(margins, acts.labels.to(margins.device))


def fit_head_probes(
    acts: HeadActivations,
    train_idx: Sequence[int] | Tensor | None = None,
    C: float = 1.0,
    standardize: bool = False,
    *,
    device: str | torch.device | None = None,
    max_iter: int = 100,
) -> HeadProbes:
    """Fit one logistic-regression probe per head on the samples ``train_idx`` (default: all).

    Args:
        acts: ``HeadActivations`` with ``z [n, n_layers, n_heads, d_head]`` and labels.
        train_idx: indices (or a bool mask) of the training samples.
        C, standardize: as in ``fit_probes``.
        device: where to solve (default: where the activations are).

    Example::

        probes = fit_head_probes(acts, train_idx=range(0, len(acts), 2))
        test = acts.select(range(1, len(acts), 2))
        probes.accuracy(test)                  # [n_layers, n_heads]
    """
    _check_acts(acts)
    train = (
        acts
        if train_idx is None
        else acts.select(train_idx if isinstance(train_idx, Tensor) else list(train_idx))
    )
    _check_classes(train.labels, "the training samples")
    X = _problems(train.z)
    y = train.labels.to(X.device).float().expand(X.shape[0], -1)
    fit = _fit(
        X, y, torch.ones_like(y), C=_check_C(C), standardize=standardize, device=device, max_iter=max_iter
    )
    L, H, D = acts.n_layers, acts.n_heads, acts.d_head
    return HeadProbes(
        weight=fit.weight.reshape(L, H, D),
        bias=fit.bias.reshape(L, H),
        converged=fit.converged.reshape(L, H),
        C=float(C),
        standardize=standardize,
        provenance=dict(acts.provenance),
    )


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


# =========================================================================================================
# Batched metrics (last axis = samples)
# =========================================================================================================


def _accuracy(margins: Tensor, labels: Tensor) -> Tensor:
    """Fraction of samples with ``(margin > 0) == label``; ``margins [..., n]``, labels broadcastable."""
    return ((margins > 0) == labels.bool()).float().mean(-1)


def _f1(margins: Tensor, labels: Tensor) -> Tensor:
    """F1 of the malicious class (label 1) at threshold 0.5; 0 where there are no positives at all."""
    pred, truth = margins > 0, labels.bool()
    tp = (pred & truth).sum(-1).float()
    fp = (pred & ~truth).sum(-1).float()
    fn = (~pred & truth).sum(-1).float()
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))


def _auroc(scores: Tensor, labels: Tensor) -> Tensor:
    """Rank-based (Mann-Whitney) AUROC along the last axis, ties counted one half, for any batch shape.

    ``labels`` broadcasts against ``scores``. One sort per row gives the ranks; in the rows that hold tied
    scores (rare for continuous margins, but a dead head scores every sample alike) each tie group gets its
    average rank, by a cumulative max/min over the sorted order. No Python loop over rows. NaN where a row
    lacks one of the classes.
    """
    shape, n = scores.shape[:-1], scores.shape[-1]
    ordered, order = scores.reshape(-1, n).sort(-1)
    lab = labels.bool().expand(*shape, n).reshape(-1, n).gather(-1, order)
    ranks = torch.arange(1, n + 1, device=scores.device, dtype=torch.float64).expand(ordered.shape)
    rank_sum = (ranks * lab).sum(-1)
    tied = (ordered[:, 1:] == ordered[:, :-1]).any(-1)
    if bool(tied.any()):
        rank_sum[tied] = (_mid_ranks(ordered[tied]) * lab[tied]).sum(-1)
    n_pos = lab.sum(-1).double()
    u = rank_sum - n_pos * (n_pos + 1) / 2
    return (u / (n_pos * (n - n_pos))).float().reshape(shape)


def _mid_ranks(ordered: Tensor) -> Tensor:
    """1-based ranks of sorted rows ``[B, n]`` where each group of equal values gets its average rank."""
    n = ordered.shape[-1]
    idx = torch.arange(n, device=ordered.device).expand_as(ordered)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, idx, torch.zeros_like(idx)).cummax(-1).values
    last = torch.where(ends, idx, torch.full_like(idx, n - 1)).flip(-1).cummin(-1).values.flip(-1)
    return (first + last).double() / 2 + 1


_METRIC_FNS = {"accuracy": _accuracy, "auroc": _auroc, "f1": _f1}


# =========================================================================================================
# Shots: counts and fractions
# =========================================================================================================

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def _fraction_of(spec: ShotSpec) -> Fraction | None:
    """The exact fraction a spec stands for ("10%" -> 1/10, 0.25 -> 1/4), or None for a plain count."""
    if isinstance(spec, bool):
        raise ValueError(f"a shot count must be an int, a fraction < 1 or a percentage string; got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        if spec < 1:
            raise ValueError(f"shot counts must be at least 1 sample per class; got {spec}")
        return None
    if isinstance(spec, (float, np.floating)):
        if not 0 < spec < 1:
            raise ValueError(
                f"a float shot spec is a fraction of the pool per class and must lie in (0, 1); got {spec!r}. "
                "Give counts as ints (e.g. 16) and fractions as 0.1 or '10%'"
            )
        return Fraction(repr(float(spec)))
    if isinstance(spec, str):
        match = _PERCENT.match(spec)
        if match is None:
            raise ValueError(
                f"cannot read shot spec {spec!r}; use an int count (16), a fraction (0.1) or a percentage "
                "string ('10%', '0.1%')"
            )
        frac = Fraction(match.group(1)) / 100
        if not 0 < frac <= 1:
            raise ValueError(f"a percentage shot spec must lie in (0%, 100%]; got {spec!r}")
        return frac
    raise ValueError(
        f"cannot read shot spec {spec!r} ({type(spec).__name__}); use an int, a float < 1 or "
        "a string like '10%'"
    )


def resolve_shots(shots: Iterable[ShotSpec], n_per_class: int) -> list[int]:
    """Turn shot specs into training samples *per class*.

    Rule: an int ``n`` means ``n`` per class. A fraction ``f`` (a float in (0, 1) or a string ``"p%"``)
    means ``max(1, floor(f * m))`` per class, where ``m = n_per_class`` is the size of the *smaller* class in
    the training pool; the product is taken in exact rational arithmetic, so ``"10%"`` of 40 is 4, never 3.

    Example:
        >>> resolve_shots([2, "10%", "0.1%", 0.25], n_per_class=40)
        [2, 4, 1, 10]
    """
    out = []
    for spec in shots:
        frac = _fraction_of(spec)
        out.append(int(spec) if frac is None else max(1, math.floor(frac * n_per_class)))
    return out


def _spec_text(spec: ShotSpec) -> str:
    return (
        spec.strip() if isinstance(spec, str) else repr(spec) if isinstance(spec, float) else str(int(spec))
    )


# =========================================================================================================
# ProbeSweep: the few-shot stability sweep
# =========================================================================================================


@dataclass
class ProbeSweep:
    """Held-out probe metrics of every head, for every shot count and every random draw.

    Attributes:
        accuracy: ``[S, R, n_layers, n_heads]`` test accuracy (S shot counts, R repeats).
        auroc, f1: same shape, when requested (else None).
        shots: the resolved training samples *per class* of each shot count (``resolve_shots``).
        shot_specs: the shot specs as given (``"16"``, ``"10%"``, ``"0.05"``).
        draws: per shot count, ``[R, 2 * shots]`` int64 indices of the training samples of each repeat
            (indices into the activations; the test set of a repeat is every other sample, or ``test_idx``).
        seed, C, standardize: the settings; ``pool``, ``test_idx``: the sample indices given (or None).
        non_converged: per shot count, the number of probes that hit the Newton step cap.
        provenance: the provenance of the activations (model, template, hook, ...).
        sample_ids: the ids of the activations' samples, so ``draws`` can be read back to samples.
    """

    accuracy: Float[Tensor, "shot repeat layer head_index"]
    shots: list[int]
    shot_specs: list[str]
    draws: list[Int[Tensor, "repeat train"]]
    seed: int
    C: float
    standardize: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    auroc: Float[Tensor, "shot repeat layer head_index"] | None = None
    f1: Float[Tensor, "shot repeat layer head_index"] | None = None
    pool: list[int] | None = None
    test_idx: list[int] | None = None
    non_converged: list[int] = field(default_factory=list)
    sample_ids: list[str] = field(default_factory=list)

    # ---- shape --------------------------------------------------------------------------------------
    @property
    def repeats(self) -> int:
        return int(self.accuracy.shape[1])

    @property
    def n_layers(self) -> int:
        return int(self.accuracy.shape[2])

    @property
    def n_heads(self) -> int:
        return int(self.accuracy.shape[3])

    @property
    def metrics(self) -> list[str]:
        return [m for m in METRICS if getattr(self, m) is not None]

    def __repr__(self) -> str:
        model = self.provenance.get("model_name", "?")
        return (
            f"ProbeSweep(shots={self.shots}, repeats={self.repeats}, {self.n_layers} layers x {self.n_heads} "
            f"heads, metrics={self.metrics}, seed={self.seed}, model={model!r})"
        )

    # ---- reading ------------------------------------------------------------------------------------
    def values(self, metric: str = "accuracy") -> Float[Tensor, "shot repeat layer head_index"]:
        """The ``[S, R, L, H]`` tensor of ``metric``; a clear error if it was not computed."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        value = getattr(self, metric)
        if value is None:
            raise ValueError(
                f"this sweep did not compute {metric!r} (it has {self.metrics}); run probe_sweep "
                f"with metric=({metric!r}, ...)"
            )
        return value  # type: ignore[no-any-return]

    def shot_indices(self, at: ShotSpec | Sequence[ShotSpec] | None = "all") -> list[int]:
        """Positions along the shot axis for ``at``.

        ``at`` may be ``"all"`` / None (every shot count), a resolved count (``16``), a spec exactly as given
        (``"10%"``), or a list of those. A count that appears twice (``2`` and ``"0.1%"`` both resolving to 2)
        selects both positions.
        """
        if at is None or (isinstance(at, str) and at == "all"):
            return list(range(len(self.shots)))
        wanted = [at] if isinstance(at, (str, int, float)) else list(at)
        out: list[int] = []
        for spec in wanted:
            hits = [
                i
                for i, (n, s) in enumerate(zip(self.shots, self.shot_specs, strict=True))
                if (isinstance(spec, str) and spec.strip() == s)
                or (isinstance(spec, int) and not isinstance(spec, bool) and spec == n)
                or (isinstance(spec, float) and _spec_text(spec) == s)
            ]
            if not hits:
                raise ValueError(
                    f"shot count {spec!r} is not in this sweep; it has shots {self.shots} (given as "
                    f"{self.shot_specs}); pass one of those, a list of them, or 'all'"
                )
            out.extend(i for i in hits if i not in out)
        return out

    def mean(self, metric: str = "accuracy", at: ShotSpec | Sequence[ShotSpec] | None = None) -> Tensor:
        """Mean over repeats.

        ``at=None``: per shot count, ``[S, n_layers, n_heads]``. Otherwise (a shot, a list, or ``"all"``):
        averaged over the chosen shot counts too, ``[n_layers, n_heads]``.
        """
        per_shot = self.values(metric).mean(1)
        return per_shot if at is None else per_shot[self.shot_indices(at)].mean(0)

    def std(self, metric: str = "accuracy", at: ShotSpec | Sequence[ShotSpec] | None = None) -> Tensor:
        """Standard deviation over repeats (``n - 1`` in the denominator; 0 with a single repeat).

        Shapes as ``mean``; with several shot counts, the mean of the per-shot standard deviations.
        """
        values = self.values(metric)
        per_shot = values.std(1) if self.repeats > 1 else torch.zeros_like(values[:, 0])
        return per_shot if at is None else per_shot[self.shot_indices(at)].mean(0)

    # ---- summary and disk ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: settings, and per shot count the head-level picture of each metric."""
        per_shot = []
        for i, (n, spec) in enumerate(zip(self.shots, self.shot_specs, strict=True)):
            row: dict[str, Any] = {
                "shots": n,
                "spec": spec,
                "n_train": 2 * n,
                "non_converged": self.non_converged[i] if self.non_converged else None,
            }
            for metric in self.metrics:
                mean = self.values(metric)[i].mean(0)
                best = int(torch.nan_to_num(mean, nan=-math.inf).flatten().argmax())
                layer, head = divmod(best, self.n_heads)
                row[metric] = {
                    "mean_over_heads": float(mean.nanmean()),
                    "frac_heads_above_0.8": float((mean > 0.8).float().mean()),
                    "best_head": f"L{layer}H{head}",
                    "best_mean": float(mean[layer, head]),
                    "best_std": float(self.std(metric)[i, layer, head]),
                }
            per_shot.append(row)
        return {
            "format": SWEEP_FORMAT, "package_version": __version__, "shots": self.shots,
            "shot_specs": self.shot_specs, "repeats": self.repeats, "seed": self.seed, "C": self.C,
            "standardize": self.standardize, "n_layers": self.n_layers, "n_heads": self.n_heads,
            "metrics": self.metrics, "pool_size": None if self.pool is None else len(self.pool),
            "test_size": None if self.test_idx is None else len(self.test_idx),
            "provenance": self.provenance, "per_shot": per_shot,
        }  # fmt: skip

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``probe_sweep.safetensors`` (metrics, draws) and ``probe_sweep.json`` (everything else)."""
        directory = Path(directory)
        if (directory / SWEEP_JSON).exists() and not overwrite:
            raise FileExistsError(
                f"{directory} already holds a probe sweep; pass overwrite=True or choose another directory"
            )
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {m: self.values(m).contiguous().cpu() for m in self.metrics}
        tensors.update({f"draws.{i}": d.contiguous().cpu() for i, d in enumerate(self.draws)})
        save_file(tensors, str(directory / SWEEP_TENSORS))
        meta = {
            "format": SWEEP_FORMAT, "package_version": __version__, "shots": self.shots,
            "shot_specs": self.shot_specs, "seed": self.seed, "C": self.C, "standardize": self.standardize,
            "provenance": self.provenance, "pool": self.pool, "test_idx": self.test_idx,
            "non_converged": self.non_converged, "sample_ids": self.sample_ids, "metrics": self.metrics,
            "summary": self.to_dict()["per_shot"],
        }  # fmt: skip
        (directory / SWEEP_JSON).write_text(json.dumps(meta, indent=1) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ProbeSweep:
        """Read a directory written by ``save`` (no code is executed: safetensors + JSON)."""
        directory = Path(directory)
        path = directory / SWEEP_JSON
        if not path.exists():
            raise FileNotFoundError(
                f"no {SWEEP_JSON} in {directory}; is this a directory written by ProbeSweep.save?"
            )
        meta = json.loads(path.read_text())
        if meta.get("format") != SWEEP_FORMAT:
            raise ValueError(f"{path} is not a sahs_lens probe sweep (format {meta.get('format')!r})")
        tensors = load_file(str(directory / SWEEP_TENSORS))
        return cls(
            accuracy=tensors["accuracy"], auroc=tensors.get("auroc"), f1=tensors.get("f1"),
            shots=[int(n) for n in meta["shots"]], shot_specs=[str(s) for s in meta["shot_specs"]],
            draws=[tensors[f"draws.{i}"] for i in range(len(meta["shots"]))], seed=int(meta["seed"]),
            C=float(meta["C"]), standardize=bool(meta["standardize"]), provenance=meta["provenance"],
            pool=meta["pool"], test_idx=meta["test_idx"], non_converged=list(meta["non_converged"]),
            sample_ids=list(meta["sample_ids"]),
        )  # fmt: skip


def _draw(rng_key: Sequence[int], pool_pos: np.ndarray, pool_neg: np.ndarray, n: int) -> np.ndarray:
    """``n`` malicious and ``n`` benign pool indices without replacement, sorted; seeded by ``rng_key``."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(rng_key))))
    pos = rng.choice(pool_pos, size=n, replace=False)
    neg = rng.choice(pool_neg, size=n, replace=False)
    return np.sort(np.concatenate([pos, neg]))


def _index_list(idx: Sequence[int] | Tensor | None, n: int, what: str) -> np.ndarray | None:
    if idx is None:
        return None
    arr = torch.as_tensor(idx).cpu()
    if arr.dtype == torch.bool:
        if arr.numel() != n:
            raise ValueError(f"{what} as a mask must have one entry per sample ({n}); got {arr.numel()}")
        arr = arr.nonzero().flatten()
    out = np.unique(arr.long().numpy())
    if out.size != arr.numel():
        raise ValueError(f"{what} lists some samples twice; list each index once")
    if out.size == 0:
        raise ValueError(f"{what} is empty; pass at least one sample index per class")
    if out[0] < 0 or out[-1] >= n:
        raise ValueError(f"{what} holds indices outside 0..{n - 1} (the activations have {n} samples)")
    return out


def _fit_repeats(
    X: Tensor, y: Tensor, *, C: float, standardize: bool, device: torch.device, max_iter: int, ws: _Workspace
) -> tuple[Tensor, Tensor, int]:
    """Fit every (repeat, head) probe of ``X [R, heads, N, D]`` with labels ``y [R, N]``.

    Returns ``weight [heads, R, D]``, ``bias [heads, R]`` (on ``device``) and the number not converged. When
    the primal system is solved (more samples than ~7/8 of ``d_head``), repeat 0 of every head is solved
    first and warm-starts the other repeats of that head: their training sets come from the same pool, so
    their solutions are close and most need a single Hessian factorisation (~1.6x faster at N = 500).
    """
    R, hb, N, D = X.shape
    yf = y.float()[:, None, :].expand(R, hb, N)
    options: dict[str, Any] = {"C": C, "standardize": standardize, "device": device, "max_iter": max_iter,
                               "ws": ws, "dtype": ws.dtype}  # solve precision: the workspace's  # fmt: skip
    if R == 1 or _auto_space(N, D) == "dual":
        fit = _fit(X.reshape(R * hb, N, D), yf.reshape(R * hb, N), torch.ones(R * hb, N), **options)
        weight, bias, bad = fit.weight, fit.bias, fit.n_not_converged
    else:
        first = _fit(X[0], yf[0], torch.ones(hb, N), **options)
        init = (first.weight.expand(R - 1, hb, D).reshape(-1, D), first.bias.expand(R - 1, hb).reshape(-1))
        rest = _fit(X[1:].reshape(-1, N, D), yf[1:].reshape(-1, N), torch.ones((R - 1) * hb, N), init=init,
                    **options)  # fmt: skip
        weight = torch.cat([first.weight, rest.weight])
        bias = torch.cat([first.bias, rest.bias])
        bad = first.n_not_converged + rest.n_not_converged
    weight = weight.to(device).reshape(R, hb, D).transpose(0, 1)
    return weight, bias.to(device).reshape(R, hb).T, bad


def probe_sweep(
    acts: HeadActivations,
    shots: Sequence[ShotSpec] = (2, 4, 8, 16, 32, 64),
    repeats: int = 20,
    seed: int = 0,
    pool: Sequence[int] | Tensor | None = None,
    metric: str | Sequence[str] = METRICS,
    C: float = 1.0,
    standardize: bool = False,
    device: str | torch.device | None = None,
    batch_heads: int | None = None,
    progress: bool = True,
    *,
    test_idx: Sequence[int] | Tensor | None = None,
    max_iter: int = 100,
    dtype: torch.dtype = torch.float32,
) -> ProbeSweep:
    """Few-shot probe sweep over every head: ``accuracy[shot, repeat, layer, head_index]`` on held-out data.

    For each shot count ``n`` and each of ``repeats`` draws: ``n`` malicious and ``n`` benign training samples
    are drawn at random (without replacement) from the training pool, a probe is fitted on every head
    (``fit_probes``: all heads x all repeats of a head batch in one batched solve), and each probe is scored on
    the held-out samples.

    Args:
        acts: the activations (``collect_head_activations`` or ``HeadActivations.load``).
        shots: training samples per class: ints, fractions in (0, 1) or percentage strings (``"10%"``,
            ``"0.1%"``) of the smaller pool class, floored, at least 1 (see ``resolve_shots``).
        repeats: random draws per shot count (the paper uses 20).
        seed: the draw of repeat ``r`` at ``n`` shots is seeded by ``(seed, n, r)``, so adding a shot count
            leaves the other draws unchanged. The draws are stored in ``sweep.draws``.
        pool: indices (or a bool mask) of the samples training draws may come from (default: all samples).
        metric: which of ``"accuracy"``, ``"auroc"``, ``"f1"`` to compute (accuracy is always kept).
        C, standardize: probe settings (``fit_probes``); defaults are the paper's (C=1, raw features).
        device: where to solve (e.g. ``"cuda"``); default: where the activations are.
        batch_heads: heads per batched solve (default: as many as fit in ~512 MB of working memory).
        progress: show a tqdm bar.
        test_idx: evaluate every repeat on exactly these samples (must not overlap the pool; with no ``pool``,
            the pool becomes every other sample). Default: each repeat is evaluated on *every sample it did
            not train on*: the rest of the pool and everything outside it. The test set size is the same for
            every repeat of a shot count.
        max_iter: Newton step cap per probe.
        dtype: solve precision, ``torch.float32`` (default) or ``torch.float64``; activations stored in half
            precision are converted batch by batch.

    Returns:
        ``ProbeSweep`` (``.accuracy [S, R, L, H]``, ``.mean()``, ``.std()``, ``.draws``, ``.save()``).

    Example::

        sweep = probe_sweep(acts, shots=[2, 4, 8, 16, 32, 64, "10%"], repeats=20, seed=0)
        sweep.mean(at=4)                        # [n_layers, n_heads]: mean accuracy at 4 shots per class
        heads = rank_heads(sweep, k=32, criterion="stable")
    """
    _check_acts(acts)
    C = _check_C(C)
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter must be a positive int; got {max_iter!r}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    metrics = ["accuracy"] + [m for m in METRICS[1:] if m in metrics]
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    if isinstance(shots, (str, int, float)):
        shots = [shots]
    specs = list(shots)
    if not specs:
        raise ValueError("shots is empty; pass at least one shot count, e.g. shots=[2, 4, 8]")

    n_all = acts.n_samples
    labels = acts.labels.cpu().numpy()
    pool_arr = _index_list(pool, n_all, "pool")
    test_arr = _index_list(test_idx, n_all, "test_idx")
    if test_arr is not None:
        if pool_arr is None:
            pool_arr = np.setdiff1d(np.arange(n_all), test_arr)
        overlap = np.intersect1d(pool_arr, test_arr)
        if overlap.size:
            raise ValueError(
                f"pool and test_idx share {overlap.size} samples (e.g. index {overlap[0]}); a "
                "sample may be trained on or tested on, not both"
            )
    pool_idx = np.arange(n_all) if pool_arr is None else pool_arr
    pool_pos, pool_neg = pool_idx[labels[pool_idx] == 1], pool_idx[labels[pool_idx] == 0]
    where = "the pool" if pool_arr is not None else "the activations"
    _check_classes(torch.as_tensor(labels[pool_idx]), where)
    resolved = resolve_shots(specs, min(pool_pos.size, pool_neg.size))
    eval_labels = labels if test_arr is None else labels[test_arr]
    n_test_pos, n_test_neg = int(eval_labels.sum()), int((1 - eval_labels).sum())
    for spec, n in zip(specs, resolved, strict=True):
        for name, have in (("malicious", pool_pos.size), ("benign", pool_neg.size)):
            if n > have:
                raise ValueError(
                    f"asked for {n} shots per class (spec {spec!r}) but {where} has only {have} "
                    f"{name} samples; use at most {min(pool_pos.size, pool_neg.size)} shots or a "
                    "larger pool"
                )
        left_pos = n_test_pos - (n if test_arr is None else 0)
        left_neg = n_test_neg - (n if test_arr is None else 0)
        if min(left_pos, left_neg) < 1:
            short = "malicious" if left_pos < 1 else "benign"
            raise ValueError(
                f"{n} shots per class (spec {spec!r}) leave no {short} sample to test on; use "
                "fewer shots, or restrict training with pool= so that some samples stay held out"
            )

    L, H, D = acts.n_layers, acts.n_heads, acts.d_head
    dev = torch.device(device) if device is not None else acts.z.device
    if batch_heads is None:
        n_max = max(resolved)
        per_head = 4 * (D * (2 * n_all + 3 * repeats * 2 * n_max) + 3 * repeats * n_all)
        batch_heads = max(1, min(L * H, _SWEEP_BYTES // per_head))
    if not (isinstance(batch_heads, int) and batch_heads >= 1):
        raise ValueError(f"batch_heads must be a positive int or None; got {batch_heads!r}")

    z = acts.z.reshape(n_all, L * H, D)
    y_all = acts.labels.to(dev)
    ws, solver_ws = _Workspace(dev, dtype), _Workspace(dev, dtype)  # reused by every batch
    results = {m: torch.empty(len(specs), repeats, L * H) for m in metrics}
    draws: list[Tensor] = []
    non_converged: list[int] = []
    batches = [(lo, min(L * H, lo + batch_heads)) for lo in range(0, L * H, batch_heads)]
    bar = tqdm(total=len(specs) * len(batches), desc="probe sweep", disable=not progress, unit="batch")
    for s, n in enumerate(resolved):
        train = torch.as_tensor(
            np.stack([_draw((seed, n, r), pool_pos, pool_neg, n) for r in range(repeats)])
        )
        draws.append(train)
        if test_arr is None:
            keep = torch.ones(repeats, n_all, dtype=torch.bool)
            keep.scatter_(1, train, False)
            test = torch.arange(n_all).expand(repeats, n_all)[keep].reshape(repeats, n_all - 2 * n)
        else:
            test = torch.as_tensor(test_arr).expand(repeats, -1)
        y_train = acts.labels[train]  # [R, 2n]
        test_dev = test.to(dev)[None]  # [1, R, n_test]
        y_test = y_all[test_dev]  # [1, R, n_test]
        bad = 0
        for lo, hi in batches:
            hb = hi - lo
            zb = ws.get("z", hb, n_all, D).copy_(z[:, lo:hi].transpose(0, 1))  # [head, n, d_head]
            # [repeat, head, 2n, d_head], gathered as rows of the flat [head * n, d_head] view (the fast path)
            X = ws.get("train", repeats, hb, 2 * n, D)
            rows = (torch.arange(hb, device=dev)[None, :, None] * n_all + train.to(dev)[:, None, :]).flatten(
                1
            )
            for r in range(repeats):
                torch.index_select(zb.view(hb * n_all, D), 0, rows[r], out=X[r].view(hb * 2 * n, D))
            w, b, n_bad = _fit_repeats(
                X, y_train, C=C, standardize=standardize, device=dev, max_iter=max_iter, ws=solver_ws
            )
            bad += n_bad
            margins = torch.baddbmm(b[..., None], w, zb.mT, out=ws.get("margins", hb, repeats, n_all))
            test_m = margins.gather(2, test_dev.expand(hb, -1, -1))  # [head, repeat, n_test]
            for m in metrics:
                results[m][s, :, lo:hi] = _METRIC_FNS[m](test_m, y_test).T.cpu()
            bar.update(1)
        non_converged.append(bad)
    bar.close()
    if sum(non_converged):
        warnings.warn(
            f"{sum(non_converged)} probe(s) stopped at max_iter={max_iter} Newton steps before reaching the "
            "gradient tolerance (per shot count: "
            f"{dict(zip(resolved, non_converged, strict=True))}); raise max_iter or try standardize=True",
            RuntimeWarning,
            stacklevel=2,
        )
    shaped = {m: v.reshape(len(specs), repeats, L, H) for m, v in results.items()}
    return ProbeSweep(
        accuracy=shaped["accuracy"], auroc=shaped.get("auroc"), f1=shaped.get("f1"), shots=resolved,
        shot_specs=[_spec_text(s) for s in specs], draws=draws, seed=seed, C=float(C), standardize=standardize,
        provenance=dict(acts.provenance), pool=None if pool_arr is None else pool_arr.tolist(),
        test_idx=None if test_arr is None else test_arr.tolist(), non_converged=non_converged,
        sample_ids=list(acts.ids),
    )  # fmt: skip
