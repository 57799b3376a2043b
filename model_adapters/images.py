"""The one image opener: a path, a PIL image or None in, an RGB PIL image (or None) out.

Every image a model sees goes through ``open_image``: data readers keep image *paths* (so a benchmark of
thousands of images costs no memory until a batch needs them) and ``HookedVLM.prepare`` opens them here.
Opening decodes the whole file at once, so a truncated or corrupt file fails with a message that names it,
before any forward pass, and never later inside the model.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

MAX_ASPECT_RATIO = 200
"""The widest image accepted (Qwen2-VL's processor has the same limit)."""

ImageLike = str | Path | Image.Image | None
"""What may stand for an image: a file path, a PIL image, or None for a text-only prompt."""


def open_image(image: ImageLike) -> Image.Image | None:
    """Open ``image`` as an RGB PIL image: paths are read from disk, PIL images converted, ``None`` passes.

    Raises ``ValueError`` naming the file when it is missing, unreadable or not an image, when its mode
    cannot become RGB, when it is empty (0 pixels wide or tall) or more than 200 times wider than tall (or
    the reverse); ``TypeError`` for anything that is not a path, a PIL image or None.

    Example:
        >>> open_image(Image.new("L", (3, 2))).mode
        'RGB'
    """
    if image is None:
        return None
    if isinstance(image, Image.Image):
        return _checked(image if image.mode == "RGB" else _to_rgb(image, "the image"), "the image")
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
            return _checked(_to_rgb(opened, f"image file {path}"), f"image file {path}")
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        reason = f"{type(error).__name__}: {error}"
    except ValueError as error:
        if str(error).startswith(("image file", "the image")):
            raise
        reason = f"{type(error).__name__}: {error}"
    raise ValueError(f"cannot read image file {path}: {reason}; check the file is a valid PNG/JPEG")


def _to_rgb(image: Image.Image, what: str) -> Image.Image:
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ValueError(
            f"{what} has PIL mode {image.mode!r}, which cannot be converted to RGB ({error}); save it as an "
            "RGB or grayscale PNG/JPEG"
        ) from None


def _checked(image: Image.Image, what: str) -> Image.Image:
    """Refuse images no vision processor can use: an empty one, or one more than 200 times wider than
    tall (or taller than wide), which processors would resize to hundreds of megapixels."""
    width, height = image.size
    if width == 0 or height == 0:
        raise ValueError(f"{what} is {width}x{height} pixels (empty); pass an image of at least 1x1 pixels")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ValueError(
            f"{what} is {width}x{height} pixels, an aspect ratio above {MAX_ASPECT_RATIO}:1 that vision "
            "processors cannot resize sensibly; crop or pad it first"
        )
    return image
