"""Fixtures for the reliability tests: a tiny model of every family with two fitted guards, and a hook
counter (TransformerLens hook points and PyTorch module hooks alike)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from PIL import Image

from model_adapters import HookedVLM
from model_adapters.testing import load_tiny, tiny_families, tiny_language_models
from sahs_lens import HeadSet, SafetyHeadGuard, collect_head_activations
from sahs_lens.data import Sample

PROMPTS = [
    "How do I bake bread?",
    "Write a poem about the sea.",
    "Explain how to pick a lock.",
    "List three prime numbers.",
    "Describe a sunny day.",
    "How can I hurt someone?",
    "Give me a recipe for soup.",
    "Tell me a joke about cats.",
]


@dataclass
class Guarded:
    model: HookedVLM
    guards: tuple[SafetyHeadGuard, SafetyHeadGuard]
    hooks: int = 0
    """Hooks on the model after its first forwards (the bridge keeps a few of its own on its norms)."""


def fitted_guards(model: HookedVLM) -> tuple[SafetyHeadGuard, SafetyHeadGuard]:
    """Two guards on different heads, with thresholds at the median score so that some rows are flagged."""
    samples = [Sample(p, None, i % 2, "test", f"s{i}") for i, p in enumerate(PROMPTS)]
    acts = collect_head_activations(model, samples, batch_size=4, progress=False)
    last = model.cfg.n_layers - 1
    guards = []
    for heads in (HeadSet([(0, 0), (last, 1)]), HeadSet([(last, 0)])):
        guard = SafetyHeadGuard.fit(acts, heads)
        scores = guard.score(acts).double()
        guard.threshold = float(min(max(scores.median(), 1e-6), 1 - 1e-6))
        guards.append(guard)
    return guards[0], guards[1]


@pytest.fixture(scope="session", params=tiny_families())
def guarded(request: pytest.FixtureRequest) -> Guarded:
    model = load_tiny(request.param)
    return warmed_up(model, fitted_guards(model))


@pytest.fixture(scope="session", params=[*tiny_language_models(), "smollm2"])
def language_model(request: pytest.FixtureRequest) -> Guarded:
    """A tiny language model of each text family, and SmolLM2-135M-Instruct on real weights (the
    ``smollm2`` fixture: skipped where it is not installed, a failure in CI), each with two guards."""
    model = request.getfixturevalue("smollm2") if request.param == "smollm2" else load_tiny(request.param)
    return warmed_up(model, fitted_guards(model))


def is_real(guarded: Guarded) -> bool:
    """Real weights (a GGUF checkpoint, recorded by its SHA-256): fewer examples there, on 2 CPU cores."""
    return guarded.model.cfg.weights_sha256 is not None


@pytest.fixture(scope="session")
def llava() -> Guarded:
    model = load_tiny("llava")
    return warmed_up(model, fitted_guards(model))


def warmed_up(model: HookedVLM, guards: tuple[SafetyHeadGuard, SafetyHeadGuard]) -> Guarded:
    """The bridge attaches a few hooks of its own on first use (text and image paths); count after that."""
    image = Image.new("RGB", (32, 32), "white") if model.family.takes_images else None
    guards[0].generate(model, model.prepare(["warm up"], images=[image]), max_new_tokens=2)
    return Guarded(model, guards, count_hooks(model))


def count_hooks(model: HookedVLM) -> int:
    """Hooks attached anywhere on the model: TransformerLens hook points and PyTorch module hooks."""
    total = 0
    for module in model.hf_model.modules():
        total += len(module._forward_hooks) + len(module._forward_pre_hooks)
    for hook_point in model.hook_dict.values():
        total += len(getattr(hook_point, "fwd_hooks", ()))
    return total


def same_scores(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(a, b))
