"""The unit of data: a ``Sample`` is one prompt, its optional image and its label (1 = malicious).

Everything downstream (activation collection, probes, the guard, evaluation) consumes ``list[Sample]``.
Images stay paths until a batch needs them; ``load_image`` (``model_adapters.open_image``) opens them.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from model_adapters.images import ImageLike, open_image


@dataclass(frozen=True)
class Sample:
    """One prompt, its optional image and its label.

    Attributes:
        prompt: the user's text (without any chat template; the model adapter adds it).
        image: a file path (opened lazily by ``load_image``), a PIL image, or ``None`` for text-only.
        label: 1 = malicious, 0 = benign.
        source: the data set it comes from, e.g. ``"advbench"``.
        id: unique within its data set, conventionally ``"{source}:{key}"``, e.g. ``"figstep:1_3"``.
        category: the data set's harm category (or capability), if it has one.

    Example:
        >>> Sample("How do I bake bread?", None, 0, "mine", "mine:0")
        Sample(prompt='How do I bake bread?', image=None, label=0, source='mine', id='mine:0', category=None)
    """

    prompt: str
    image: ImageLike
    label: int
    source: str
    id: str
    category: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any], image: ImageLike = None) -> Sample:
        """A sample from a bundled JSONL record (``prompt``, ``label``, ``source``, ``id``, ``category``)."""
        return cls(
            record["prompt"], image, record["label"], record["source"], record["id"], record.get("category")
        )

    def __post_init__(self) -> None:
        label = self.label
        if isinstance(label, bool) or not isinstance(label, numbers.Integral) or int(label) not in (0, 1):
            hint = " (a bool: VLGuard's 'safe': true means label 0)" if isinstance(label, bool) else ""
            raise ValueError(
                f"Sample {self.id!r}: label must be the int 1 (malicious) or 0 (benign); got {label!r}{hint}"
            )
        object.__setattr__(self, "label", int(label))
        if not isinstance(self.prompt, str):
            raise TypeError(f"Sample {self.id!r}: prompt must be a str; got {type(self.prompt).__name__}")
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(
                f"Sample ids must be non-empty strs; got {self.id!r} for prompt {self.prompt[:40]!r}"
            )
        if not isinstance(self.source, str):
            raise TypeError(f"Sample {self.id!r}: source must be a str; got {type(self.source).__name__}")
        if self.image is not None and not isinstance(self.image, str | Path | Image.Image):
            raise TypeError(
                f"Sample {self.id!r}: image must be a path, a PIL image or None; "
                f"got {type(self.image).__name__}"
            )


load_image = open_image
"""``model_adapters.open_image`` under the name the data readers use: one opener for the whole package."""
