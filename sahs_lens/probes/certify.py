"""Certifying a float32 solve, and re-solving in float64 the few problems float32 cannot finish.

**Why a certificate.** The Newton solver (``sahs_lens.probes.solver``) tracks margins incrementally, step by
step, so its own gradient test can drift from the truth. Every float32 solve is therefore *certified*: the
gradient is recomputed from scratch at the returned probe, and a probe counts as converged only when that
fresh gradient passes the test too (within a small round-off allowance).

**Why float64, and only sometimes.** Few-shot probes on large head outputs are the hard case: with one or
two samples per class and norms in the hundreds, the optimum sits at margins of 10-15, where ``p (1 - p)``
is ~1e-6, the Gram matrix spans ten decades, and round-off in forming it exceeds the curvature the Newton
system must resolve. The few problems that stalled at float32's floor, or whose tracked margins drifted,
are solved again in float64 (``_refine_in_float64``); the rest keep their float32 solution, so the cost is
small. A sweep on such activations once returned NaN for every 1-shot probe (chance accuracy on every head)
before this.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sahs_lens.probes.solver import _newton, _residual, _Solution, _Workspace

_CERTIFY = 10.0  # a returned probe's recomputed gradient may exceed tol by this factor (float32 round-off)


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
