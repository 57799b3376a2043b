"""The batched damped Newton solver behind every probe: thousands of small logistic regressions at once.

**The objective.** Every probe minimises scikit-learn's ``LogisticRegression(C=C)`` objective,

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

**Making a step cheap.** Forming and factoring the system is most of the cost of a step, so a factorisation
is reused (a *chord* step: two products with ``X`` and two triangular solves) for as long as it keeps
shrinking the gradient at least 4-fold per step. Features arrive centred (the intercept absorbs the mean
exactly), which keeps float32 accurate when head outputs share a large offset. Finished problems leave the
batch, so stragglers do not cost the rest; scratch buffers are reused across steps and chunks
(`_Workspace`), so repeated passes stay in cache and large buffers are not page-faulted in again.

**Precision at large margins.** Few-shot probes on large head outputs sit at margins of 10-15, where
``p (1 - p)`` is ~1e-6. Residuals and curvature weights are computed as ``-sigmoid(-m)`` and
``sigmoid(m) sigmoid(-m)`` (never ``p - 1``, which keeps two digits in float32 there). What float32 still
cannot finish is certified and re-solved in float64 by ``sahs_lens.probes.certify``.

This module is the numerical kernel only: inputs are already checked, centred and on the solve device
(``sahs_lens.probes.fit`` prepares them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

_ARMIJO = 1e-4  # sufficient-decrease constant of the line search
_MAX_HALVINGS = 30  # step halvings before a problem is declared stalled
_PATIENCE = 6  # steps without a 10% better gradient before a problem is declared stalled
_PROGRESS = 0.9
_REFRESH = 0.25  # refactor a problem's Hessian when its last step shrank the gradient less than 4-fold


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


def _auto_space(n_samples: int, n_features: int) -> Literal["primal", "dual"]:
    """The Newton system to solve: dual (``N x N``) below ~7/8 of the feature count, else primal."""
    return "dual" if 8 * n_samples <= 7 * n_features else "primal"  # measured crossover on CPU
