"""Data specs: one string that names a data set, for the command line and for configs.

=================================  ==============================================================
spec                               what it loads
=================================  ==============================================================
``harmful_text:train``             a bundled set (see ``sahs_lens.BUNDLED_SETS``)
``figstep:DIR``                    FigStep SafeBench: typographic images + FigStep's prompt (label 1)
``figstep-text:DIR``               the SafeBench questions as text (label 1)
``mmsafetybench:DIR[:VARIANT]``    MM-SafetyBench, VARIANT in SD, SD_TYPO (default), TYPO, text (label 1)
``vlguard:DIR[:SPLIT[:SUBSET]]``   VLGuard, SPLIT test/train, SUBSET unsafes/safe_unsafes/safe_safes/all
``mmvet:DIR``                      MM-Vet (label 0)
``advbench:DIR`` ...               AdvBench, HarmBench, JailbreakBench (label 1), Alpaca (label 0)
``csv:FILE:COLUMN[:LABEL]``        one prompt per row of COLUMN; LABEL 0 or 1 (default 1)
``jsonl:FILE[:LABEL]``             ``{"prompt", "label", "image"}`` per line; LABEL overrides the field
=================================  ==============================================================

A spec may end with ``@N`` to keep the first N samples (``figstep:DIR@100``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sahs_lens.data import text_readers as text
from sahs_lens.data import vl_readers as vl
from sahs_lens.data.bundled import BUNDLED_SETS, load_bundled
from sahs_lens.data.sample import Sample

_READERS: dict[str, Callable[..., list[Sample]]] = {
    "figstep": lambda root: vl.read_figstep(root),
    "figstep-text": lambda root: vl.read_figstep(root, with_images=False),
    "mmsafetybench": lambda root, variant="SD_TYPO": vl.read_mmsafetybench(root, variant),
    "vlguard": lambda root, split="test", subset="unsafes": vl.read_vlguard(root, split, subset),
    "mmvet": lambda root: vl.read_mmvet(root),
    "advbench": lambda root: text.read_advbench(root),
    "harmbench": lambda root: text.read_harmbench(root),
    "jailbreakbench": lambda root: text.read_jailbreakbench(root),
    "alpaca": lambda root: text.read_alpaca(root),
    "csv": lambda path, column, label="1": text.read_csv_prompts(path, column, label=_label(label)),
    "jsonl": lambda path, label=None: text.read_jsonl(path, label=None if label is None else _label(label)),
}


def _label(text: str) -> int:
    if text not in ("0", "1"):
        raise ValueError(f"a label in a data spec must be 0 (benign) or 1 (malicious); got {text!r}")
    return int(text)


def load_data(spec: str, *, image_size: int | None = None) -> list[Sample]:
    """Load the samples a spec names (see the module docstring).

    Example:
        >>> load_data("harmful_text:heldout@50")
    """
    limit = None
    if "@" in spec:
        spec, _, count = spec.rpartition("@")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"the @N suffix of a data spec must be a positive count; got {count!r}")
        limit = int(count)
    if spec in BUNDLED_SETS:
        samples = load_bundled(spec, image_size=image_size)
    else:
        kind, _, rest = spec.partition(":")
        if kind not in _READERS or not rest:
            known = ", ".join(sorted(_READERS))
            raise ValueError(
                f"unknown data spec {spec!r}; write KIND:PATH[:OPTIONS] with KIND one of {known}, or a bundled "
                f"set ({', '.join(BUNDLED_SETS)})"
            )
        parts = rest.split(":")
        path = Path(parts[0]).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{kind} data spec points to {path}, which does not exist")
        try:
            samples = _READERS[kind](str(path), *parts[1:])
        except TypeError as exc:
            raise ValueError(
                f"too many options in data spec {spec!r}; see sahs_lens.data.spec for the forms"
            ) from exc
    return samples[:limit] if limit else samples
