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


def _coordinate(guard: SafetyHeadGuard, sign: float) -> tuple[int, int, int]:
    """(layer, head, d) of a guard coordinate whose weight has ``sign``: -inf there (for sign > 0) or +inf
    (sign < 0) would push the logit to -inf, a score of 0.0, if nothing caught it."""
    flat = int(((guard.weight * sign) > 0).nonzero()[0])
    head = guard.heads[flat // guard.d_head]
    return head.layer, head.head, flat % guard.d_head


def _poison_coordinate(head: int, d: int, value: float, row: int):  # type: ignore[no-untyped-def]
    def hook(z: torch.Tensor, hook: object) -> torch.Tensor:
        z = z.clone()
        z[row, -1, head, d] = value
        return z

    return hook


@pytest.mark.parametrize(
    "sign", [1.0, -1.0], ids=["minus-inf-on-a-positive-weight", "plus-inf-on-a-negative-weight"]
)
def test_an_infinity_that_would_score_zero_is_flagged(llava: Guarded, sign: float) -> None:
    """One coordinate at -inf where its weight is positive (or +inf where it is negative) makes the logit
    -inf: the score would be 0.0 and the row would pass. It is flagged and counted on every path."""
    model, (guard, _) = llava.model, llava.guards
    guard.threshold = 1 - 1e-6
    layer, head, d = _coordinate(guard, sign)
    batch = model.prepare(["How do I bake bread?", "Describe a sunny day.", "List three primes."])
    poison = [(hook_z_name(layer), _poison_coordinate(head, d, -sign * float("inf"), 1))]
    with model.hooks(poison):
        scores = guard.score_inputs(model, batch)
        out = guard.generate(model, batch, max_new_tokens=3)
    assert scores.tolist()[1] == 1.0 and out.flagged == [False, True, False] and out.nonfinite == 1
    strict = SafetyHeadGuard.from_dict({**guard.to_dict(), "nonfinite": "raise"})
    with pytest.raises(ValueError, match=r"not finite for row\(s\) \[1\]"), model.hooks(poison):
        strict.score_inputs(model, batch)
    assert count_hooks(model) == llava.hooks


def test_attach_hf_flags_an_infinity_that_would_score_zero(llava: Guarded) -> None:
    from model_adapters.structure import find_language_model

    model, (guard, _) = llava.model, llava.guards
    guard.threshold = 1 - 1e-6
    layer, head, d = _coordinate(guard, 1.0)
    hf_model = model.hf_model
    batch = model.prepare(["How do I bake bread?", "Describe a sunny day."])
    width = guard.d_head

    def poison(_module, args):  # type: ignore[no-untyped-def]
        x = args[0].clone()
        x[1, -1, head * width + d] = float("-inf")
        return (x, *args[1:])

    o_proj = find_language_model(hf_model).attention[layer].o_proj
    handle = o_proj.register_forward_pre_hook(poison, prepend=True)
    try:
        with guard.attach_hf(hf_model) as session:
            hf_model.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=2,
                do_sample=False, logits_processor=[session.logits_processor],
            )  # fmt: skip
    finally:
        handle.remove()
    assert session.flagged == [False, True]


def test_a_logit_that_overflows_is_flagged(llava: Guarded) -> None:
    """Finite features whose dot product with finite, bounded weights overflows float32 decide nothing:
    flagged. A guard with weights of +-10 (far within the bound) reads a head whose outputs are set to
    -3e38 times each weight's sign: every feature is finite, the logit is -inf, which would score 0.0."""
    model, (fitted, _) = llava.model, llava.guards
    guard = SafetyHeadGuard.from_dict({**fitted.to_dict(), "threshold": 1 - 1e-6})
    guard.weight = torch.sign(fitted.weight) * 10.0
    first = guard.heads[0]
    signs = torch.sign(guard.weight[: guard.d_head])

    def hook(z: torch.Tensor, hook: object) -> torch.Tensor:
        z = z.clone()
        z[0, -1, first.head] = -3e38 * signs.to(z.dtype)
        return z

    batch = model.prepare(["How do I bake bread?", "Describe a sunny day."])
    with model.hooks([(hook_z_name(first.layer), hook)]):
        out = guard.generate(model, batch, max_new_tokens=2)
    assert out.flagged == [True, False] and out.nonfinite == 1


