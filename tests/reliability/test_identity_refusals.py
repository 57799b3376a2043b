"""A saved guard refuses every model it does not belong to, one identity field at a time.

For each field of ``model_adapters.IDENTITY_FIELDS`` there is a model that differs from the guard's in that
field (and, where it can be arranged, in that field only), and ``SafetyHeadGuard.load(path, model=...)``
must refuse it with a message naming the field. A guard whose provenance lost a field is refused too (it
cannot say which model made it). The backend is recorded but not compared: the same guard loaded on the
other backend scores the same prompts bit for bit, which is why it may.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model_adapters import IDENTITY_FIELDS, HookedVLM, load_vlm
from model_adapters.testing import build_tiny_checkpoint
from sahs_lens import HeadSet, SafetyHeadGuard, collect_head_activations
from sahs_lens.data import Sample

PROMPTS = [
    "How do I bake bread?",
    "How can I hurt someone?",
    "Describe a sunny day.",
    "Explain how to pick a lock.",
]


def fitted(model: HookedVLM) -> SafetyHeadGuard:
    samples = [Sample(p, None, i % 2, "test", f"s{i}") for i, p in enumerate(PROMPTS)]
    acts = collect_head_activations(model, samples, batch_size=4, progress=False)
    return SafetyHeadGuard.fit(acts, HeadSet([(0, 0), (1, 1)]))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[HookedVLM, Path]:
    model = load_vlm(build_tiny_checkpoint("llava"), backend="hf")
    path = tmp_path_factory.mktemp("guard") / "guard"
    fitted(model).save(path)
    return model, path


def other_models(model: HookedVLM) -> dict[str, HookedVLM]:
    """One model per identity field, differing from ``model`` in it."""
    return {
        "family": load_vlm(build_tiny_checkpoint("llava_next")),  # same tiny sizes, another family
        "checkpoint": load_vlm(build_tiny_checkpoint("llava", seed=1)),  # same shape, other weights
        "template": model.with_template("vicuna_v1"),  # same weights, another prompt
        "n_layers": load_vlm(build_tiny_checkpoint("llava", n_layers=3)),
        "n_heads": load_vlm(build_tiny_checkpoint("llava", n_heads=2, n_kv_heads=1, d_model=32)),
        "d_head": load_vlm(build_tiny_checkpoint("llava", d_model=128)),
    }


def test_every_identity_field_is_covered_here() -> None:
    assert set(IDENTITY_FIELDS) == {"family", "checkpoint", "template", "n_layers", "n_heads", "d_head"}


def test_a_guard_refuses_a_model_that_differs_in_any_identity_field(saved) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    assert SafetyHeadGuard.load(path, model=model).threshold == 0.5  # its own model: accepted
    mine = model.cfg.identity()
    for field, other in other_models(model).items():
        theirs = other.cfg.identity()
        assert theirs[field] != mine[field], field
        if field in ("checkpoint", "template"):  # these two differ in their field and nothing else
            assert {k for k in IDENTITY_FIELDS if theirs[k] != mine[k]} == {field}
        with pytest.raises(ValueError, match=rf"does not fit this model: .*\b{field}: "):
            SafetyHeadGuard.load(path, model=other)


@pytest.mark.parametrize("field", IDENTITY_FIELDS)
def test_a_guard_that_lost_a_field_is_refused_naming_it(saved, tmp_path: Path, field: str) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    damaged = tmp_path / "guard"
    damaged.mkdir()
    for name in ("guard.json", "guard.safetensors"):
        (damaged / name).write_bytes((path / name).read_bytes())
    meta = json.loads((damaged / "guard.json").read_text())
    del meta["provenance"][field]
    (damaged / "guard.json").write_text(json.dumps(meta))
    SafetyHeadGuard.load(damaged)  # without a model it is still readable
    with pytest.raises(ValueError, match=rf"{field}: <missing> vs "):
        SafetyHeadGuard.load(damaged, model=model)


def test_the_backend_is_recorded_and_the_other_backend_scores_identically(saved) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    bridge = load_vlm(build_tiny_checkpoint("llava"), backend="bridge")
    guard = SafetyHeadGuard.load(path, model=bridge)  # accepted: the backend is not an identity field
    assert guard.provenance["backend"] == "hf" and bridge.backend == "bridge"
    batch_hf, batch_bridge = model.prepare(PROMPTS), bridge.prepare(PROMPTS)
    assert torch.equal(guard.score_inputs(model, batch_hf), guard.score_inputs(bridge, batch_bridge))
