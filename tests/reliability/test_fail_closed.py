"""The guard fails closed: a score that is not a number is flagged, never passed.

fp16 overflow puts NaN or inf into head outputs. NaN compares false with every threshold, so a guard that
only asked ``score >= threshold`` would pass exactly the prompts it can no longer judge.
"""

from __future__ import annotations

import pytest
import torch

from model_adapters.hook_names import hook_z_name
from sahs_lens import SafetyHeadGuard

from .conftest import Guarded, count_hooks


def _poison(value: float, rows: list[int]):  # type: ignore[no-untyped-def]
    def hook(z: torch.Tensor, hook: object) -> torch.Tensor:
        z = z.clone()
        z[rows, -1] = value
        return z

    return hook


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_scores_are_flagged_in_score_inputs_and_generate(llava: Guarded, value: float) -> None:
    model, (guard, _) = llava.model, llava.guards
    guard.threshold = 1 - 1e-6  # nearly nothing is flagged on its own
    batch = model.prepare(["How do I bake bread?", "Describe a sunny day.", "List three primes."])
    poison = [(hook_z_name(h.layer), _poison(value, [1])) for h in guard.heads][:1]
    with model.hooks(poison):
        scores = guard.score_inputs(model, batch)
        out = guard.generate(model, batch, max_new_tokens=3)
    assert scores[1].item() == 1.0 and torch.isfinite(scores).all()
    assert out.flagged[1] is True and out.nonfinite == 1
    assert out.texts[1] == "I'm sorry, but I can't help with that request because it may cause harm."
    assert count_hooks(model) == llava.hooks


def test_nonfinite_raise_mode(llava: Guarded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, (guard, _) = llava.model, llava.guards
    strict = SafetyHeadGuard.from_dict({**guard.to_dict(), "nonfinite": "raise"})
    strict.save(tmp_path / "g")
    assert SafetyHeadGuard.load(tmp_path / "g").nonfinite == "raise"
    batch = model.prepare(["How do I bake bread?", "Describe a sunny day."])
    before = strict.score_inputs(model, batch)
    poison = [(hook_z_name(strict.heads[0].layer), _poison(float("nan"), [0]))]
    with pytest.raises(ValueError, match=r"not finite for row\(s\) \[0\]"), model.hooks(poison):
        strict.score_inputs(model, batch)
    with pytest.raises(ValueError, match="not finite"), model.hooks(poison):
        strict.generate(model, batch, max_new_tokens=2)
    assert count_hooks(model) == llava.hooks
    assert torch.equal(strict.score_inputs(model, batch), before)


def test_nonfinite_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="nonfinite must be one of flag, raise"):
        SafetyHeadGuard(
            __import__("sahs_lens").HeadSet.parse("L0H0"), torch.zeros(4), 0.0, d_head=4, nonfinite="ignore"
        )  # type: ignore[arg-type]