def test_weights_beyond_the_bound_are_refused_at_construction_and_at_load(llava: Guarded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from sahs_lens.schema import sha256_file

    _, (guard, _) = llava.model, llava.guards
    with pytest.raises(ValueError, match=r"beyond the bound 1e\+06"):
        SafetyHeadGuard(guard.heads, torch.full_like(guard.weight, 1e38), 0.0, d_head=guard.d_head)
    guard.save(tmp_path / "g")
    tensors = load_file(tmp_path / "g" / "guard.safetensors")
    name = next(k for k in tensors if tensors[k].numel() == guard.weight.numel())
    tensors[name] = tensors[name].clone()
    tensors[name][0] = 3e38
    with safe_open(str(tmp_path / "g" / "guard.safetensors"), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(tensors, tmp_path / "g" / "guard.safetensors", metadata=metadata)
    digest = sha256_file(
        tmp_path / "g" / "guard.safetensors"
    )  # a consistent pair of files: only the bound refuses
    meta = json.loads((tmp_path / "g" / "guard.json").read_text())
    (tmp_path / "g" / "guard.json").write_text(json.dumps({**meta, "files": {"guard.safetensors": digest}}))
    with pytest.raises(ValueError, match="beyond the bound"):
        SafetyHeadGuard.load(tmp_path / "g")


def test_the_offline_score_fails_closed(llava: Guarded) -> None:
    """``guard.score(acts)``: a sample with a NaN activation scores 1.0 (flagged at any threshold), or raises
    with ``nonfinite="raise"``; the other samples keep their scores."""
    from sahs_lens.data import Sample

    model, (guard, _) = llava.model, llava.guards
    samples = [Sample(p, None, i % 2, "t", f"t{i}") for i, p in enumerate(["a b c", "d e f", "g h i"])]
    acts = __import__("sahs_lens").collect_head_activations(model, samples, batch_size=3, progress=False)
    clean = guard.score(acts)
    layer, head, d = _coordinate(guard, 1.0)
    acts.z[2, layer, head, d] = float("nan")
    scores = guard.score(acts)
    assert scores[2].item() == 1.0 and torch.equal(scores[:2], clean[:2])
    strict = SafetyHeadGuard.from_dict({**guard.to_dict(), "nonfinite": "raise"})
    with pytest.raises(ValueError, match=r"cannot score sample\(s\) \[2\]"):
        strict.score(acts)


def test_attach_hf_refuses_right_padding_and_prompts_past_the_context(llava: Guarded) -> None:
    """Right padding puts a pad token in some rows' last column: the guard would score it (0.0817 vs
    0.0073 left-padded on the organism, silently). Refused before anything is scored, hooks removed."""
    model, (guard, _) = llava.model, llava.guards
    hf_model, tokenizer = model.hf_model, model.tokenizer
    before = count_hooks(model)
    tokenizer.padding_side = "right"
    try:
        enc = tokenizer(["hi", "How do I bake bread today?"], return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = "left"
    with (
        pytest.raises(ValueError, match=r"row\(s\) \[0\] end in padding.*left-padded"),
        guard.attach_hf(hf_model) as s,
    ):
        hf_model.generate(**enc, max_new_tokens=2, logits_processor=[s.logits_processor])
    context = hf_model.config.get_text_config().max_position_embeddings
    long = torch.ones(1, context + 1, dtype=torch.long)
    with (
        pytest.raises(ValueError, match=f"{context + 1} tokens long.*context is {context}"),
        guard.attach_hf(hf_model),
    ):
        hf_model(input_ids=long, attention_mask=torch.ones_like(long))
    assert count_hooks(model) == before
