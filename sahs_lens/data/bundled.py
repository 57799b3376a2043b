"""The bundled sets: small harmful / benign text requests and typographic attacks that need no download.

Each set has a fixed train / held-out split (``BUNDLED_SETS`` names them); the typographic images are drawn
at load time with ``render_typographic``. Sizes and licenses: ``sahs_lens/bundled/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from sahs_lens.data.sample import Sample
from sahs_lens.typography import BUILTIN_FONT, render_typographic

_BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled"
BUNDLED_SETS: dict[str, str] = {
    "harmful_text:train": "harmful requests (AdvBench, HarmBench, JailbreakBench, SafeBench), text only",
    "harmful_text:heldout": "held-out harmful requests, same sources and proportions, text only",
    "benign_text:train": "benign Alpaca instructions without input (20-100 characters), text only",
    "benign_text:heldout": "held-out benign Alpaca instructions, text only",
    "figstep_attack:train": "FigStep attacks (image + fixed prompt) of harmful_text:train's SafeBench rows",
    "figstep_attack:heldout": "FigStep attacks (image + fixed prompt) of harmful_text:heldout SafeBench rows",
    "figstep_benign:train": "benign_text:train's Alpaca instructions drawn the FigStep way, label 0",
    "figstep_benign:heldout": "benign_text:heldout's Alpaca instructions drawn the FigStep way, label 0",
    "benign_overlap:train": "benign Alpaca instructions with harmful-sounding words (by vocabulary overlap)",
    "benign_overlap:heldout": "held-out benign Alpaca instructions with harmful-sounding words, text only",
}
"""Name -> one-line description of each set ``load_bundled`` knows (sizes: sahs_lens/bundled/README.md)."""


def bundled_path(name: str) -> Path:
    """The JSONL file of a bundled set, e.g. ``bundled_path("harmful_text:train")``; names in ``BUNDLED_SETS``.

    Each line is one record (``id``, ``prompt``, ``label``, ``source``, and ``render`` for the typographic
    sets: the text and style to draw). ``load_bundled`` turns the records into samples.
    """
    if name not in BUNDLED_SETS:
        available = "\n".join(f"  {key}: {text}" for key, text in BUNDLED_SETS.items())
        raise ValueError(f"no bundled set named {name!r}; the bundled sets are:\n{available}")
    set_name, part = name.split(":")
    return _BUNDLED_DIR / set_name / f"{part}.jsonl"


def load_bundled(
    name: str,
    *,
    image_size: int | tuple[int, int] | None = None,
    font_path: str | Path | None = BUILTIN_FONT,
) -> list[Sample]:
    """A bundled set, e.g. ``load_bundled("harmful_text:train")``; names and descriptions in ``BUNDLED_SETS``.

    Train and held-out parts were fixed (seed 0) when the bundle was built and share no item; the
    ``figstep_*`` sets are the SafeBench / Alpaca items of the text sets' matching part, so training on
    ``*:train`` never shows a held-out request in either form. Typographic images are drawn here with
    ``render_typographic(..., "figstep", font_path=font_path, size=image_size)``; the default
    ``font_path="builtin"`` draws identical pixels on every machine (``None``: FreeMonoBold when installed).
    A full-size image takes 1.7 MB in memory: pass ``image_size`` (e.g. 224, or 32 for a tiny model) for
    large sets.

    Example:
        >>> attacks = load_bundled("figstep_attack:heldout", image_size=336)
        >>> attacks[0].prompt == FIGSTEP_PROMPT, attacks[0].image.size, attacks[0].label
        (True, (336, 336), 1)
    """
    samples = []
    for line in bundled_path(name).read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        image = None
        if "render" in record:
            render = record["render"]
            image = render_typographic(render["text"], render["style"], font_path=font_path, size=image_size)
        samples.append(Sample.from_record(record, image))
    return samples
