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


def _comparison(aurocs: dict[tuple[str, str, str], float]):  # type: ignore[no-untyped-def]
    from sahs_lens.detectors.results import Comparison

    rows = [
        {"detector": d, "train": t, "test": s, "auroc": a, "auroc_ci": [a - 0.02, min(1.0, a + 0.02)],
         "transfer": t == "pool text", "extra_forwards": 0, "ms_per_prompt": 0.1}
        for (d, t, s), a in aurocs.items()
    ]  # fmt: skip
    detectors = sorted({d for d, _, _ in aurocs}, key=["sahs", "residual_probe", "text_only"].index)
    return Comparison(detectors, ["held-out", "typographic"], ["pool", "pool text"], rows)


def test_comparison_rows_say_plainly_where_a_baseline_wins() -> None:
    from sahs_lens.organism.demo.comparison import comparison_rows

    comparison = _comparison({
        ("sahs", "pool", "held-out"): 0.95, ("residual_probe", "pool", "held-out"): 0.99,
        ("text_only", "pool", "held-out"): 0.97,
        ("sahs", "pool text", "typographic"): 0.80, ("residual_probe", "pool text", "typographic"): 0.60,
        ("text_only", "pool text", "typographic"): 0.50,
    })  # fmt: skip
    rows = comparison_rows(comparison, ("pool", "held-out"), ("pool text", "typographic"))
    assert [r["met"] for r in rows] == [False, False, True, True]
    assert rows[0]["verdict"].startswith("Missed: the lexical control (0.970)")
    assert rows[1]["verdict"].startswith("Missed: residual_probe (0.990) beats the guard (0.950)")
    assert "outside the guard's bootstrap 95% interval" in rows[1]["verdict"]
    assert rows[2]["value"] == pytest.approx(0.30) and "in transfer" in rows[2]["measure"]
    assert rows[3]["verdict"].startswith("Met: no other detector beats the guard (residual_probe is next")
    for row in rows:
        assert {"measure", "value", "target", "met", "description", "verdict"} <= set(row)
