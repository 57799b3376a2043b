"""What a sample is, by content: the hashes a collection records so that a resumed run can trust its rows.

An activations directory written by ``collect_head_activations(out=...)`` records per sample a SHA-256 of
its prompt and of its image, and its label (``sample_content``). A run started again on that directory, in
one process or several, compares these with the samples it was given, so that a changed prompt or a
replaced image file (same name, other pixels) is refused instead of silently reusing stale activations.
The image hash is of what the model sees: the file's bytes for a path; for a PIL image its mode, size and
RGB pixels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from model_adapters.images import open_image
from sahs_lens.schema import sha256_file

__all__ = ["SampleLike", "sample_content"]


class SampleLike(Protocol):
    """What collection reads of a sample (``sahs_lens.data.Sample`` and any look-alike)."""

    @property
    def prompt(self) -> str: ...
    @property
    def image(self) -> Any: ...
    @property
    def label(self) -> int: ...
    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...


def sample_content(samples: Sequence[SampleLike]) -> dict[str, list[Any]]:
    """Per sample, the SHA-256 of its prompt and of its image (None without one), and its label.

    A path's image hash is the hash of the file's bytes; a PIL image's covers its mode, size and RGB
    pixels (what the model sees). Recorded in the manifest so that resuming compares content, not ids.
    """
    prompts, images = [], []
    for sample in samples:
        prompts.append(hashlib.sha256(sample.prompt.encode("utf-8", "surrogatepass")).hexdigest())
        images.append(_image_digest(sample))
    return {"prompt_sha256": prompts, "image_sha256": images, "labels": [int(s.label) for s in samples]}


def _image_digest(sample: SampleLike) -> str | None:
    image = sample.image
    if image is None:
        return None
    if isinstance(image, Image.Image):
        rgb = open_image(image)
        digest = hashlib.sha256(f"pil:{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
        digest.update(rgb.tobytes() if rgb is not None else b"")
        return digest.hexdigest()
    if isinstance(image, str | Path):
        try:
            return sha256_file(image)
        except OSError as error:
            raise ValueError(
                f"sample {sample.id!r}: cannot read image file {image} ({type(error).__name__}: {error}); "
                "check the path"
            ) from None
    raise TypeError(
        f"sample {sample.id!r}: image must be a path, a PIL image or None; got {type(image).__name__}"
    )
