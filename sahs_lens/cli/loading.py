"""What a command reads: the model, data specs (drawn for the organism), head sets.

On the bundled organism, typographic data is drawn the way the organism reads it: it was trained on its own
128 px word-per-patch drawings (``sahs_lens.organism.render_grid``), and a FigStep picture of 760 px shrunk
to its 128 px input is unreadable to it (a guard then scores noise: AUROC 0.44 instead of 0.97). So on the
organism the bundled ``figstep_*`` sets come from ``organism_samples`` and ``figstep:DIR`` draws each
SafeBench instruction with ``render_grid``; MM-SafetyBench's image variants, which it cannot read and which
cannot be redrawn, are refused with a message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["is_organism", "load_heads", "load_model", "load_samples", "organism_data"]

_FIGSTEP_LAYOUT = """  {root}/question/safebench.csv   (category_id,task_id,category_name,question,instruction)
(root = FigStep's data/ folder or the repository checkout that contains it; on the organism each instruction
is drawn with render_grid, so the images/ folder is not read)"""


def is_organism(model: str) -> bool:
    """``--model organism``, or the path of the shipped organism checkpoint."""
    if model == "organism":
        return True
    path = Path(model).expanduser()
    if not path.is_dir():
        return False
    from sahs_lens.organism import ORGANISM_DIR

    return path.resolve() == ORGANISM_DIR.resolve()


def load_model(args: argparse.Namespace) -> Any:
    """The model of ``--model`` (``organism`` or a path / hub id), on ``--device`` or, for commands that take
    them, spread over devices by ``--device-map`` / ``--max-memory`` / ``--offload-folder`` (accelerate)."""
    import torch

    from model_adapters import load_vlm

    placement: dict[str, Any] = {}
    device_map = getattr(args, "device_map", None)
    max_memory, offload_folder = getattr(args, "max_memory", None), getattr(args, "offload_folder", None)
    if device_map is None and (max_memory is not None or offload_folder is not None):
        raise ValueError(
            "--max-memory and --offload-folder need --device-map (e.g. --device-map auto --max-memory 0=20GiB)"
        )
    if device_map is not None:
        from model_adapters.device_maps import parse_device_map, parse_max_memory

        placement = {
            "device_map": parse_device_map(device_map),
            "offload_folder": offload_folder,
            "max_memory": None if max_memory is None else parse_max_memory(max_memory),
        }
    dtype = getattr(torch, args.dtype)
    options = {"device": args.device, "dtype": dtype, "template": args.template, "backend": args.backend}
    if args.model == "organism":
        from sahs_lens.organism import load_organism

        return load_organism(**options, **placement)
    return load_vlm(args.model, **options, **placement)


def _split_limit(spec: str) -> tuple[str, int | None]:
    if "@" not in spec:
        return spec, None
    base, _, count = spec.rpartition("@")
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"the @N suffix of a data spec must be a positive count; got {count!r} in {spec!r}")
    return base, int(count)


def _drawn_figstep(root: str) -> list[Any]:
    """FigStep's SafeBench attacks with each instruction drawn for the organism (``render_grid``)."""
    from sahs_lens.data import Sample
    from sahs_lens.data.layout import find_in_layout, read_csv_rows
    from sahs_lens.data.vl_readers import FIGSTEP_PROMPT
    from sahs_lens.organism import render_grid

    path = Path(root).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"figstep data spec points to {path}, which does not exist")
    question_dir = find_in_layout(path, ["question", "data/question"], _FIGSTEP_LAYOUT)
    columns = ["category_id", "task_id", "category_name", "instruction"]
    rows = read_csv_rows(question_dir / "safebench.csv", columns)
    return [
        Sample(
            FIGSTEP_PROMPT,
            render_grid(row["instruction"]),
            1,
            "figstep",
            f"figstep:{row['category_id']}_{row['task_id']}",
            row["category_name"],
        )
        for row in rows
    ]


def organism_data(spec: str) -> list[Any]:
    """The samples of ``spec`` as the organism should see them (see the module docstring)."""
    from sahs_lens.data import BUNDLED_SETS
    from sahs_lens.data.spec import load_data

    base, limit = _split_limit(spec)
    kind, _, rest = base.partition(":")
    if base in BUNDLED_SETS:
        from sahs_lens.organism import organism_samples

        samples = organism_samples(base)
    elif kind == "figstep" and rest and ":" not in rest:
        print(
            f"sahs-lens: {spec}: on the organism each SafeBench request is drawn the way it reads "
            "(render_grid, 128 px), not read from FigStep's 760 px images",
            file=sys.stderr,
        )
        samples = _drawn_figstep(rest)
    elif kind == "mmsafetybench" and rest and rest.rpartition(":")[2] != "text":
        raise ValueError(
            f"{spec}: the organism cannot read MM-SafetyBench's images (it reads only its own drawings, "
            f"sahs_lens.organism.render_grid); use mmsafetybench:{rest.split(':')[0]}:text for the questions "
            "as text, figstep:DIR or figstep_attack:heldout for typographic attacks it can read, or a real "
            "VLM (--model llava-hf/llava-1.5-7b-hf)"
        )
    else:
        return load_data(spec)
    return samples[:limit] if limit else samples


def load_samples(specs: Sequence[str], *, organism: bool) -> list[Any]:
    """Every sample of ``specs`` in order; on the organism, drawn as it reads them (``organism_data``)."""
    from sahs_lens.data.spec import load_data

    samples: list[Any] = []
    first_spec: dict[str, str] = {}
    for spec in specs:
        loaded = organism_data(spec) if organism else load_data(spec)
        for sample in loaded:
            earlier = first_spec.setdefault(sample.id, spec)
            if earlier != spec:
                raise ValueError(
                    f"--data {earlier} and --data {spec} both give a sample with id {sample.id!r}: ids are made "
                    "of the file's name (or the set's) and the row, so two files of the same name collide. "
                    "Rename one of the files, or give each set once"
                )
        samples.extend(loaded)
    return samples


_HEADS_FORMS = (
    "give the heads.json that `sahs-lens probe` writes (e.g. runs/probe/heads.json), a directory holding "
    "one, or heads like L3H1,L2H0"
)


def load_heads(text: str, flag: str = "--heads") -> Any:
    """A ``HeadSet`` from a heads.json file, a directory holding one, or a list like ``L3H1,L2H0``."""
    from sahs_lens.heads import HeadSet

    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "heads.json").is_file():
            raise FileNotFoundError(f"{flag} {path} is a directory without heads.json; {_HEADS_FORMS}")
        return HeadSet.load(path)
    if path.is_file():
        if path.suffix != ".json":
            raise ValueError(
                f"{flag} {path} is a {path.suffix or 'plain'} file, not a head set; {_HEADS_FORMS}"
            )
        try:
            return HeadSet.load(path)
        except ValueError as error:
            raise ValueError(f"{flag} {path} is not a head set ({error}); {_HEADS_FORMS}") from None
    if path.suffix == ".json" or "/" in text:
        raise FileNotFoundError(f"{flag} {text} does not exist; {_HEADS_FORMS}")
    try:
        return HeadSet.parse(text)
    except ValueError as error:
        raise ValueError(
            f"{flag} {text!r} is neither a file nor a list of heads ({error}); {_HEADS_FORMS}"
        ) from None
