"""How the benchmarks measure: interleaved A/B timing with a CPU-time cross-check, peak memory, fresh processes.

Timing. A ratio of A to B is measured with A and B *interleaved* (``sahs_lens.evaluation.overhead_ratio``: A B,
B A, ..., warm-up excluded) and summarised as the median of the per-pair ratios (``Timing.compare``), so that
a machine that slows down for a while slows both sides of a pair. Beside the wall-clock ratio a
``Comparison`` carries the same median computed from process CPU time (``Recorded``): on a CPU machine
shared with other jobs it moves far less, because time spent waiting for a core is not counted.

Memory. ``peak_memory`` measures the peak a block adds above what was in use when it started: on a GPU
``torch.cuda.max_memory_allocated``; on a CPU the process's peak RSS (Linux ``VmHWM``, reset through
``/proc/self/clear_refs``; ``tracemalloc`` cannot see torch's allocations). A CPU peak needs a fresh process,
since the allocator keeps what earlier work freed: ``run_child`` runs a benchmark script again in one and
reads its measurements back; ``cold_then_timed`` measures one point: a cold run (the peak) and timed runs.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sahs_lens.evaluation import OverheadResult, overhead_ratio, time_call

# --------------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One A/B comparison: the wall-clock ``OverheadResult`` and what the CPU-time cross-check saw.

    ``cpu_ratio`` is the median over the same interleaved pairs of ``cpu(A) / cpu(B)``, with ``cpu`` the
    process CPU time of a call (``time.process_time``): on a CPU machine shared with other jobs it moves far
    less than wall time, because time spent waiting for a core is not counted (None on a GPU, whose work is
    not CPU time). ``a_last`` / ``b_last`` are the last outputs of each side, for correctness checks.
    """

    wall: OverheadResult
    cpu_ratio: float | None
    a_last: Any
    b_last: Any

    @property
    def ratio(self) -> float:
        return self.wall.ratio

    @property
    def spread(self) -> tuple[float, float]:
        """Smallest and largest per-pair wall-clock ratio: how noisy the machine was."""
        pairs = [a / b for a, b in zip(self.wall.a.times, self.wall.b.times, strict=True) if b > 0]
        return (min(pairs), max(pairs)) if pairs else (math.inf, math.inf)

    def row(self) -> dict[str, Any]:
        """The columns every benchmark row carries about its timing."""
        low, high = self.spread
        return {
            "ratio": self.ratio,
            "ratio_min": low,
            "ratio_max": high,
            "cpu_ratio": self.cpu_ratio,
            "timing": self.wall.to_dict(),
        }


@dataclass(frozen=True)
class Timing:
    """How every A/B comparison of a run is timed (``sahs_lens.evaluation.overhead_ratio``)."""

    repeats: int
    warmup: int = 1
    sync: Callable[[], object] | None = None

    def compare(self, fn_a: Callable[[], object], fn_b: Callable[[], object]) -> Comparison:
        """``time(A) / time(B)``: A and B interleaved, median of the per-pair ratios, warm-up excluded."""
        a, b = Recorded(fn_a), Recorded(fn_b)
        wall = overhead_ratio(a, b, repeats=self.repeats, warmup=self.warmup, sync=self.sync)
        cpu_ratio = None
        if self.sync is None:  # the timed calls are the last ``repeats`` of each side
            pairs = zip(a.cpu_times[-self.repeats :], b.cpu_times[-self.repeats :], strict=True)
            cpu_ratio = statistics.median(x / y if y > 0 else math.inf for x, y in pairs)
        return Comparison(wall, cpu_ratio, a.last, b.last)


