"""Safe thread defaults for torch, chosen before it loads, unless the user chose them.

On a CPU shared with other jobs, OpenMP's spinning worker threads (its default ``ACTIVE`` wait policy)
fight each other and the other jobs: ``sahs-lens demo`` took 15 minutes there instead of under 2. So before a
command imports torch the CLI sets ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep) and
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` to the number of cores this process may use (its CPU affinity,
capped by a cgroup CPU quota), and says so in one line. A variable already set in the environment is the
user's choice and is kept (a thread count set for one of OpenMP and MKL is used for the other too). Nothing is changed once torch is loaded (library use, tests): OpenMP reads these
variables only when it starts.

>>> env = {"OMP_NUM_THREADS": "1"}
>>> line = set_thread_defaults(env, modules={})
>>> env["OMP_WAIT_POLICY"], env["OMP_NUM_THREADS"], env["MKL_NUM_THREADS"]
('PASSIVE', '1', '1')
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Container, MutableMapping
from pathlib import Path

__all__ = ["THREAD_VARIABLES", "available_cores", "set_thread_defaults"]

THREAD_VARIABLES = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _cgroup_cpus(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """The cgroup v2 CPU quota in whole cores (rounded up), or None when there is none or it is unreadable."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity (else ``os.cpu_count()``), capped by a cgroup quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cores, quota) if quota else cores)


def set_thread_defaults(
    environ: MutableMapping[str, str] | None = None, modules: Container[str] | None = None
) -> str | None:
    """Set each of ``THREAD_VARIABLES`` the user has not set; return the line that says what was chosen.

    Returns None (and changes nothing) when torch is already imported, or when every variable is the user's.
    """
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    if "torch" in modules:
        return None
    cores = available_cores()
    # a thread count the user gave for one library is theirs for both: torch lets MKL_NUM_THREADS override
    # OMP_NUM_THREADS, so setting only the other one to all cores would undo the user's choice
    users = [
        environ[name].strip()
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
        if environ.get(name, "").strip()
    ]
    count = users[0] if users else str(cores)
    defaults = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": count, "MKL_NUM_THREADS": count}
    chosen, kept = [], []
    for name, value in defaults.items():
        if environ.get(name, "").strip():
            kept.append(f"{name}={environ[name]}")
        else:
            environ[name] = value
            chosen.append(f"{name}={value}")
    if not chosen:
        return None
    yours = f"; kept yours: {' '.join(kept)}" if kept else ""
    return (
        f"sahs-lens: threads: {' '.join(chosen)} ({cores} core{'s' if cores != 1 else ''} available{yours}; "
        "set these variables yourself to choose otherwise)"
    )
