"""Run every benchmark in one sweep, each in its own process, and write their JSON results.

Each ``benchmarks/bench_*.py`` script takes ``--smoke --size --json`` (and ``--device --dtype --threads``);
this sweep runs them one after the other in fresh processes (so one benchmark's memory and threads do not
leak into the next), writes ``<out>/<bench>-<size>-<machine>-<date>.json`` for each, and ends with a summary
of the headline ratios (``bench_scaling.py`` also writes its figure, ``<same name>.html``). A benchmark script
that is not there (``bench_probes.py`` and ``bench_scaling.py`` are optional) is skipped.

    python benchmarks/run_all.py --smoke                  # all benchmarks, tiny and fast (a few minutes on 2 cores)
    python benchmarks/run_all.py --size tiny --size mid   # the CPU tables of benchmarks/README.md
    python benchmarks/run_all.py --size llava7b --device cuda --dtype bfloat16   # on a GPU

``--smoke`` writes to a temporary directory unless ``--out`` is given; real runs write to
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHES = ("collection", "guard", "adapter", "probes", "scaling", "detectors", "distributed")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="run every benchmark and write their JSON results")
    parser.add_argument("--smoke", action="store_true", help="every benchmark at its smoke settings")
    parser.add_argument("--size", action="append", choices=("tiny", "mid", "llava7b"), help="repeatable")
    parser.add_argument("--only", action="append", choices=BENCHES, help="run only these benchmarks")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="result directory (default benchmarks/results)")
    args = parser.parse_args(argv)
    args.size = ["tiny"] if args.smoke or not args.size else args.size
    return args


def present(only: Sequence[str] | None) -> list[str]:
    return [name for name in (only or BENCHES) if (HERE / f"bench_{name}.py").exists()]


def command(name: str, size: str, path: Path, args: argparse.Namespace) -> list[str]:
    """The command line of one benchmark; options not given here are left to the script's defaults."""
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), "--size", size, "--json", str(path)]
    if args.smoke:
        cmd.append("--smoke")
    for option in ("device", "dtype", "threads"):
        value = getattr(args, option)
        if value is not None:
            cmd += [f"--{option}", str(value)]
    return cmd


def result_path(out: Path, name: str, size: str, device: str) -> Path:
    from machine import machine_info
    from reporting import default_json_path

    return default_json_path(name, size, machine_info(device), out)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = (
        Path(args.out)
        if args.out
        else (Path(tempfile.mkdtemp(prefix="sahs_bench_smoke_")) if args.smoke else None)
    )
    if out is None:
        from reporting import RESULTS_DIR

        out = RESULTS_DIR
    done = []
    for size in args.size:
        for name in present(args.only):
            path = result_path(out, name, size, args.device or "cpu")
            start = time.perf_counter()
            print(f"\n=== bench_{name} --size {size}", flush=True)
            code = subprocess.run(command(name, size, path, args), check=False).returncode
            done.append(
                {
                    "bench": name,
                    "size": size,
                    "exit": code,
                    "seconds": time.perf_counter() - start,
                    "json": path,
                }
            )
    return done


def summary(done: Sequence[dict[str, Any]]) -> str:
    lines = ["", "=== summary"]
    for item in done:
        status = "ok" if item["exit"] == 0 and item["json"].exists() else f"FAILED (exit {item['exit']})"
        headline = json.loads(item["json"].read_text()).get("headline", {}) if item["json"].exists() else {}
        ratios = {k: v for k, v in headline.items() if isinstance(v, float)}
        shown = ", ".join(f"{k} {v:.3f}" for k, v in ratios.items())
        lines.append(f"{item['bench']:<11} {item['size']:<8} {status:<18} {item['seconds']:6.1f} s  {shown}")
        lines.append(f"{'':<11} -> {item['json']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(HERE))
    from models import check_size

    for size in args.size:  # refuse a GPU-only size on a CPU before running anything
        check_size(size, args.device or "cpu")
    done = run(args)
    print(summary(done))
    return 0 if all(item["exit"] == 0 and item["json"].exists() for item in done) else 1


if __name__ == "__main__":
    sys.exit(main())
