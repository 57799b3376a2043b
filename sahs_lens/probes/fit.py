"""Fitting probes: many independent L2 logistic regressions in one call, and one probe per attention head.

A *probe* is a logistic regression that reads a feature vector (here: one head's output at the decision
position, a ``d_head`` vector) and predicts whether the prompt is malicious (label 1). `fit_probes` fits
``P`` of them at once on ``X [P, N, D]``, each exactly scikit-learn's ``LogisticRegression(C)``;
`fit_head_probes` fits one per head of a ``HeadActivations`` (``n_layers * n_heads`` problems). The solve
is a batched Newton method (``sahs_lens.probes.solver``) whose float32 results are certified, and re-solved
in float64 where float32 fell short (``sahs_lens.probes.certify``). Features are centred (and, with
``standardize=True``, z-scored) before the solve; the returned weights are folded back into the space of
the features you passed, so ``X @ weight + bias`` is the decision function.

A fitted probe flags a sample as malicious when its margin is ``>= 0`` (probability ``>= 0.5``), the one
threshold rule of ``sahs_lens.evaluation.metrics.flags``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from sahs_lens.evaluation import metrics
from sahs_lens.head_activations import HeadActivations
from sahs_lens.probes.certify import _refine_in_float64
from sahs_lens.probes.checks import _check_acts, _check_C, _check_classes, _check_problems
from sahs_lens.probes.solver import _auto_space, _newton, _Solution, _Workspace

__all__ = ["HeadProbes", "ProbeFit", "Space", "fit_head_probes", "fit_probes"]

Space = Literal["auto", "primal", "dual"]
_SOLVE_BYTES = 64 * 2**20  # working memory of one batched solve (a chunk of problems; cache-friendly)


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
        """Hard labels: 1 where the margin is ``>= 0`` (probability ``>= 0.5``; ``evaluation.metrics.flags``).

        scikit-learn's ``predict`` flags ``margin > 0``; the two differ only for margins exactly 0.
        """
        return metrics.flags(self.decision_function(X), 0.0).long()


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


def _problems(z: Tensor) -> Tensor:
    """``[n, layer, head, d_head]`` -> ``[layer*head, n, d_head]`` (one problem per head)."""
    n, n_layers, n_heads, d_head = z.shape
    return z.reshape(n, n_layers * n_heads, d_head).transpose(0, 1)


@dataclass(frozen=True)
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
        """Accuracy of every head's probe on ``acts`` (malicious when margin ``>= 0``), ``[L, H]``."""
        margins = self.decision_function(acts).permute(1, 2, 0)
        return metrics.accuracy(margins, acts.labels.to(margins.device), threshold=0.0)

    def auroc(self, acts: HeadActivations) -> Float[Tensor, "layer head_index"]:
        """Rank-based AUROC of every head's probe on ``acts``, ``[n_layers, n_heads]``."""
        margins = self.decision_function(acts).permute(1, 2, 0)
        return metrics.auroc(margins, acts.labels.to(margins.device))


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
