"""Ranking heads from a sweep (hand-built accuracy tensors with known answers) and random-head baselines."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from sahs_lens.heads import Head, HeadSet
from sahs_lens.probes import ProbeSweep
from sahs_lens.ranking import head_scores, random_heads, rank_heads


def sweep_from(
    accuracy: torch.Tensor, shots: list[int] | None = None, specs: list[str] | None = None
) -> ProbeSweep:
    """A ``ProbeSweep`` around a given ``accuracy [S, R, L, H]`` tensor."""
    S, R = accuracy.shape[:2]
    shots = shots or [2 ** (i + 1) for i in range(S)]
    return ProbeSweep(
        accuracy=accuracy, shots=shots, shot_specs=specs or [str(n) for n in shots],
        draws=[torch.zeros(R, 2 * n, dtype=torch.long) for n in shots], seed=0, C=1.0, standardize=False,
    )  # fmt: skip


def steady_and_swinging() -> ProbeSweep:
    """2 shot counts x 4 repeats x 2 layers x 3 heads.

    L0H0: 0.90 every time (steady). L1H2: 0.95 on average but swings 0.80..1.10 (high mean, high std).
    L0H1: 0.70. Everything else 0.5.
    """
    acc = torch.full((2, 4, 2, 3), 0.5)
    acc[:, :, 0, 0] = 0.90
    acc[:, :, 1, 2] = torch.tensor([0.80, 1.10, 0.80, 1.10])
    acc[:, :, 0, 1] = 0.70
    return sweep_from(acc)


def test_mean_and_stable_criteria_disagree_on_a_swinging_head() -> None:
    sweep = steady_and_swinging()
    assert rank_heads(sweep, k=2, criterion="mean") == HeadSet([Head(1, 2), Head(0, 0)])
    assert rank_heads(sweep, k=2, criterion="stable") == HeadSet([Head(0, 0), Head(1, 2)])
    # lam large enough pushes the swinging head below the 0.70 head
    assert rank_heads(sweep, k=2, criterion="stable", lam=2.0) == HeadSet([Head(0, 0), Head(0, 1)])
    std = float(torch.tensor([0.80, 1.10, 0.80, 1.10]).std())
    scores = head_scores(sweep, criterion="stable", lam=0.5)
    assert scores.shape == (2, 3)
    assert float(scores[1, 2]) == pytest.approx(0.95 - 0.5 * std, abs=1e-6)
    assert float(scores[0, 0]) == pytest.approx(0.90, abs=1e-6)


def test_at_shots_selects_and_averages_shot_counts() -> None:
    acc = torch.full((3, 2, 1, 3), 0.5)
    acc[0, :, 0, 0] = 1.0  # best at 2 shots
    acc[2, :, 0, 1] = 1.0  # best at 8 shots
    acc[:, :, 0, 2] = 0.7  # decent everywhere
    sweep = sweep_from(acc, shots=[2, 4, 8], specs=["2", "4", "1%"])
    assert rank_heads(sweep, k=1, at_shots=2)[0] == Head(0, 0)
    assert rank_heads(sweep, k=1, at_shots="1%")[0] == Head(0, 1)
    assert rank_heads(sweep, k=1, at_shots=8)[0] == Head(0, 1)
    assert rank_heads(sweep, k=1, at_shots="all")[0] == Head(0, 2)  # (0.7 * 3) beats (1 + .5 + .5)
    assert rank_heads(sweep, k=1, at_shots=None)[0] == Head(0, 2)
    assert rank_heads(sweep, k=1, at_shots=[2, 4])[0] == Head(0, 0)
    torch.testing.assert_close(head_scores(sweep, at_shots=[2, 8]), acc[[0, 2]].mean(1).mean(0))


def test_ties_break_by_layer_then_head_and_nan_ranks_last() -> None:
    acc = torch.full((1, 3, 3, 2), 0.8)
    acc[0, :, 0, 0] = float("nan")
    sweep = sweep_from(acc)
    ranked = rank_heads(sweep, k=6)
    assert ranked.to_list() == ["L0H1", "L1H0", "L1H1", "L2H0", "L2H1", "L0H0"]
    assert rank_heads(sweep, k=6) == ranked  # deterministic


def test_rank_heads_on_auroc_and_errors() -> None:
    sweep = steady_and_swinging()
    sweep = dataclasses.replace(sweep, auroc=sweep.accuracy.clone())  # ProbeSweep is frozen
    assert rank_heads(sweep, k=1, metric="auroc")[0] == Head(1, 2)
    with pytest.raises(ValueError, match="k=7 but the sweep covers only 6 heads"):
        rank_heads(sweep, k=7)
    with pytest.raises(ValueError, match="k must be a positive int"):
        rank_heads(sweep, k=0)
    with pytest.raises(ValueError, match="unknown criterion 'best'"):
        rank_heads(sweep, criterion="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lam must be"):
        rank_heads(sweep, k=1, criterion="stable", lam=-1.0)
    with pytest.raises(ValueError, match="did not compute 'f1'"):
        rank_heads(sweep, k=1, metric="f1")
    with pytest.raises(ValueError, match="shot count 3 is not in this sweep"):
        rank_heads(sweep, k=1, at_shots=3)


def test_single_repeat_has_zero_std() -> None:
    acc = torch.rand(2, 1, 2, 2)
    sweep = sweep_from(acc)
    torch.testing.assert_close(head_scores(sweep, "stable"), head_scores(sweep, "mean"))
    assert not math.isnan(float(sweep.std(at="all").sum()))


def test_random_heads() -> None:
    a = random_heads(4, 8, k=5, seed=3)
    assert len(a) == 5 and a == random_heads(4, 8, k=5, seed=3)
    assert a != random_heads(4, 8, k=5, seed=4)
    assert all(h.layer < 4 and h.head < 8 for h in a)
    excluded = HeadSet.parse("L0H0,L1H1,L2H2")
    for seed in range(20):
        drawn = random_heads(2, 2, k=1, seed=seed, exclude=excluded[:2])
        assert set(drawn).isdisjoint(excluded[:2])
    every = random_heads(2, 3, k=4, seed=0, exclude=["L0H0", (1, 2)])
    assert set(every) == {Head(0, 1), Head(0, 2), Head(1, 0), Head(1, 1)}
    with pytest.raises(ValueError, match="cannot draw 5 random heads.*leaving 4"):
        random_heads(2, 3, k=5, seed=0, exclude=["L0H0", "L1H2"])
    with pytest.raises(ValueError, match="do not exist"):
        random_heads(2, 3, k=1, exclude=["L5H0"])
    with pytest.raises(ValueError, match="k must be a positive int"):
        random_heads(2, 3, k=0)
