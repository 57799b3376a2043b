"""Readers for text-only request sets (AdvBench, HarmBench, JailbreakBench, Alpaca) and your own files.

The text sets come as the CSV / JSON files their authors publish; ``read_csv_prompts`` and ``read_jsonl``
read files of your own, and ``write_jsonl`` writes samples back (images as paths).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from sahs_lens.data.layout import find_in_layout, read_csv_rows, read_json_file, record_field
from sahs_lens.data.sample import Sample

# ------------------------------------------------------------------------------------------------------------
# Text-only sets
# ------------------------------------------------------------------------------------------------------------


def read_advbench(root: str | Path) -> list[Sample]:
    """AdvBench harmful behaviors (Zou et al. 2023): 520 ``goal`` strings, label 1, ids ``"advbench:{row}"``.

    ``root`` holds ``harmful_behaviors.csv`` (or is the llm-attacks checkout with ``data/advbench/``).

    Example:
        >>> len(read_advbench("data/advbench"))  # doctest: +SKIP
        520
    """
    layout = "  {root}/harmful_behaviors.csv   (goal,target)"
    path = find_in_layout(root, ["harmful_behaviors.csv", "data/advbench/harmful_behaviors.csv"], layout)
    return [
        Sample(row["goal"], None, 1, "advbench", f"advbench:{i}")
        for i, row in enumerate(read_csv_rows(path, ["goal"]))
    ]


_HARMBENCH_CATEGORIES = ("standard", "contextual", "copyright")


def read_harmbench(
    root: str | Path, split: str = "val", *, functional_categories: Iterable[str] | None = None
) -> list[Sample]:
    """HarmBench text behaviors (Mazeika et al. 2024), label 1, category = SemanticCategory.

    ``functional_categories`` keeps some of ``"standard"``, ``"contextual"``, ``"copyright"`` (default: all).
    A contextual behavior carries its context the way HarmBench prompts it:
    ``"{context}\\n\\n---\\n\\n{behavior}"``. Ids are ``"harmbench:{BehaviorID}"``. ``root`` holds
    ``harmbench_behaviors_text_{split}.csv`` (the upstream name) or ``harmbench_{split}.csv``.

    Example:
        >>> len(read_harmbench("data/harmbench", functional_categories=["standard"]))  # doctest: +SKIP
        41
    """
    keep = set(_HARMBENCH_CATEGORIES if functional_categories is None else functional_categories)
    if not keep <= set(_HARMBENCH_CATEGORIES):
        raise ValueError(
            f"unknown HarmBench functional categories {sorted(keep)}; choose from {_HARMBENCH_CATEGORIES}"
        )
    names = [f"harmbench_behaviors_text_{split}.csv", f"harmbench_{split}.csv"]
    layout = (
        f"  {{root}}/{names[0]} or {{root}}/{names[1]}   (Behavior,FunctionalCategory,SemanticCategory,...)"
    )
    path = find_in_layout(root, names + [f"data/behavior_datasets/{names[0]}"], layout)
    samples = []
    for row in read_csv_rows(
        path, ["Behavior", "FunctionalCategory", "SemanticCategory", "ContextString", "BehaviorID"]
    ):
        if row["FunctionalCategory"] not in keep:
            continue
        context = row["ContextString"].strip()
        prompt = f"{context}\n\n---\n\n{row['Behavior']}" if context else row["Behavior"]
        samples.append(
            Sample(prompt, None, 1, "harmbench", f"harmbench:{row['BehaviorID']}", row["SemanticCategory"])
        )
    return samples


def read_jailbreakbench(root: str | Path) -> list[Sample]:
    """JailbreakBench JBB-Behaviors (Chao et al. 2024), the 100 harmful ``Goal`` strings, label 1.

    Category = ``Category`` (10 x 10); ids ``"jailbreakbench:{row}"``. ``root`` holds ``jailbreakbench.csv``,
    ``behaviors.csv`` (upstream) or ``harmful-behaviors.csv`` (Hugging Face).

    Example:
        >>> read_jailbreakbench("data/jailbreakbench")[0].category  # doctest: +SKIP
        'Harassment/Discrimination'
    """
    names = ["jailbreakbench.csv", "behaviors.csv", "harmful-behaviors.csv"]
    path = find_in_layout(root, names, "  {root}/jailbreakbench.csv   (Goal,Target,Behavior,Category,Source)")
    rows = read_csv_rows(path, ["Goal", "Category"])
    return [
        Sample(r["Goal"], None, 1, "jailbreakbench", f"jailbreakbench:{i}", r["Category"])
        for i, r in enumerate(rows)
    ]


def read_alpaca(root: str | Path, *, only_without_input: bool = True) -> list[Sample]:
    """Alpaca instructions (Taori et al. 2023), benign, label 0, ids ``"alpaca:{index in the file}"``.

    ``root`` holds ``alpaca.json`` (a list of ``{"instruction", ...}``) or upstream ``alpaca_data.json``.
    With ``only_without_input=True`` (default) records with a non-empty ``input`` are dropped, since the
    instruction alone does not make sense without it. License: CC BY-NC 4.0 (research use).

    Example:
        >>> read_alpaca("data/alpaca")[0].prompt  # doctest: +SKIP
        'Give three tips for staying healthy.'
    """
    path = find_in_layout(
        root, ["alpaca.json", "alpaca_data.json"], '  {root}/alpaca.json   ([{"instruction", "input"?}])'
    )
    samples = []
    for i, record in enumerate(read_json_file(path)):
        if only_without_input and str(record.get("input") or "").strip():
            continue
        samples.append(
            Sample(record_field(record, "instruction", f"{path} item {i}"), None, 0, "alpaca", f"alpaca:{i}")
        )
    return samples


def read_csv_prompts(
    path: str | Path,
    column: str,
    *,
    label: int,
    source: str | None = None,
    id_column: str | None = None,
    category_column: str | None = None,
) -> list[Sample]:
    """Any CSV file with one prompt per row, all with the same ``label``; text-only samples.

    ``source`` defaults to the file name without extension; ids are ``"{source}:{id_column value}"`` or
    ``"{source}:{row number from 0}"``.

    Example:
        >>> read_csv_prompts("my_requests.csv", "text", label=1, category_column="topic")  # doctest: +SKIP
    """
    path = Path(path)
    source = source or path.stem
    columns = [c for c in (column, id_column, category_column) if c is not None]
    samples = []
    for i, row in enumerate(read_csv_rows(path, columns)):
        if not row[column].strip():
            raise ValueError(
                f"{path} row {i + 2}: the {column!r} cell is empty; remove the row or fill it in"
            )
        key = row[id_column] if id_column else str(i)
        category = row[category_column] if category_column else None
        samples.append(Sample(row[column], None, label, source, f"{source}:{key}", category))
    if not samples:
        raise ValueError(f"{path} has a header but no rows: nothing to read from its {column!r} column")
    return samples


def read_jsonl(
    path: str | Path,
    *,
    prompt_field: str = "prompt",
    label_field: str = "label",
    image_field: str = "image",
    label: int | None = None,
    image_root: str | Path | None = None,
    source: str | None = None,
) -> list[Sample]:
    """A JSON Lines file, one sample per line, e.g. ``{"prompt": "...", "label": 1, "image": "a.png"}``.

    ``label`` (if given) labels every line and ``label_field`` is not read. Image paths are relative to
    ``image_root`` (default: the file's folder); a missing or null image field means text-only. Optional
    fields ``"id"``, ``"source"`` and ``"category"`` are kept; ``source`` (default: the file name without
    extension) is used for lines without one, and ids default to ``"{source}:{line number from 0}"``.
    ``write_jsonl`` writes this format.

    Example:
        >>> read_jsonl("requests.jsonl", label=1)  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected the JSONL file {path}; it does not exist")
    images = Path(image_root) if image_root is not None else path.parent
    default_source = source or path.stem
    samples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} line {number + 1} is not valid JSON: {error}") from None
            where = f"{path} line {number + 1}"
            image = record.get(image_field)
            line_source = record.get("source") or default_source
            record_id = record.get("id")
            samples.append(
                Sample(
                    prompt=record_field(record, prompt_field, where),
                    image=None if image is None else images / image,
                    label=record_field(record, label_field, where) if label is None else label,
                    source=line_source,
                    id=f"{line_source}:{number}" if record_id is None else str(record_id),
                    category=record.get("category"),
                )
            )
    return samples


def write_jsonl(samples: Iterable[Sample], path: str | Path) -> Path:
    """Write samples in the format ``read_jsonl`` reads; image paths as given (in-memory images cannot be).

    Example:
        >>> write_jsonl(load_bundled("harmful_text:heldout"), "heldout.jsonl")  # doctest: +SKIP
    """
    path = Path(path)
    lines = []
    for sample in samples:
        if isinstance(sample.image, Image.Image):
            raise ValueError(
                f"sample {sample.id!r} holds an in-memory image; save it to a file and use its path"
            )
        record: dict[str, Any] = {
            "id": sample.id,
            "prompt": sample.prompt,
            "label": sample.label,
            "source": sample.source,
            "category": sample.category,
        }
        if sample.image is not None:
            record["image"] = str(sample.image)
        lines.append(json.dumps(record, ensure_ascii=False))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path
