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
