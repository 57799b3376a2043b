"""The command line every benchmark shares: ``--smoke --size --device --dtype --repeats --seed --threads --json``.

Each ``bench_*.py`` script starts from ``base_parser``, adds its own options, and fills the options left
unset from its per-size defaults (``fill_defaults``; ``parse_generation_args`` does all of it for the
benchmarks that time ``generate``). ``resolve_args`` applies what the shared options mean: ``--smoke`` runs
the ``tiny`` size, ``--threads`` sets torch's CPU threads, and the dtype defaults to float32 on a CPU and
bfloat16 on a GPU. ``model_from_args`` builds the model the options name; ``child_options`` are the
options a script passes again to a fresh process of itself (``measure.run_child``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from models import SIZE_NAMES, BenchModel, build_model, torch_dtype

BACKEND_NAMES = (
    "hf",
    "bridge",
)  # the load_vlm backends a benchmark can measure (load_vlm's "auto" is "hf" here)
# per-size defaults of a generate benchmark: (new tokens, batch sizes, its own option, repeats)
GenerationDefaults = tuple[int, tuple[int, ...], int, int]


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--smoke --size --device --dtype --repeats --json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny model, fewest runs: checks that it works")
    parser.add_argument("--size", choices=SIZE_NAMES, default="tiny", help="model size (default tiny)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--dtype", default=None, choices=("float32", "float16", "bfloat16"),
        help="parameter dtype (default float32 on cpu, bfloat16 on cuda)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs of each side (default per size)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads (default: torch's choice); 1 is steadier on a machine shared with other jobs",
    )  # fmt: skip
    parser.add_argument("--json", default=None, help="write the result here ('auto': benchmarks/results/...)")
    return parser


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Apply ``--smoke`` (tiny size), ``--threads`` and the device's default dtype."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.size = "tiny"
    if args.dtype is None:
        args.dtype = "bfloat16" if str(args.device).startswith("cuda") else "float32"
    return args


def fill_defaults(args: argparse.Namespace, **defaults: Any) -> None:
    """Give every option in ``defaults`` that was not set on the command line (None or 0) its default."""
    for name, value in defaults.items():
        setattr(args, name, getattr(args, name) or value)


def add_generation_options(parser: argparse.ArgumentParser, batches_help: str) -> None:
    """``--new-tokens`` and ``--batches``: the options of the benchmarks that time ``generate``."""
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens decoded per call (default 64)")
    parser.add_argument("--batches", default=None, help=batches_help)


def resolve_generation_options(args: argparse.Namespace, tokens: int, batches: Sequence[int]) -> None:
    """Fill ``args.new_tokens`` and ``args.batches`` (a list of ints) from the size's defaults."""
    args.new_tokens = args.new_tokens or tokens
    args.batches = [int(b) for b in args.batches.split(",")] if args.batches else list(batches)


def parse_generation_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    defaults: Mapping[str, GenerationDefaults],
    smoke: GenerationDefaults,
    option: str,
) -> argparse.Namespace:
    """Parse the options of a benchmark that times ``generate`` and fill the unset ones.

    ``defaults[size]`` (``smoke`` with ``--smoke``) is ``(new tokens, batch sizes, default of option,
    repeats)``; ``option`` is the benchmark's own option with a per-size default (``forward_batch``...)."""
    args = resolve_args(parser.parse_args(argv))
    tokens, batches, value, repeats = smoke if args.smoke else defaults[args.size]
    resolve_generation_options(args, tokens, batches)
    fill_defaults(args, **{option: value}, repeats=repeats)
    return args


def add_backend_option(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    """``--backend`` (one ``load_vlm`` backend, default ``hf``) or, with ``several``, ``--backends`` (a
    comma-separated list, default ``hf,bridge``): which backend(s) the measured ``HookedVLM`` runs on."""
    if several:
        parser.add_argument(
            "--backends", default="hf,bridge",
            help="comma-separated load_vlm backends to measure, each against raw HF (default hf,bridge)",
        )  # fmt: skip
    else:
        parser.add_argument(
            "--backend", choices=BACKEND_NAMES, default="hf",
            help="load_vlm backend of the HookedVLM measured (default hf)",
        )  # fmt: skip


def parse_backends(text: str) -> list[str]:
    """``"hf,bridge"`` as ``["hf", "bridge"]``; unknown or repeated names exit with a message."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKEND_NAMES]
    if not names or unknown or len(set(names)) != len(names):
        raise SystemExit(
            f"--backends {text!r}: give distinct names among {', '.join(BACKEND_NAMES)}, comma-separated"
        )
    return names


def model_from_args(args: argparse.Namespace) -> BenchModel:
    """The benchmark model of ``--size`` on ``--device`` in ``--dtype``, seeded with ``--seed``, on the
    backend(s) of ``--backend`` / ``--backends`` when the benchmark has that option (``hf`` otherwise)."""
    backends = getattr(args, "backends", None) or [getattr(args, "backend", None) or "hf"]
    return build_model(
        args.size, device=args.device, dtype=torch_dtype(args.dtype), seed=args.seed, backends=backends
    )


def child_options(args: argparse.Namespace) -> list[str]:
    """The shared options a fresh process of the same script needs to measure the same model the same way
    (its threads are this process's torch threads)."""
    return ["--size", args.size, "--device", args.device, "--dtype", args.dtype, "--seed", str(args.seed),
            "--threads", str(torch.get_num_threads())]  # fmt: skip
