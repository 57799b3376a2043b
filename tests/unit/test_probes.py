"""Probes: agreement with scikit-learn, ground-truth recovery of planted safety heads, reproducibility,
shot resolution, errors, and save/load of a sweep. Synthetic tensors only."""

from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import Head
from sahs_lens.probes import (
    HeadProbes,
    ProbeFit,
    ProbeSweep,
    fit_head_probes,
    fit_probes,
    probe_sweep,
    resolve_shots,
)
from sahs_lens.ranking import rank_heads

PLANTED = {Head(1, 2), Head(2, 5), Head(3, 0)}
DECOY = Head(0, 3)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small solves gain nothing from threads, and on a busy 2-core runner torch's and BLAS's thread pools
    spinning against each other make them 10-100x slower: run this module on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def problems(
    n_problems: int = 64, n: int = 200, d: int = 32, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``X [P, n, d]`` with a class signal of varying strength and direction, a mean offset and correlated
    features (as real head outputs have), labels alternating 0/1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    mix = torch.randn(n_problems, d, d, generator=g) / d**0.5
    X = torch.randn(n_problems, n, d, generator=g) @ mix + torch.randn(n_problems, 1, d, generator=g)
    direction = torch.randn(n_problems, 1, d, generator=g)
    strength = torch.linspace(0.05, 0.6, n_problems)[:, None, None]
    return X + strength * direction * (2 * y - 1)[None, :, None].float(), y


def sklearn_fit(X: np.ndarray, y: np.ndarray, standardize: bool = False) -> tuple[np.ndarray, float, object]:
    model = LogisticRegression(C=1.0, tol=1e-8, max_iter=10_000)
    pipe = make_pipeline(StandardScaler(), model) if standardize else model
    pipe.fit(X, y)
    return model.coef_[0], float(model.intercept_[0]), pipe


@functools.lru_cache(maxsize=2)
def sklearn_reference(standardize: bool) -> list[tuple[np.ndarray, float, float]]:
    """scikit-learn's coef, intercept and test accuracy for every problem of ``problems()`` (cached)."""
    X, y = problems()
    out = []
    for p in range(X.shape[0]):
        coef, intercept, pipe = sklearn_fit(X[p, :100].double().numpy(), y[:100].numpy(), standardize)
        acc = float((pipe.predict(X[p, 100:].double().numpy()) == y[100:].numpy()).mean())  # type: ignore[attr-defined]
        out.append((coef, intercept, acc))
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ---- agreement with scikit-learn ---------------------------------------------------------------------


@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("space", ["primal", "dual"])
def test_fit_probes_matches_sklearn(standardize: bool, space: str) -> None:
    X, y = problems()
    train, test = slice(0, 100), slice(100, 200)
    fit = fit_probes(X[:, train], y[train], C=1.0, standardize=standardize, space=space)  # type: ignore[arg-type]
    assert fit.weight.shape == (64, 32) and fit.bias.shape == (64,)
    assert bool(fit.converged.all()) and fit.space == space
    ours_pred = fit.predict(X[:, test]).numpy()
    same_acc, cosines, gaps = 0, [], []
    for p, (coef, intercept, ref_acc) in enumerate(sklearn_reference(standardize)):
        same_acc += ref_acc == float((ours_pred[p] == y[test].numpy()).mean())
        if standardize:  # compare in the standardized space scikit-learn's coef_ lives in
            w = fit.standardized_weight[p].double().numpy()
            b = float(fit.bias[p] + fit.mean[p] @ fit.weight[p])  # type: ignore[index]
        else:
            w, b = fit.weight[p].double().numpy(), float(fit.bias[p])
        cosines.append(cosine(coef, w))
        gaps.append(abs(intercept - b))
    assert same_acc >= 0.99 * 64
    assert min(cosines) >= 0.999
    assert max(gaps) <= 0.02


def test_float64_reaches_sklearn_to_high_precision() -> None:
    X, y = problems(n_problems=8, n=120, d=16, seed=1)
    fit = fit_probes(X, y, dtype=torch.float64, tol=1e-10)
    for p in range(8):
        coef, intercept, _ = sklearn_fit(X[p].double().numpy(), y.numpy())
        np.testing.assert_allclose(fit.weight[p].numpy(), coef, rtol=1e-5, atol=1e-6)
        assert abs(float(fit.bias[p]) - intercept) < 1e-5


@pytest.mark.parametrize("n", [2, 8])
def test_few_shot_probes_on_large_head_outputs_converge_to_sklearns(n: int) -> None:
    # Head outputs with norms of hundreds to thousands and one or four samples per class: the optimum
    # has margins ~10-15, where float32 cannot resolve the curvature (the bug that made every 1-shot probe
    # of the organism return NaN, i.e. chance accuracy). Every probe must converge to scikit-learn's.
    g = torch.Generator().manual_seed(3)
    X = torch.randn(48, n + 40, 32, generator=g) * torch.logspace(1, 3.5, 48)[:, None, None] + 300.0
    y = torch.arange(n + 40) % 2
    X[:, :, 0] += 40.0 * (2 * y - 1)
    fit = fit_probes(X[:, :n], y[:n])
    assert bool(fit.converged.all()), f"{fit.n_not_converged} probes did not converge"
    assert bool(torch.isfinite(fit.weight).all()) and bool(torch.isfinite(fit.bias).all())
    held_out = fit.predict(X[:, n:]).numpy()
    for p in range(48):
        # the same objective; scikit-learn's default lbfgs itself stops short on these ill-conditioned
        # problems (coefficient cosine down to 0.88 with its own optimum), newton-cg reaches it
        ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000, solver="newton-cg")
        with warnings.catch_warnings():  # its line search warns once it is at round-off level
            warnings.simplefilter("ignore")
            ref.fit(X[p, :n].double().numpy(), y[:n].numpy())
        assert cosine(ref.coef_[0], fit.weight[p].double().numpy()) >= 0.999
        assert (held_out[p] == ref.predict(X[p, n:].double().numpy())).mean() >= 0.95


