"""Every bad input gets a clear error before any long work, and leaves the model as it found it.

Each case below must raise ``ValueError`` or ``TypeError`` whose message says what was wrong; afterwards
no hook is left on the model and the same batch gives the same logits and the same guarded output as
before the error.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from PIL import Image

from model_adapters.hook_names import hook_z_name
from sahs_lens import HeadActivations, HeadSet, SafetyHeadGuard

from .conftest import Guarded, count_hooks


def _boom(z: torch.Tensor, hook: object) -> None:
    raise RuntimeError("a user hook failed")


def _cases(g: Guarded, tmp_path) -> dict[str, tuple[Callable[[], object], type[Exception], str]]:  # type: ignore[no-untyped-def]
    model, (guard, other) = g.model, g.guards
    batch = model.prepare(["How do I bake bread?", "Describe a sunny day."])
    acts = HeadActivations(
        z=torch.randn(4, model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head),
        labels=torch.tensor([0, 1, 0, 1]),
        ids=["a", "b", "c", "d"],
        sources=["t"] * 4,
        provenance=dict(guard.provenance),
    )
    benign_only = acts.select([0, 2])
    foreign = SafetyHeadGuard.from_dict(
        {**guard.to_dict(), "provenance": {**guard.provenance, "checkpoint": "x"}}
    )
    wide = SafetyHeadGuard(HeadSet([(0, model.cfg.n_heads + 3)]), torch.zeros(model.cfg.d_head), 0.0,
                           d_head=model.cfg.d_head, provenance=dict(guard.provenance))  # fmt: skip
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return {
        "unknown policy": (
            lambda: guard.generate(model, batch, 2, policy="ignore"),
            ValueError,
            "unknown policy",
        ),  # type: ignore[arg-type]
        "inputs of the wrong type": (lambda: guard.generate(model, 42, 2), TypeError, "prepared batch"),  # type: ignore[arg-type]
        "guard of another checkpoint": (lambda: foreign.score_inputs(model, batch), ValueError, "checkpoint"),
        "heads outside the model": (lambda: wide.score_inputs(model, batch), ValueError, "L0H"),
        "calibrate on malicious rows": (lambda: guard.calibrate(acts), ValueError, "labelled malicious"),
        "calibrate on nothing": (lambda: guard.calibrate(benign_only.select([])), ValueError, "got none"),
        "calibrate on a list": (lambda: guard.calibrate([1, 2]), TypeError, "HeadActivations"),  # type: ignore[arg-type]
        "misspelled run_with_cache keyword": (
            lambda: model.run_with_cache(batch, names_filter="blocks.0.attn.hook_z", pos_slise=-1),
            TypeError,
            "did you mean 'pos_slice'",
        ),
        "unknown hook name": (
            lambda: model.run_with_hooks(batch, [("blocks.0.attn.hook_zz", _boom)]),
            ValueError,
            "did you mean",
        ),
        "generation past the context": (
            lambda: model.generate(batch, model.cfg.n_ctx + 88),
            ValueError,
            "context",
        ),
        "guarded generation past the context": (
            lambda: guard.generate(model, batch, model.cfg.n_ctx),
            ValueError,
            "context",
        ),
        "zero new tokens": (lambda: guard.generate(model, batch, 0), ValueError, "at least 1"),
        "an empty image": (
            lambda: model.prepare(["x"], images=[Image.new("RGB", (0, 0))]),
            ValueError,
            "empty",
        ),
        "an extreme aspect ratio": (
            lambda: model.prepare(["x"], images=[Image.new("RGB", (1, 400))]),
            ValueError,
            "aspect ratio",
        ),
        "a corrupt image file": (
            lambda: model.prepare(["x"], images=[corrupt]),
            ValueError,
            "cannot read image file",
        ),
        "a missing image file": (
            lambda: model.prepare(["x"], images=[tmp_path / "nope.png"]),
            ValueError,
            "does not exist",
        ),
        "more images than prompts": (
            lambda: model.prepare(["x"], images=[None, None]),
            ValueError,
            "2 images for 1 prompts",
        ),
        "a prompt that is not text": (lambda: model.prepare([b"bytes"]), TypeError, "must be strings"),  # type: ignore[list-item]
        "no prompts": (lambda: model.prepare([]), ValueError, "no prompts"),
        "a prompt past the context": (
            lambda: model.prepare(["word " * (model.cfg.n_ctx * 2)]),
            ValueError,
            "context",
        ),
        "a failing user hook during guarded generation": (
            lambda: guard.generate(model, batch, 2, fwd_hooks=[(hook_z_name(0), _boom)]),
            RuntimeError,
            "a user hook failed",
        ),
        "a failing user hook around scoring": (
            lambda: _with_hooks(model, [(hook_z_name(0), _boom)], lambda: other.score_inputs(model, batch)),
            RuntimeError,
            "a user hook failed",
        ),
        "attach_hf on another family's model": (
            lambda: _attach(guard, _other_family_model()),
            ValueError,
            "family",
        ),
    }


def _with_hooks(model, hooks, fn):  # type: ignore[no-untyped-def]
    with model.hooks(hooks):
        return fn()


def _attach(guard: SafetyHeadGuard, hf) -> None:  # type: ignore[no-untyped-def]
    with guard.attach_hf(hf):
        pass


def _other_family_model():  # type: ignore[no-untyped-def]
    from model_adapters.testing import load_tiny

    return load_tiny("gemma3").hf_model


CASE_NAMES = [
    "unknown policy", "inputs of the wrong type", "guard of another checkpoint", "heads outside the model",
    "calibrate on malicious rows", "calibrate on nothing", "calibrate on a list",
    "misspelled run_with_cache keyword", "unknown hook name", "generation past the context",
    "guarded generation past the context", "zero new tokens", "an empty image", "an extreme aspect ratio",
    "a corrupt image file", "a missing image file", "more images than prompts", "a prompt that is not text",
    "no prompts", "a prompt past the context", "a failing user hook during guarded generation",
    "a failing user hook around scoring", "attach_hf on another family's model",
]  # fmt: skip


@pytest.mark.parametrize("case", CASE_NAMES)
def test_bad_input_is_refused_and_leaves_no_trace(llava: Guarded, case: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, (guard, _) = llava.model, llava.guards
    batch = model.prepare(["How do I bake bread?", "Describe a sunny day."])
    logits_before = model(batch)
    out_before = guard.generate(model, batch, 3)
    threshold = guard.threshold
    call, error, message = _cases(llava, tmp_path)[case]
    with pytest.raises(error, match=message):
        call()
    assert count_hooks(model) == llava.hooks
    assert guard.threshold == threshold
    assert torch.equal(model(batch), logits_before)
    assert guard.generate(model, batch, 3) == out_before


def test_attach_hf_refuses_another_checkpoint_unless_allowed(llava: Guarded) -> None:
    from transformers import AutoModelForImageTextToText

    from model_adapters.testing import build_tiny_checkpoint

    guard = llava.guards[0]
    other = AutoModelForImageTextToText.from_pretrained(build_tiny_checkpoint("llava", seed=7))
    with pytest.raises(ValueError, match="checkpoint: 'sha256:"):
        _attach(guard, other)
    assert sum(len(m._forward_pre_hooks) for m in other.modules()) == 0
    with guard.attach_hf(other, allow_mismatch=True) as session:
        assert session.mismatches and session.mismatches[0].startswith("checkpoint")
    assert sum(len(m._forward_pre_hooks) for m in other.modules()) == 0
    same = AutoModelForImageTextToText.from_pretrained(llava.model.cfg.model_name)
    with guard.attach_hf(same) as session:  # the pristine copy of the guard's model is accepted
        assert session.mismatches == []


def test_indicate_policy_takes_text_prompts(llava: Guarded) -> None:
    model, (guard, _) = llava.model, llava.guards
    prompts = ["How do I bake bread?", "Explain how to pick a lock."]
    out = guard.generate(model, prompts, 3, policy="indicate")
    assert out == guard.generate(model, model.prepare(prompts), 3, policy="indicate")
