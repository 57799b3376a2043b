"""Timing: what a guard costs, measured so that machine noise hits both sides alike.

A guard's price is a ratio: guarded generation against plain generation, on the same inputs. Timing the
two one after the other is fragile on a shared machine (thermal throttling, other jobs, caches warming
up); `overhead_ratio` runs them interleaved in pairs (A B, B A, A B, ...) and reports the median of the
per-pair ratios, which shrugs off outliers. `time_call` times a single function. On a GPU pass
``sync=torch.cuda.synchronize``: its work is asynchronous, and the clock must wait for it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["OverheadResult", "TimingResult", "overhead_ratio", "time_call"]


@dataclass(frozen=True)
class TimingResult:
    """Wall-clock times (seconds) of repeated calls; summarise with the median, which shrugs off outliers."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    def to_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "mean_s": self.mean, "min_s": self.min, "times_s": list(self.times)}

    def __str__(self) -> str:
        return f"median {self.median * 1e3:.2f} ms over {len(self.times)} runs (min {self.min * 1e3:.2f} ms)"


@dataclass(frozen=True)
class OverheadResult:
    """What `overhead_ratio` returns: ``ratio`` = time(A) / time(B), and both timings."""

    ratio: float
    a: TimingResult
    b: TimingResult
    interleaved: bool

    @property
    def a_median(self) -> float:
        return self.a.median

    @property
    def b_median(self) -> float:
        return self.b.median

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "interleaved": self.interleaved,
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
        }

    def __str__(self) -> str:
        return (
            f"A/B = {self.ratio:.3f} (A: {self.a_median * 1e3:.2f} ms, B: {self.b_median * 1e3:.2f} ms, "
            f"median of {len(self.a.times)} runs each)"
        )


def _check_runs(repeats: int, warmup: int) -> None:
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an int >= 1; got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0; got {warmup!r}")


def _timed(fn: Callable[[], object], sync: Callable[[], object] | None) -> float:
    if sync is not None:
        sync()
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start


def time_call(
    fn: Callable[[], object],
    *,
    repeats: int = 5,
    warmup: int = 1,
    sync: Callable[[], object] | None = None,
) -> TimingResult:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    Args:
        fn: a function of no arguments (wrap arguments with ``functools.partial`` or a lambda).
        repeats: timed calls (default 5).
        warmup: untimed calls first, to fill caches and compile kernels (default 1).
        sync: called before starting and before stopping each clock; pass ``torch.cuda.synchronize`` on a
            GPU, whose work is asynchronous (default: none).

    >>> result = time_call(lambda: sum(range(1000)), repeats=3)
    >>> len(result.times)
    3
    """
    _check_runs(repeats, warmup)
    for _ in range(warmup):
        fn()
    return TimingResult(tuple(_timed(fn, sync) for _ in range(repeats)))


def overhead_ratio(
    fn_a: Callable[[], object],
    fn_b: Callable[[], object],
    *,
    repeats: int = 5,
    warmup: int = 1,
    interleave: bool = True,
    sync: Callable[[], object] | None = None,
) -> OverheadResult:
    """How much slower ``fn_a`` is than ``fn_b``: e.g. guarded generation (A) against plain generation (B).

    With ``interleave=True`` (default) the runs alternate in pairs, A B, B A, A B, ..., so slow drift of the
    machine (thermal throttling, other jobs) and the order within a pair hit both sides alike; the ratio is
    the median of the per-pair ratios ``t_A / t_B``. With ``interleave=False`` all A runs come first, then
    all B runs, and the ratio is ``median(t_A) / median(t_B)``. Each side gets ``warmup`` untimed calls first.

    Args:
        fn_a, fn_b: functions of no arguments.
        repeats: timed runs of each (default 5).
        warmup: untimed calls of each before timing (default 1).
        interleave: alternate A and B runs (default ``True``).
        sync: as in `time_call` (``torch.cuda.synchronize`` on a GPU).

    Returns:
        `OverheadResult` with ``ratio`` (1.02 = A costs 2% more than B), ``a_median``, ``b_median``, and the
        individual times.

    >>> result = overhead_ratio(lambda: sum(range(2000)), lambda: sum(range(1000)), repeats=3)
    >>> result.ratio > 0
    True
    """
    _check_runs(repeats, warmup)
    for _ in range(warmup):
        fn_a()
        fn_b()
    times_a: list[float] = []
    times_b: list[float] = []
    if interleave:
        for i in range(repeats):
            if i % 2 == 0:
                times_a.append(_timed(fn_a, sync))
                times_b.append(_timed(fn_b, sync))
            else:
                times_b.append(_timed(fn_b, sync))
                times_a.append(_timed(fn_a, sync))
        ratio = statistics.median(a / b if b > 0 else math.inf for a, b in zip(times_a, times_b, strict=True))
    else:
        times_a = [_timed(fn_a, sync) for _ in range(repeats)]
        times_b = [_timed(fn_b, sync) for _ in range(repeats)]
        b_median = statistics.median(times_b)
        ratio = statistics.median(times_a) / b_median if b_median > 0 else math.inf
    return OverheadResult(
        ratio=ratio, a=TimingResult(tuple(times_a)), b=TimingResult(tuple(times_b)), interleaved=interleave
    )