def test_one_shot_sweep_is_not_chance_on_large_activations() -> None:
    acts = planted_acts(n=120)
    big = HeadActivations(z=acts.z * 500.0 + 200.0, labels=acts.labels, provenance=acts.provenance)
    sweep = probe_sweep(big, shots=[1], repeats=6, metric="accuracy", progress=False)
    assert sweep.non_converged == [0]
    mean = sweep.mean(at=1)
    others = [float(mean[i, j]) for i in range(4) for j in range(8) if Head(i, j) not in PLANTED]
    assert min(float(mean[h.layer, h.head]) for h in PLANTED) > 0.65 > 0.55 > sum(others) / len(others)


def test_primal_and_dual_give_the_same_probe() -> None:
    X, y = problems(n_problems=16, n=24, d=40, seed=2)
    primal = fit_probes(X, y, space="primal", dtype=torch.float64, tol=1e-9)
    dual = fit_probes(X, y, space="dual", dtype=torch.float64, tol=1e-9)
    torch.testing.assert_close(primal.weight, dual.weight, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(primal.bias, dual.bias, rtol=1e-6, atol=1e-7)


def test_sample_weight_mask_equals_fitting_the_subset() -> None:
    X, y = problems(n_problems=6, n=60, d=8, seed=3)
    mask = torch.zeros(6, 60)
    for p in range(6):
        mask[p, p : p + 40] = 1.0
    masked = fit_probes(X, y, sample_weight=mask, dtype=torch.float64, tol=1e-9)
    for p in range(6):
        alone = fit_probes(X[p, p : p + 40], y[p : p + 40], dtype=torch.float64, tol=1e-9)
        torch.testing.assert_close(masked.weight[p], alone.weight[0], rtol=1e-6, atol=1e-7)


def test_warm_start_reaches_the_same_probe_in_fewer_steps() -> None:
    X, y = problems(n_problems=8, n=120, d=16, seed=6)
    cold = fit_probes(X, y, dtype=torch.float64, tol=1e-9)
    near = (cold.weight * 1.05, cold.bias - 0.1)
    warm = fit_probes(X, y, dtype=torch.float64, tol=1e-9, init=near)
    torch.testing.assert_close(warm.weight, cold.weight, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(warm.bias, cold.bias, rtol=1e-6, atol=1e-7)
    assert int(warm.n_iter.sum()) < int(cold.n_iter.sum())
    with pytest.raises(ValueError, match="init must be"):
        fit_probes(X, y, init=(cold.weight[:3], cold.bias))
    with pytest.raises(ValueError, match="needs the primal system"):
        fit_probes(X, y, init=near, space="dual")


def test_chunking_and_predict_proba() -> None:
    X, y = problems(n_problems=10, n=50, d=8, seed=4)
    whole = fit_probes(X, y)
    chunked = fit_probes(X, y, chunk_size=3)
    torch.testing.assert_close(whole.weight, chunked.weight)
    proba = whole.predict_proba(X)
    assert proba.shape == (10, 50)
    torch.testing.assert_close(
        proba, torch.sigmoid(torch.einsum("pnd,pd->pn", X, whole.weight) + whole.bias[:, None])
    )
    assert whole.predict_proba(X[0]).shape == (10, 50)  # shared features broadcast over problems


def test_head_probes_shapes_and_agreement() -> None:
    X, y = problems(n_problems=12, n=80, d=8, seed=5)
    acts = HeadActivations(z=X.permute(1, 0, 2).reshape(80, 3, 4, 8), labels=y)
    probes = fit_head_probes(acts, train_idx=range(40))
    assert probes.weight.shape == (3, 4, 8) and probes.bias.shape == (3, 4)
    test = acts.select(range(40, 80))
    assert probes.predict_proba(test).shape == (40, 3, 4)
    acc = probes.accuracy(test)
    assert acc.shape == (3, 4)
    direct = fit_probes(X[:, :40], y[:40])
    torch.testing.assert_close(probes.weight.reshape(12, 8), direct.weight)
    expected = ((direct.predict(X[:, 40:]) == y[40:]).float().mean(1)).reshape(3, 4)
    torch.testing.assert_close(acc, expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        probes.C = 2.0  # type: ignore[misc]


def test_a_probe_flags_a_margin_of_exactly_zero_as_malicious() -> None:
    # the one threshold rule (sahs_lens.evaluation.metrics.flags): malicious when margin >= 0
    fit = ProbeFit(
        weight=torch.zeros(2, 3), bias=torch.tensor([0.0, -1e-6]), n_iter=torch.zeros(2, dtype=torch.long),
        converged=torch.ones(2, dtype=torch.bool), grad_max=torch.zeros(2), C=1.0, tol=1e-6, space="primal",
    )  # fmt: skip
    assert fit.predict(torch.randn(4, 3)).tolist() == [[1, 1, 1, 1], [0, 0, 0, 0]]
    acts = HeadActivations(z=torch.randn(6, 1, 1, 3), labels=torch.tensor([1, 1, 1, 1, 0, 0]))
    probes = HeadProbes(
        weight=torch.zeros(1, 1, 3), bias=torch.zeros(1, 1), converged=torch.ones(1, 1, dtype=torch.bool),
        provenance=dict(acts.provenance),
    )  # fmt: skip
    assert float(probes.accuracy(acts)[0, 0]) == pytest.approx(4 / 6)  # every sample flagged
    assert float(probes.auroc(acts)[0, 0]) == 0.5  # all margins tied


# ---- ground truth: planted safety heads and a decoy --------------------------------------------------


def planted_acts(seed: int = 0, n: int = 400) -> HeadActivations:
    """4 layers x 8 heads x d_head 16. Planted heads carry a clean signal on one direction; the decoy
    ``L0H3`` carries a *stronger* signal drowned in high-variance nuisance directions: the most accurate
    head with many samples, close to chance and erratic with few."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    sign = (2 * y - 1).float()
    z = torch.randn(n, 4, 8, 16, generator=g)
    for head in PLANTED:
        z[:, head.layer, head.head, 0] += 1.6 * sign
    z[:, DECOY.layer, DECOY.head, 0] += 2.2 * sign
    z[:, DECOY.layer, DECOY.head, 1:] *= 3.5
    return HeadActivations(z=z, labels=y, provenance={"model_name": "planted-test"})


@pytest.fixture(scope="module")
def planted_sweep() -> ProbeSweep:
    with torch.inference_mode():
        torch.set_num_threads(1)
        return probe_sweep(planted_acts(), shots=[1, 2, 4, 8, 64], repeats=20, seed=0, progress=False)


def test_stable_ranking_recovers_the_planted_heads(planted_sweep: ProbeSweep) -> None:
    assert set(rank_heads(planted_sweep, k=len(PLANTED), criterion="stable")) == PLANTED


def test_the_decoy_is_real(planted_sweep: ProbeSweep) -> None:
    # with many samples the decoy is the single most accurate head, so a ranking at the largest shot
    # count alone would pick it; with few samples it is close to chance.
    assert rank_heads(planted_sweep, k=1, at_shots=64)[0] == DECOY
    few = planted_sweep.mean(at=[1, 2])
    assert float(few[DECOY.layer, DECOY.head]) < min(float(few[h.layer, h.head]) for h in PLANTED) - 0.1


def test_sweep_shapes_and_metrics(planted_sweep: ProbeSweep) -> None:
    assert planted_sweep.accuracy.shape == (5, 20, 4, 8)
    assert planted_sweep.auroc is not None and planted_sweep.f1 is not None
    assert planted_sweep.auroc.shape == planted_sweep.f1.shape == (5, 20, 4, 8)
    assert planted_sweep.mean().shape == (5, 4, 8) and planted_sweep.mean(at=4).shape == (4, 8)
    assert planted_sweep.std("auroc", at="all").shape == (4, 8)
    assert [d.shape for d in planted_sweep.draws] == [(20, 2 * n) for n in (1, 2, 4, 8, 64)]
    assert planted_sweep.non_converged == [0] * 5
    summary = planted_sweep.summary()
    assert summary["per_shot"][-1]["accuracy"]["best_head"] == str(DECOY)
    assert json.loads(json.dumps(summary))["shots"] == [1, 2, 4, 8, 64]


# ---- reproducibility ---------------------------------------------------------------------------------


def test_same_seed_is_bitwise_identical_and_draws_reproduce() -> None:
    acts = planted_acts(n=120)
    a = probe_sweep(acts, shots=[2, 8], repeats=4, seed=7, progress=False)
    b = probe_sweep(acts, shots=[2, 8], repeats=4, seed=7, progress=False)
    c = probe_sweep(acts, shots=[2, 8], repeats=4, seed=8, progress=False)
    for metric in ("accuracy", "auroc", "f1"):
        assert torch.equal(a.values(metric), b.values(metric))
    assert all(torch.equal(x, y) for x, y in zip(a.draws, b.draws, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.draws, c.draws, strict=True))
    assert not torch.equal(a.accuracy, c.accuracy)
    # one (shot, repeat) recomputed by hand from the recorded draw
    train = a.draws[1][3]
    assert int(acts.labels[train].sum()) == 8 and train.numel() == 16
    test = torch.tensor(sorted(set(range(120)) - set(train.tolist())))
    head = Head(1, 2)
    fit = fit_probes(acts.z[train, head.layer, head.head], acts.labels[train])
    acc = (fit.predict(acts.z[test, head.layer, head.head])[0] == acts.labels[test]).float().mean()
    assert float(acc) == pytest.approx(float(a.accuracy[1, 3, head.layer, head.head]), abs=1e-6)
    # adding a shot count leaves the other draws unchanged
    d = probe_sweep(acts, shots=[4, 2], repeats=4, seed=7, metric="accuracy", progress=False)
    assert torch.equal(d.draws[1], a.draws[0])


def test_float64_sweep_agrees_with_float32() -> None:
    acts = planted_acts(n=160)
    single = probe_sweep(acts, shots=[4, 16], repeats=3, metric=("accuracy", "auroc"), progress=False)
    double = probe_sweep(acts, shots=[4, 16], repeats=3, metric=("accuracy", "auroc"), progress=False,
                         dtype=torch.float64)  # fmt: skip
    torch.testing.assert_close(double.auroc, single.auroc, atol=2e-3, rtol=0)
    assert float((double.accuracy - single.accuracy).abs().max()) <= 1 / 150  # at most one test sample
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        probe_sweep(acts, shots=[4], dtype=torch.float16, progress=False)


# ---- shots --------------------------------------------------------------------------------------------


def test_resolve_shots_rule() -> None:
    assert resolve_shots([2, "10%", "0.1%", 0.25], n_per_class=40) == [2, 4, 1, 10]
    # exact rational arithmetic: 29% of 100 is 29 (0.29 * 100 == 28.999999999999996 in floating point)
    assert resolve_shots(["29%", 0.29, "100%"], n_per_class=100) == [29, 29, 100]


@pytest.mark.parametrize("bad", ["ten", "10", "150%", "%", 0, -2, 1.5, 1.0, True, None])
def test_bad_shot_specs(bad: object) -> None:
    with pytest.raises(ValueError, match="shot"):
        resolve_shots([bad], n_per_class=40)  # type: ignore[list-item]


def test_fraction_shots_in_a_sweep_use_the_smaller_pool_class() -> None:
    acts = planted_acts(n=200)
    pool = list(range(0, 100)) + [i for i in range(100, 200) if i % 2 == 1]  # 50 benign, 100 malicious
    sweep = probe_sweep(acts, shots=["10%", 0.2, 3], repeats=2, pool=pool, metric="accuracy", progress=False)
    assert sweep.shots == [5, 10, 3]
    assert sweep.shot_specs == ["10%", "0.2", "3"]
    assert sweep.shot_indices("10%") == [0] and sweep.shot_indices(10) == [1]
    for draw in sweep.draws:
        assert set(draw.flatten().tolist()) <= set(pool)


def test_test_idx_is_a_fixed_held_out_set() -> None:
    acts = planted_acts(n=100)
    sweep = probe_sweep(
        acts, shots=[3], repeats=3, test_idx=range(60, 100), metric="accuracy", progress=False
    )
    assert sweep.test_idx == list(range(60, 100)) and sweep.pool == list(range(60))
    assert int(sweep.draws[0].max()) < 60


# ---- errors -------------------------------------------------------------------------------------------


def test_errors_say_what_went_wrong() -> None:
    acts = planted_acts(n=80)
    empty = HeadActivations(z=torch.zeros(0, 2, 2, 4), labels=torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        probe_sweep(empty, progress=False)
    one_class = HeadActivations(z=torch.randn(10, 2, 2, 4), labels=torch.ones(10, dtype=torch.long))
    with pytest.raises(ValueError, match="probes need both malicious and benign samples; got only label 1"):
        probe_sweep(one_class, shots=[2], progress=False)
    pool = list(range(0, 80, 2))[:20] + list(range(1, 80, 2))  # 20 benign, 40 malicious
    with pytest.raises(
        ValueError, match="asked for 32 shots per class .* the pool has only 20 benign samples"
    ):
        probe_sweep(acts, shots=[2, 32], pool=pool, progress=False)
    with pytest.raises(ValueError, match="leave no malicious sample to test on"):
        probe_sweep(acts, shots=[40], progress=False)
    nan = planted_acts(n=40)
    nan.z[3, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        probe_sweep(nan, shots=[2], progress=False)
    with pytest.raises(ValueError, match="cannot read shot spec 'lots'"):
        probe_sweep(acts, shots=["lots"], progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        probe_sweep(acts, shots=[2], metric=("accuracy", "precision"), progress=False)
    with pytest.raises(ValueError, match="share 10 samples"):
        probe_sweep(acts, shots=[2], pool=range(40), test_idx=range(30, 80), progress=False)
    with pytest.raises(ValueError, match="only label 0"):
        fit_probes(torch.randn(2, 6, 3), torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_probes(torch.tensor([[[0.0], [float("inf")]]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="C must be a positive"):
        fit_probes(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), C=0.0)
    sweep = probe_sweep(acts, shots=[2], repeats=2, metric="accuracy", progress=False)
    with pytest.raises(ValueError, match="did not compute 'auroc'"):
        sweep.values("auroc")
    with pytest.raises(ValueError, match="shot count 16 is not in this sweep"):
        sweep.mean(at=16)


def test_non_convergence_is_reported() -> None:
    acts = planted_acts(n=80)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweep = probe_sweep(acts, shots=[8], repeats=2, max_iter=1, metric="accuracy", progress=False)
    assert sweep.non_converged[0] > 0
    assert any("max_iter=1" in str(w.message) for w in caught)


# ---- disk -----------------------------------------------------------------------------------------------


SWEEP_FIELDS = [f.name for f in dataclasses.fields(ProbeSweep)]


def assert_same_sweep(back: ProbeSweep, sweep: ProbeSweep) -> None:
    """Field by field: tensors with their dtype and shape (NaN where NaN), everything else by value and type."""
    assert SWEEP_FIELDS[:3] == ["accuracy", "shots", "shot_specs"]  # the dataclass still has its fields
    for name in SWEEP_FIELDS:
        a, b = getattr(back, name), getattr(sweep, name)
        pairs = list(zip(a, b, strict=True)) if name == "draws" else [(a, b)]
        for x, y in pairs:
            if isinstance(y, torch.Tensor):
                assert isinstance(x, torch.Tensor) and (x.dtype, x.shape) == (y.dtype, y.shape), name
                torch.testing.assert_close(x, y, rtol=0, atol=0, equal_nan=True, msg=name)
            else:
                assert x == y and type(x) is type(y), name
    assert back == sweep


@pytest.fixture(scope="module")
def small_sweep() -> ProbeSweep:
    """A sweep with the optional parts set the other way: accuracy only, a pool and a fixed test set."""
    acts = planted_acts(n=60)
    sweep = probe_sweep(acts, shots=[2, "10%"], repeats=3, test_idx=range(40, 60), metric="accuracy",
                        progress=False)  # fmt: skip
    edges = sweep.accuracy.clone()
    edges[0, 0, 0, 0], edges[0, 0, 0, 1] = 0.0, 1.0  # the ends of the range survive the trip
    return dataclasses.replace(sweep, accuracy=edges)


def test_to_dict_from_dict_round_trip(planted_sweep: ProbeSweep, small_sweep: ProbeSweep) -> None:
    for sweep in (planted_sweep, small_sweep):
        data = json.loads(json.dumps(sweep.to_dict()))  # JSON-ready, and nothing is lost on the way
        assert_same_sweep(ProbeSweep.from_dict(data), sweep)
    assert small_sweep.pool == list(range(40)) and small_sweep.auroc is None
    assert small_sweep != planted_sweep
    with pytest.raises(ValueError, match="not a sahs_lens probe sweep"):
        ProbeSweep.from_dict({"format": "something else"})
    with pytest.raises(ValueError, match=r"ProbeSweep.to_dict\(\)"):
        ProbeSweep.from_dict(planted_sweep.summary())  # a digest, not the sweep
    data = planted_sweep.to_dict()
    del data["seed"]
    with pytest.raises(ValueError, match="lacks seed"):
        ProbeSweep.from_dict(data)


def test_sweep_is_frozen(planted_sweep: ProbeSweep) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        planted_sweep.seed = 3  # type: ignore[misc]
    changed = dataclasses.replace(planted_sweep, seed=3)
    assert changed.seed == 3 and planted_sweep.seed == 0 and changed != planted_sweep
    settings = planted_sweep.to_dict()
    settings["shots"].append(128)
    settings["provenance"]["model_name"] = "changed"
    assert (
        planted_sweep.shots == [1, 2, 4, 8, 64] and planted_sweep.provenance["model_name"] == "planted-test"
    )


def test_save_load_round_trip(tmp_path: Path, planted_sweep: ProbeSweep, small_sweep: ProbeSweep) -> None:
    planted_sweep.save(tmp_path / "sweep")
    back = ProbeSweep.load(tmp_path / "sweep")
    assert_same_sweep(back, planted_sweep)
    assert rank_heads(back, k=3, criterion="stable") == rank_heads(planted_sweep, k=3, criterion="stable")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        planted_sweep.save(tmp_path / "sweep")
    assert not list((tmp_path / "sweep").glob("*.pkl")) and not list((tmp_path / "sweep").glob("*.pt"))
    small_sweep.save(tmp_path / "sweep", overwrite=True)
    assert_same_sweep(ProbeSweep.load(tmp_path / "sweep"), small_sweep)
    meta = json.loads((tmp_path / "sweep" / "probe_sweep.json").read_text())
    assert meta["summary"] == small_sweep.summary()["per_shot"]


def test_load_checks_the_model(tmp_path: Path, planted_sweep: ProbeSweep) -> None:
    identity = {"model_name": "tiny", "family": "llava", "checkpoint": "ab12", "template": "llava-hf",
                "n_layers": 4, "n_heads": 8, "d_head": 16}  # fmt: skip

    def model(**changes: object) -> SimpleNamespace:
        return SimpleNamespace(cfg=SimpleNamespace(identity=lambda: {**identity, **changes}))

    dataclasses.replace(planted_sweep, provenance=dict(identity)).save(tmp_path / "sweep")
    back = ProbeSweep.load(tmp_path / "sweep", model=model())  # type: ignore[arg-type]
    assert back.provenance == identity
    ProbeSweep.load(tmp_path / "sweep", model=model(model_name="same weights, another path"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="this probe sweep does not fit this model: n_heads: 8 vs 16; run "
                       "probe_sweep on activations of this model"):  # fmt: skip
        ProbeSweep.load(tmp_path / "sweep", model=model(n_heads=16))  # type: ignore[arg-type]
    planted_sweep.save(tmp_path / "unknown")  # provenance without the model's identity: fits no model
    with pytest.raises(ValueError, match="family: <missing> vs 'llava'"):
        ProbeSweep.load(tmp_path / "unknown", model=model())  # type: ignore[arg-type]
