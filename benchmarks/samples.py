"""The prompts every benchmark runs: real requests, each with a typographic image, as in the paper's setting.

Costs depend on prompt length, and a vision-language prompt's length is mostly its image tokens, so the
benchmarks do not time made-up strings: ``bench_samples`` alternates bundled malicious and benign requests
and gives each a FigStep-style typographic image at the model's image size, so that every row holds the
model's full count of image tokens. ``BenchModel.prepare`` (``models.py``) turns them into a batch.
"""

from __future__ import annotations

import functools
from typing import Any

from sahs_lens.data import Sample, load_bundled


def bench_samples(n: int, image_size: int) -> list[Sample]:
    """``n`` real prompts, each with a typographic image, alternating malicious and benign.

    Malicious rows: ``harmful_text:heldout`` requests with a ``figstep_attack:heldout`` image; benign rows:
    ``benign_text:heldout`` instructions with a ``figstep_benign:heldout`` image. Every row carries an image,
    as in the paper's setting, so every prompt holds the model's full count of image tokens.
    """
    harmful, benign, attack_images, benign_images = _bundled(image_size)
    samples = []
    for i in range(n):
        j = i // 2
        if i % 2 == 0:
            src, image = harmful[j % len(harmful)], attack_images[j % len(attack_images)]
        else:
            src, image = benign[j % len(benign)], benign_images[j % len(benign_images)]
        samples.append(Sample(src.prompt, image, src.label, "bench", f"bench:{i}"))
    return samples


@functools.lru_cache(maxsize=4)
def _bundled(image_size: int) -> tuple[list[Sample], list[Sample], list[Any], list[Any]]:
    return (
        load_bundled("harmful_text:heldout"),
        load_bundled("benign_text:heldout"),
        [s.image for s in load_bundled("figstep_attack:heldout", image_size=image_size)],
        [s.image for s in load_bundled("figstep_benign:heldout", image_size=image_size)],
    )
