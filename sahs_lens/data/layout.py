"""Reading a benchmark's published folder: find its files, read CSV and JSON, and say what layout was expected.

Every reader in ``sahs_lens.data`` takes the folder a benchmark is published in. When a file is missing or
malformed, the error names the file and prints the layout the reader expects, so a wrong folder fails at
once and says how to fix it, instead of failing later inside a model.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sahs_lens.data.sample import Sample


def find_in_layout(root: str | Path, candidates: Sequence[str], layout: str) -> Path:
    """The first ``root / candidate`` that exists, else a FileNotFoundError that shows the expected layout."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is not a directory; expected the data set's folder laid out as:\n{layout}"
        )
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    tried = ", ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"expected {tried} (not found); the reader wants this layout:\n{layout}")


def read_csv_rows(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"expected the CSV file {path}; it does not exist")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path} has no column(s) {missing}; its columns are {header}")
        return list(reader)


def read_json_file(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); re-download the file") from None


def require_images(samples: list[Sample], layout: str) -> list[Sample]:
    missing = [s.image for s in samples if isinstance(s.image, Path) and not s.image.is_file()]
    if missing:
        shown = "\n".join(f"  {m}" for m in missing[:5])
        raise FileNotFoundError(
            f"{len(missing)} of {len(samples)} image files are missing, e.g.\n{shown}\n"
            f"the reader wants this layout:\n{layout}\n(or pass image_root= where the images are)"
        )
    return samples


def record_field(record: dict[str, Any], key: str, where: str) -> Any:
    if key not in record:
        raise ValueError(f"{where} has no field {key!r}; its fields are {sorted(record)}")
    return record[key]
