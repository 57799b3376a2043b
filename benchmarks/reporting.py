"""What a benchmark leaves behind: its printed table and its JSON result, with the machine it ran on.

Every benchmark prints a plain-text table (``format_table``) with its headline first and the machine under it
(``machine.format_machine``), and, with ``--json PATH`` or ``--json auto``, writes one JSON document of the
same shape (``bench_result``: bench, machine, settings, model, headline, rows, and whatever else it adds).
``--json auto`` writes ``benchmarks/results/<bench>-<size>-<machine>-<date>.json`` (``default_json_path``):
the size is in the name so that tiny and mid runs of the same day do not overwrite each other. ``publish``
does all of it at the end of a run.

(Named ``reporting``, not ``results``: ``benchmarks/results/`` is the folder of the committed results.)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from machine import format_machine, machine_info
from models import BenchModel

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table; ``columns`` are ``(key, header)``; floats print with 3 significant decimals."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
        return "-" if value is None else str(value)

    body = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, (_, h) in enumerate(columns)]
    line = "  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    numeric = [
        all(isinstance(row.get(key), (int, float)) or row.get(key) is None for row in rows)
        for key, _ in columns
    ]
    rows_text = [
        "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True))
        for r in body
    ]
    return "\n".join([line, rule, *rows_text])


def pair_range(row: dict[str, Any]) -> str:
    """The ``pairs`` cell of a timed row: its lowest and highest per-pair ratio, ``0.97-1.04``."""
    return f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"


def verdict(met: bool) -> str:
    """How a headline says whether its target was met."""
    return "met" if met else "NOT met"


# --------------------------------------------------------------------------------------------------------
# JSON results
# --------------------------------------------------------------------------------------------------------


def default_json_path(bench: str, size: str, info: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """``<directory>/<bench>-<size>-<machine>-<date>.json``."""
    return directory / f"{bench}-{size}-{info['machine']}-{info['date'][:10]}.json"


def json_path(bench: str, args: argparse.Namespace, info: dict[str, Any]) -> Path | None:
    """Where ``--json`` asks the result to go (``auto``: ``default_json_path``); None without ``--json``."""
    if not args.json:
        return None
    return default_json_path(bench, args.size, info) if args.json == "auto" else Path(args.json)


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    """Write ``result`` as indented JSON to ``path`` (its folder made if need be); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, (torch.dtype, torch.device, Path)):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def bench_result(
    bench: str,
    *,
    args: argparse.Namespace,
    model: BenchModel | dict[str, Any],
    info: dict[str, Any],
    headline: dict[str, Any],
    rows: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document every benchmark writes: bench, machine, settings, model, headline, rows.

    ``model``: the model measured, or a description of the models (a benchmark that built none here)."""
    if isinstance(model, BenchModel):
        model = {**asdict(model.size), "build_s": model.build_s, "identity": model.vlm.cfg.identity()}
    return {
        "bench": bench,
        "machine": info,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "model": model,
        "headline": headline,
        "rows": rows,
        **(extra or {}),
    }


def finish(bench: str, args: argparse.Namespace, result: dict[str, Any], table: str) -> dict[str, Any]:
    """Print the table and machine info; write the JSON when asked."""
    print(table)
    print(format_machine(result["machine"]))
    path = json_path(bench, args, result["machine"])
    if path is not None:
        print(f"wrote {write_result(path, result)}")
    return result


def publish(
    bench: str,
    args: argparse.Namespace,
    *,
    model: BenchModel | dict[str, Any],
    headline: dict[str, Any],
    rows: list[dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    extra: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The end of every run: ``bench_result``, then ``finish`` with the table ``render`` makes of it.

    ``info``: the machine, by default read now, after the measurements (its load average is the one at the
    end of the run)."""
    info = machine_info(args.device) if info is None else info
    result = bench_result(bench, args=args, model=model, info=info, headline=headline, rows=rows, extra=extra)
    return finish(bench, args, result, render(result))
