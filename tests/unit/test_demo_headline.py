"""The demo's significance rule for the ablation target: a one-sided 95% Wilson lower bound."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from sahs_lens.organism.demo import wilson_lower_bound


@pytest.mark.parametrize(("k", "n"), [(0, 48), (1, 48), (5, 48), (24, 48), (48, 48), (1, 8)])
def test_wilson_lower_bound_matches_scipy(k: int, n: int) -> None:
    # one-sided 95% lower bound == lower end of the two-sided 90% Wilson interval
    expected = binomtest(k, n).proportion_ci(confidence_level=0.90, method="wilson").low
    assert wilson_lower_bound(k, n) == pytest.approx(expected, abs=1e-4)


def test_one_flipped_prompt_is_not_an_effect() -> None:
    assert wilson_lower_bound(1, 48) < 0.01 < wilson_lower_bound(5, 48)
