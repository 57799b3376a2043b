"""The one image opener: a path, a PIL image or None in, an RGB PIL image (or None) out.

Every image a model sees goes through ``open_image``: data readers keep image *paths* (so a benchmark of
thousands of images costs no memory until a batch needs them) and ``HookedVLM.prepare`` opens them here.
Opening decodes the whole file at once, so a truncated or corrupt file fails with a message that names it,
before any forward pass, and never later inside the model.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

ImageLike = str | Path | Image.Image | None
"""What may stand for an image: a file path, a PIL image, or None for a text-only prompt."""


def open_image(image: ImageLike) -> Image.Image | None:
    """Open ``image`` as an RGB PIL image: paths are read from disk, PIL images converted, ``None`` passes.

    Raises ``ValueError`` naming the file when it is missing, unreadable or not an image, and
    ``TypeError`` for anything that is not a path, a PIL image or None.

    Example:
        >>> open_image(Image.new("L", (3, 2))).mode
        'RGB'
    """
    if image is None:
        return None
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if not isinstance(image, str | Path):
        raise TypeError(f"images must be file paths, PIL images or None; got {type(image).__name__}")
    path = Path(image)
    if not path.exists():
        raise ValueError(
            f"cannot read image file {path}: no such file ({path} does not exist); check the path"
        )
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now, so a truncated file fails here and not inside the model
            return opened.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = f"{type(error).__name__}: {error}"
    raise ValueError(f"cannot read image file {path}: {reason}; check the file is a valid PNG/JPEG")
