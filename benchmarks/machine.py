"""The machine a benchmark ran on: what every result must be read with, and the name its files carry.

A ratio travels between machines better than an absolute time, but not unconditionally: the CPU model, the
core and thread counts, the GPU, the library versions and how busy the machine was (the load average at the
end of the run) all go into every JSON result (``machine_info``) and under every printed table
(``format_machine``). ``machine_slug`` is the short name result files carry: ``nvidia-h200`` for a GPU run,
``cpu-2c`` for a CPU run on 2 cores.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch


def machine_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """CPU model, cores, GPU, library versions and the date: what a benchmark result must be read with."""
    import transformers

    from sahs_lens import __version__

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "transformer_lens": _dist_version("transformer-lens"),
        "sahs_lens": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    info["machine"] = machine_slug(info)
    return info


def machine_slug(info: dict[str, Any]) -> str:
    """A short file-name-safe machine name: ``nvidia-h200`` for GPU runs, ``cpu-2c`` for CPU runs."""
    if str(info["device"]).startswith("cuda") and info.get("gpu"):
        return re.sub(r"[^a-z0-9]+", "-", str(info["gpu"]).lower()).strip("-")
    return f"cpu-{info['cores']}c"


def format_machine(info: dict[str, Any]) -> str:
    """The two lines printed under every table: the machine and the library versions, date and load."""
    gpu = f", GPU {info['gpu']}" if info.get("gpu") and str(info["device"]).startswith("cuda") else ""
    return (
        f"machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads){gpu}; "
        f"device {info['device']}\nversions: python {info['python']}, torch {info['torch']}, transformers "
        f"{info['transformers']}, transformer-lens {info['transformer_lens']}, sahs_lens {info['sahs_lens']}; "
        f"date {info['date']}; load average (1 min) at the end {info['load_avg_1m']}"
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
