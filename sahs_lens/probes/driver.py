"""``probe_sweep``: the few-shot stability sweep that nominates the safety heads.

For each shot count ``n`` and each of ``R`` repeats, draw ``n`` malicious and ``n`` benign training samples
at random from the pool, fit a probe on every head, and score each probe on the samples it did not train
on. The result, ``accuracy[shot, repeat, layer, head_index]`` (a ``ProbeSweep``), shows which heads stay
accurate with low variance across draws when the training set shrinks to a handful of samples: those are
the safety heads (``sahs_lens.ranking.rank_heads``).

Under ``torchrun`` (``sahs_lens.distributed``) the head batches are shared out between the ranks (each
solves the batches a single process would, with the same draws), after a check that every rank holds the
same activations and arguments; the results are gathered on every rank, equal bit for bit to one process.

How the work is laid out: heads are processed in batches (~512 MB of working memory); within a batch all
repeats x heads are fitted by one batched solve (``sahs_lens.probes.fit``), and the margins of every probe on
every sample come from one batched product, gathered at each repeat's held-out samples and scored by the
batched metrics of ``sahs_lens.evaluation.metrics`` (a probe flags malicious when its margin is ``>= 0``).
When the primal system is solved, repeat 0 of every head warm-starts that head's other repeats. The draw of
repeat ``r`` at ``n`` shots is seeded by ``(seed, n, r)``, so adding a shot count leaves the other draws as
they were, and every draw is recorded in the sweep.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from sahs_lens.distributed import World, current_world, fingerprint
from sahs_lens.evaluation.metrics import accuracy, auroc, f1
from sahs_lens.head_activations import HeadActivations
from sahs_lens.probes.checks import _check_acts, _check_C, _check_classes
from sahs_lens.probes.fit import _fit
from sahs_lens.probes.shots import ShotSpec, _spec_text, resolve_shots
from sahs_lens.probes.solver import _auto_space, _Workspace
from sahs_lens.probes.sweep import METRICS, ProbeSweep

__all__ = ["probe_sweep"]

_SWEEP_BYTES = 512 * 2**20  # working memory of one head batch of a sweep


def _acts_digest(acts: HeadActivations) -> str:
    """A fingerprint of everything of ``acts`` a sweep reads: every byte of ``z``, labels, ids, provenance."""
    digest = hashlib.sha256(acts.z.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    digest.update(fingerprint([acts.labels.tolist(), acts.ids, acts.provenance, list(acts.z.shape)]).encode())
    return digest.hexdigest()


def _score(metric: str, margins: Tensor, labels: Tensor) -> Tensor:
    """One metric of every probe along the last axis of ``margins``; a probe flags malicious at margin >= 0."""
    if metric == "accuracy":
        return accuracy(margins, labels, threshold=0.0)
    if metric == "f1":
        return f1(margins, labels, threshold=0.0)
    if metric == "auroc":
        return auroc(margins, labels)
    raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")


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
    distributed: bool = True,
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
        distributed: under torchrun, share the head batches between the ranks and gather the results on
            every rank (``sahs_lens.distributed``; every rank must call it then); ``False``: this process
            solves every head itself (what code running on rank 0 only must pass).

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

    # under torchrun: this rank's head batches only, gathered below
    world = current_world() if distributed else World()
    if world.size > 1:
        progress = progress and world.is_main
        pool_list = None if pool_arr is None else pool_arr.tolist()
        test_list = None if test_arr is None else test_arr.tolist()
        settings = [specs, repeats, seed, pool_list, test_list, metrics, float(C), standardize, batch_heads,
                    max_iter, str(dtype)]  # fmt: skip
        world.agree({"the activations": _acts_digest(acts), "the arguments": fingerprint(settings)},
                    what="what to probe", fix="give every rank the same activations and probe_sweep arguments")  # fmt: skip
    z = acts.z.reshape(n_all, L * H, D)
    y_all = acts.labels.to(dev)
    ws, solver_ws = _Workspace(dev, dtype), _Workspace(dev, dtype)  # reused by every batch
    results = {m: torch.empty(len(specs), repeats, L * H) for m in metrics}
    draws: list[Tensor] = []
    non_converged: list[int] = []
    batches = [(lo, min(L * H, lo + batch_heads)) for lo in range(0, L * H, batch_heads)]
    mine = world.share(batches)  # the batches one process solves, so every head is solved the same way
    bar = tqdm(total=len(specs) * len(mine), desc="probe sweep", disable=not progress, unit="batch")
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
        for lo, hi in mine:
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
                results[m][s, :, lo:hi] = _score(m, test_m, y_test).T.cpu()
            bar.update(1)
        non_converged.append(bad)
    bar.close()
    if world.size > 1:
        shares = world.gather(
            ({m: {lo: results[m][:, :, lo:hi].clone() for lo, hi in mine} for m in metrics}, non_converged)
        )
        for part, _ in shares:
            for m in metrics:
                for lo, block in part[m].items():
                    results[m][:, :, lo : lo + block.shape[-1]] = block
        non_converged = [sum(counts) for counts in zip(*(c for _, c in shares), strict=True)]
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
