"""What a moderation request may hold, read as untrusted input: every problem is a ``BadRequest`` with its
HTTP status (400 malformed, 413 too large), checked before anything is queued for the model.

The ``input`` of ``POST /v1/moderations`` and ``POST /classify`` takes OpenAI's moderation forms:

- ``"text"``: one input;
- ``["text", "text", ...]``: one input per string;
- ``[{"type": "text", "text": ...}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}]``:
  one multimodal input (its text parts joined by a newline, at most one image, as a data URL: the server
  fetches nothing).

Each input becomes an ``Item`` (prompt, image or None). ``Limits`` bounds the body, the number of inputs,
the characters of a text and the bytes and pixels of an image.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

__all__ = ["BadRequest", "Item", "Limits", "parse_body"]

_DATA_URL = re.compile(r"^data:image/[a-zA-Z0-9.+-]+;base64,(?P<data>.*)$", re.DOTALL)


class BadRequest(ValueError):
    """A request the server refuses: ``status`` (400 or 413) and a message that says what to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Bounds on one request (defaults fit a chat message with one picture)."""

    max_body_bytes: int = 16 << 20
    max_items: int = 32
    max_text_chars: int = 32_000
    max_image_bytes: int = 10 << 20
    max_image_pixels: int = 40_000_000


@dataclass(frozen=True)
class Item:
    """One input to judge: its text, and its image (decoded) or None."""

    prompt: str
    image: Image.Image | None

    @property
    def kinds(self) -> list[str]:
        """OpenAI's ``category_applied_input_types`` for this input."""
        return ["text", "image"] if self.image is not None else ["text"]


def parse_body(body: bytes, limits: Limits, *, images: bool) -> list[Item]:
    """The inputs of a request body, or ``BadRequest``. ``images=False``: the model reads no images."""
    if len(body) > limits.max_body_bytes:
        raise BadRequest(
            413, f"the request body is {len(body)} bytes; at most {limits.max_body_bytes} are read"
        )
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest(
            400, 'the body is not JSON; send {"input": "text"} or {"input": ["text", ...]}'
        ) from None
    if not isinstance(data, dict) or "input" not in data:
        raise BadRequest(400, 'the body must be a JSON object with "input" (a string, or a list of them)')
    raw = data["input"]
    if isinstance(raw, list) and raw and all(isinstance(part, dict) for part in raw):
        items = [_multimodal(raw, limits, images=images)]
    elif isinstance(raw, str):
        items = [_text(raw, limits, "input")]
    elif isinstance(raw, list) and all(isinstance(text, str) for text in raw):
        items = [_text(text, limits, f"input[{i}]") for i, text in enumerate(raw)]
    else:
        raise BadRequest(
            400,
            f'"input" must be a string, a list of strings, or a list of content parts ({{"type": "text", ...}}, '
            f'{{"type": "image_url", ...}}); got {type(raw).__name__}',
        )
    if not items:
        raise BadRequest(400, '"input" is empty; give at least one text')
    if len(items) > limits.max_items:
        raise BadRequest(413, f'"input" holds {len(items)} texts; at most {limits.max_items} per request')
    return items


def _text(text: str, limits: Limits, where: str) -> Item:
    if not text.strip():
        raise BadRequest(400, f"{where} is empty; give the text to judge")
    if len(text) > limits.max_text_chars:
        raise BadRequest(413, f"{where} has {len(text)} characters; at most {limits.max_text_chars}")
    return Item(text, None)


def _multimodal(parts: list[dict[str, Any]], limits: Limits, *, images: bool) -> Item:
    texts: list[str] = []
    pictures: list[Image.Image] = []
    for i, part in enumerate(parts):
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            if not images:
                raise BadRequest(
                    400, f"input[{i}] is an image, but this model is a language model: it reads text only"
                )
            pictures.append(_image(part.get("image_url"), limits, f"input[{i}]"))
        else:
            raise BadRequest(
                400, f'input[{i}] must be {{"type": "text", "text": ...}} or {{"type": "image_url", "image_url": '
                f'{{"url": "data:image/...;base64,..."}}}}; got type {kind!r}'
            )  # fmt: skip
    if len(pictures) > 1:
        raise BadRequest(400, f"an input holds {len(pictures)} images; the guard judges one image per input")
    item = _text("\n".join(texts), limits, "the input's text") if texts else None
    if item is None:
        raise BadRequest(400, "the input has no text part; give the request's text with its image")
    return Item(item.prompt, pictures[0] if pictures else None)


def _image(value: Any, limits: Limits, where: str) -> Image.Image:
    url = value.get("url") if isinstance(value, dict) else value
    match = _DATA_URL.match(url) if isinstance(url, str) else None
    if match is None:
        raise BadRequest(
            400, f"{where}: an image is a data URL (data:image/png;base64,...); the server fetches no URL"
        )
    if len(match["data"]) * 3 // 4 > limits.max_image_bytes:
        raise BadRequest(413, f"{where}: the image is larger than {limits.max_image_bytes} bytes")
    try:
        raw = base64.b64decode(match["data"], validate=True)
        with Image.open(io.BytesIO(raw)) as opened:
            if opened.width * opened.height > limits.max_image_pixels:
                raise BadRequest(413, f"{where}: the image has {opened.width}x{opened.height} pixels; at most "
                                      f"{limits.max_image_pixels} in all")  # fmt: skip
            return opened.convert("RGB")
    except BadRequest:
        raise
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError) as error:
        raise BadRequest(
            400, f"{where}: the image cannot be decoded ({type(error).__name__}); send a PNG or JPEG"
        ) from None
