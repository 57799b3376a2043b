"""Interrupt ``sahs-lens demo`` over an earlier run at random moments; every directory must be either
complete and consistent, or marked incomplete.

The reliability issue's reproducer, measured: ``demo --quick --out D`` (seed 0) once, then for each
trial a copy of D, ``demo --quick --seed 1 --out COPY`` started as a subprocess and sent SIGINT or
SIGKILL (alternately) at a moment drawn uniformly from 0 to 1.25 times the length of a whole run (so
that some runs finish first). Afterwards each
directory is classified:

- ``complete``: ``run.json`` says complete, ``check_run`` verifies every file, its settings and
  ``metrics.json`` name the same seed, and ``report_from_run`` rebuilds the report;
- ``marked incomplete``: ``run.json`` says incomplete and ``report_from_run`` refuses the directory;
- ``inconsistent``: anything else (the failure this script exists to catch).

Usage: ``python scripts/interrupt_demo.py --trials 20 --out benchmarks/results/demo-interrupts.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from sahs_lens.organism.demo import report_from_run
from sahs_lens.organism.demo.run_dir import RUN_JSON, check_run


def _demo(out: Path, seed: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "sahs_lens", "demo", "--quick", "--seed", str(seed), "--out", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def classify(out: Path, seed: int) -> tuple[str, str]:
    """``(state, detail)`` of a run directory after an interruption."""
    path = out / RUN_JSON
    if not path.exists():
        return "inconsistent", "no run.json"
    record = json.loads(path.read_text())
    if record.get("complete") is False:
        try:
            report_from_run(out)
        except ValueError as error:
            if "incomplete demo run" in str(error):
                return "marked incomplete", ""
            return "inconsistent", f"refused for another reason: {error}"
        return "inconsistent", "marked incomplete, but its report was rebuilt"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            check_run(out)
            report_from_run(out)
    except (ValueError, Warning) as error:
        return "inconsistent", f"complete but refused: {error}"
    metrics = json.loads((out / "metrics.json").read_text())
    if record["settings"]["seed"] != seed or metrics.get("seed") != seed:
        return "inconsistent", f"complete, but seeds {record['settings']['seed']} / {metrics.get('seed')}"
    return "complete", ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seed of the moments drawn")
    parser.add_argument("--out", type=Path, help="write the results here (JSON)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="interrupt-demo-"))
    earlier = root / "earlier"
    started = time.perf_counter()
    first = _demo(earlier, 0)
    if first.wait() != 0:
        raise SystemExit(f"the earlier run failed: {first.stderr.read().decode()[-2000:] if first.stderr else ''}")
    length = time.perf_counter() - started
    trials: list[dict[str, Any]] = []
    for i in range(args.trials):
        out = root / f"trial-{i:02d}"
        shutil.copytree(earlier, out)
        moment = rng.uniform(0.0, 1.25 * length)
        sig = signal.SIGINT if i % 2 == 0 else signal.SIGKILL
        process = _demo(out, 1)
        try:
            process.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            process.send_signal(sig)
        code = process.wait()
        state, detail = classify(out, 1)
        stderr = process.stderr.read().decode() if process.stderr else ""
        trials.append({"moment_s": round(moment, 2), "signal": sig.name, "returncode": code, "state": state,
                       "detail": detail, "stderr_lines": len(stderr.strip().splitlines())})  # fmt: skip
        print(f"trial {i:2d}: {sig.name:7s} at {moment:5.1f} s -> rc {code:4d}, {state} {detail}", flush=True)
        shutil.rmtree(out)
    counts = {s: sum(t["state"] == s for t in trials) for s in ("complete", "marked incomplete", "inconsistent")}
    result = {
        "what": "sahs-lens demo --quick --seed 1 interrupted over an earlier run (seed 0) at random moments",
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.python_version()}",
        "run_length_s": round(length, 1),
        "counts": counts,
        "trials": trials,
    }
    print(json.dumps(counts))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    shutil.rmtree(root)
    return 1 if counts["inconsistent"] else 0


if __name__ == "__main__":
    sys.exit(main())
