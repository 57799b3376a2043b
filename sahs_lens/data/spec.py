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

A spec may end with ``@N`` to keep the first N samples (``figstep:DIR@100``). ``SPEC_FORMS`` spells each
kind's form, as messages and ``sahs-lens --help`` show it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from sahs_lens.data import text_readers as text
from sahs_lens.data import vl_readers as vl
from sahs_lens.data.bundled import BUNDLED_SETS, load_bundled
from sahs_lens.data.sample import Sample

__all__ = ["SPEC_FORMS", "load_data"]

SPEC_FORMS: dict[str, str] = {
    "figstep": "figstep:DIR",
    "figstep-text": "figstep-text:DIR",
    "mmsafetybench": "mmsafetybench:DIR[:VARIANT]",
    "vlguard": "vlguard:DIR[:SPLIT[:SUBSET]]",
    "mmvet": "mmvet:DIR",
    "advbench": "advbench:DIR",
    "harmbench": "harmbench:DIR",
    "jailbreakbench": "jailbreakbench:DIR",
    "alpaca": "alpaca:DIR",
    "csv": "csv:FILE:COLUMN[:LABEL]",
    "jsonl": "jsonl:FILE[:LABEL]",
}
"""Kind -> the form of its spec (``[...]``: optional fields), for messages and the command line's help."""

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
            parts_of = sorted(name.partition(":")[2] for name in BUNDLED_SETS if name.startswith(f"{kind}:"))
            hint = (
                f"the bundled set {kind} has the parts {' and '.join(parts_of)}, e.g. {kind}:{parts_of[-1]}; "
                if parts_of
                else ""
            )
            raise ValueError(
                f"unknown data spec {spec!r}; {hint}write a bundled set ({', '.join(BUNDLED_SETS)}) or one of "
                f"{', '.join(SPEC_FORMS.values())} (sahs-lens --help explains each)"
            )
        parts = rest.split(":")
        path = Path(parts[0]).expanduser()
        _check_fields(spec, kind, len(parts) - 1)
        if not path.exists():
            raise FileNotFoundError(f"{kind} data spec points to {path}, which does not exist")
        samples = _READERS[kind](str(path), *parts[1:])
    return samples[:limit] if limit else samples


def _check_fields(spec: str, kind: str, n_options: int) -> None:
    """A clear error when ``spec`` gives ``kind`` fewer or more options (fields after the path) than it takes."""
    params = list(inspect.signature(_READERS[kind]).parameters.values())[1:]
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    if required <= n_options <= len(params):
        return
    names = [p.name.upper() for p in params]
    what = "too few" if n_options < required else "too many"
    takes = (
        "no options after the path"
        if not params
        else f"{required} to {len(params)} option(s) after the path ({', '.join(names)})"
        if required != len(params)
        else f"{required} option(s) after the path ({', '.join(names)})"
    )
    raise ValueError(
        f"{what} options in data spec {spec!r}: {kind} takes {takes}, and {n_options} "
        f"{'was' if n_options == 1 else 'were'} given; write {SPEC_FORMS[kind]}"
    )