class Recorded:
    """A zero-argument call that keeps its last result and the CPU time of every call."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.last: Any = None
        self.cpu_times: list[float] = []

    def __call__(self) -> Any:
        start = time.process_time()
        self.last = self.fn()
        self.cpu_times.append(time.process_time() - start)
        return self.last


def device_sync(device: torch.device) -> Callable[[], object] | None:
    """What timing must call to wait for ``device``: ``torch.cuda.synchronize`` on a GPU, None on a CPU."""
    return torch.cuda.synchronize if device.type == "cuda" else None


def cold_then_timed(
    fn: Callable[[], object], device: torch.device, repeats: int, sync: Callable[[], object] | None
) -> dict[str, Any]:
    """One cold run (its peak memory, see ``peak_memory``), then ``repeats`` timed runs.

    Returns ``median_s``, ``times_s``, ``cpu_s`` (median process CPU time; None on a GPU, ``sync`` given),
    ``peak_mb`` and ``memory_method``."""
    release_freed_memory()
    with peak_memory(device) as mem:
        fn()
    recorded = Recorded(fn)
    timing = time_call(recorded, repeats=repeats, warmup=0, sync=sync)
    return {
        "median_s": timing.median,
        "times_s": list(timing.times),
        "cpu_s": None if sync is not None else statistics.median(recorded.cpu_times),
        "peak_mb": mem["peak_bytes"] / 2**20,
        "memory_method": mem["method"],
    }


# --------------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------------


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``)."""
    return _proc_status_kb("VmRSS") * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """Peak resident set size of this process in bytes since start or the last ``reset_peak_rss``."""
    try:
        return _proc_status_kb("VmHWM") * 1024
    except (OSError, KeyError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def release_freed_memory() -> None:
    """Hand memory that was freed but kept by the C allocator back to the system (glibc ``malloc_trim``)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _proc_status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, Any]]:
    """Measure the peak memory a block adds above what was in use when it started.

    On a GPU: ``torch.cuda.max_memory_allocated`` (tensors only). On a CPU: the process's peak RSS
    (``VmHWM``, reset through ``/proc/self/clear_refs``) minus its RSS at the start; run the block in a fresh
    process, or memory the allocator kept from earlier work hides part of the peak. The dictionary is filled
    in on exit: ``peak_bytes`` and ``method``.
    """
    out: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        yield out
        torch.cuda.synchronize()
        out.update(
            peak_bytes=torch.cuda.max_memory_allocated() - base, method="torch.cuda.max_memory_allocated"
        )
        return
    base = current_rss()
    exact = reset_peak_rss()
    yield out
    out.update(
        peak_bytes=max(0, peak_rss() - base),
        method="peak RSS (VmHWM) - RSS before, fresh process"
        if exact
        else "ru_maxrss delta (peak not reset)",
    )


# --------------------------------------------------------------------------------------------------------
# Fresh processes
# --------------------------------------------------------------------------------------------------------


def run_child(script: str | Path, options: Sequence[str], marker: str, expect: int) -> list[dict[str, Any]]:
    """Run ``script`` with ``options`` in a fresh Python process and read back its ``{marker} {json}`` lines.

    A CPU peak-RSS measurement needs a fresh process (the allocator keeps what earlier work freed); the
    child prints one marked JSON line per measurement (``print_marked``). Raises, with the child's stderr,
    if it fails or prints a number of lines other than ``expect``. ``cli_args.child_options`` gives the
    options every child must be passed again.
    """
    import subprocess
    import sys

    cmd = [sys.executable, str(Path(script).resolve()), *options]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    prefix = marker + " "
    found = [json.loads(line[len(prefix) :]) for line in done.stdout.splitlines() if line.startswith(prefix)]
    if done.returncode != 0 or len(found) != expect:
        raise RuntimeError(
            f"{Path(script).name} {' '.join(options[:2])} failed (exit {done.returncode}, {len(found)} of "
            f"{expect} {marker} lines):\n{done.stderr[-3000:]}"
        )
    return found


def print_marked(marker: str, measurement: dict[str, Any]) -> None:
    """The child side of ``run_child``: one ``{marker} {json}`` line on stdout, flushed at once."""
    print(f"{marker} " + json.dumps(measurement), flush=True)
