"""Shared fixtures: offline mode, tiny checkpoints of every family, test images."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


def noise_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(height, width, 3) * 255).astype("uint8"))


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    return [noise_image(40, 40, 0), noise_image(64, 48, 1), noise_image(30, 50, 2)]


REAL_MODEL = "smollm2-135m-instruct"


def _real_model_or_skip() -> None:
    """Skip when the real model's package is not installed, except in CI, where that is a failure:
    CI installs it (the README's line), so a missing package there means the install step broke."""
    from model_adapters.real_models import locate_real_model

    try:
        locate_real_model(REAL_MODEL)
    except ModuleNotFoundError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test on real weights: {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def smollm2():  # type: ignore[no-untyped-def]
    """SmolLM2-135M-Instruct (real weights, float32), loaded once per run through the GGUF cache."""
    _real_model_or_skip()
    from model_adapters import load_vlm

    return load_vlm(REAL_MODEL)


@pytest.fixture(scope="session")
def smollm2_reference():  # type: ignore[no-untyped-def]
    """A separately loaded plain Hugging Face model: transformers' own GGUF loader on the installed file,
    no sahs_lens code and no cache in between."""
    _real_model_or_skip()
    import torch
    from transformers import AutoModelForCausalLM

    from model_adapters.real_models import locate_real_model

    _, path = locate_real_model(REAL_MODEL)
    return AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()


def zero_head_hook(head: int):  # type: ignore[no-untyped-def]
    """A ``hook_z`` hook that zeroes one head at every position (the adapter side of an ablation test)."""

    def hook(z, hook):  # type: ignore[no-untyped-def]
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    return hook


def zero_slice_pre_hook(head: int, d_head: int):  # type: ignore[no-untyped-def]
    """An ``o_proj`` forward pre-hook that zeroes the same head's slice on a plain Hugging Face model (the
    independent reference of an ablation test)."""

    def pre_hook(_module, args):  # type: ignore[no-untyped-def]
        x = args[0].clone()
        x[..., head * d_head : (head + 1) * d_head] = 0.0
        return (x, *args[1:])

    return pre_hook
