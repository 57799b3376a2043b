"""Data-parallel collection: samples/s of ``collect_head_activations(out=...)`` with 1 and with N ranks.

Each measurement is one ``torchrun --standalone --nproc_per_node=R`` launch of this script (``--worker``):
every rank builds the same benchmark model (``models.py``; random weights from ``--seed``), warms up, and
then collects the same bench prompts into a fresh directory, timed on rank 0 from a barrier before the call
to a barrier after it (shards, progress records and the final manifest included; process start and model
build excluded). Each rank runs one torch thread, so R ranks use R cores. Launches alternate
(1 2, 2 1, 1 2, ...) and the headline is the median over those pairs of the **scaling efficiency**
``(samples/s with R ranks) / (R x samples/s with 1 rank)``: 1.0 is perfect, 1/R is no gain at all. On a
machine shared with other jobs the wall clock also measures how many cores the ranks got, so the CPU-time
efficiency is reported too: the CPU seconds of the timed work on 1 rank over those of all R ranks together
(1.0: splitting the work added no work; below 1: the shares, barriers and gathers cost that much).

The directories written with 1 and with R ranks are compared byte for byte (``same_output``): the speed-up
must not change a single bit. Every rank reports its peak RSS. The memory a rank needs at ``llava7b`` size
is not measured by running it on a CPU (it is refused there, as in every benchmark): its weights are
counted on the meta device (``llava7b_weights``), with accelerate's placement for the same model split over
two GPUs of 8 GiB each (what ``--device-map auto --max-memory 0=8GiB,1=8GiB`` would load).

Run: ``python benchmarks/bench_distributed.py --size mid --threads 1 --json auto`` (``--smoke``: tiny).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from cli_args import base_parser, fill_defaults, resolve_args
from models import SIZES, build_model, check_size, torch_dtype
from reporting import format_table, publish, verdict
from samples import bench_samples

BENCH = "distributed"
DEFAULTS = {
    "tiny": (96, 4, 3),
    "mid": (16, 2, 2),
    "llava7b": (64, 8, 2),
}  # size -> (samples, batch size, timed runs per launch)
SMOKE = (16, 4, 1)
TARGET = 0.90  # scaling efficiency at 2 ranks on 2 idle cores


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="prompts collected per run")
    parser.add_argument("--batch-size", type=int, default=None, help="prompts per forward (= the shard size)")
    parser.add_argument("--ranks", default="1,2", help="world sizes to measure, the first is the base (1,2)")
    parser.add_argument(
        "--pairs", type=int, default=None, help="alternating launch pairs (default 2; smoke 1)"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # the torchrun side: a JSON path
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = resolve_args(parser.parse_args(argv))
    samples, batch_size, repeats = SMOKE if args.smoke else DEFAULTS[args.size]
    fill_defaults(args, samples=samples, batch_size=batch_size, repeats=repeats)
    if args.pairs is None:
        args.pairs = 1 if args.smoke else 2
    return args


def worker(args: argparse.Namespace) -> None:
    """One launch, every rank: build, warm up, time ``repeats`` collections; rank 0 writes the result."""
    from sahs_lens.activations import collect_head_activations
    from sahs_lens.distributed import current_world, env_world, shutdown

    torch.set_num_threads(1)
    # built before the process group exists: transformers' save_pretrained (the tiny checkpoint) writes
    # nothing on a rank other than 0 of an initialised group
    _, _, local_rank = env_world()
    device = f"cuda:{local_rank}" if args.device == "cuda" else args.device  # one GPU per rank
    bm = build_model(args.size, device=device, dtype=torch_dtype(args.dtype), seed=args.seed)
    # each rank built its model in its own temporary directory: give them one name (the weights, from the
    # same seed, are still compared through the checkpoint fingerprint before anything is collected)
    bm.vlm.cfg = dataclasses.replace(bm.vlm.cfg, model_name=f"bench:{args.size}:seed{args.seed}")
    world = current_world()
    samples = bench_samples(args.samples, bm.size.image_size)
    collect_head_activations(bm.vlm, samples[: args.batch_size * world.size], batch_size=args.batch_size,
                             progress=False)  # warm-up, in memory  # fmt: skip
    times, cpu = [], []
    for r in range(args.repeats):
        out = Path(args.workdir) / f"run-{r}"
        world.barrier()
        start, start_cpu = time.perf_counter(), time.process_time()
        collect_head_activations(bm.vlm, samples, batch_size=args.batch_size, shard_size=args.batch_size,
                                 out=out, progress=False)  # fmt: skip
        world.barrier()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    peak = world.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB -> MiB on Linux
    gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else None
    gpus = world.gather(gpu)  # peak GPU memory per rank (None on a CPU)
    cpus = world.gather(statistics.median(cpu))  # process CPU time of the timed runs, per rank
    if world.is_main:
        result = {
            "ranks": world.size,
            "times_s": times,
            "peak_rss_mb": peak,
            "peak_gpu_mb": gpus,
            "cpu_s": cpus,
        }
        Path(args.worker).write_text(json.dumps(result))
    shutdown()


def launch(args: argparse.Namespace, ranks: int, workdir: Path) -> dict[str, Any]:
    """One ``torchrun`` of the worker with ``ranks`` processes; its result."""
    result = workdir / "result.json"
    options = ["--size", args.size, "--device", args.device, "--dtype", args.dtype, "--seed", str(args.seed),
               "--samples", str(args.samples), "--batch-size", str(args.batch_size), "--repeats",
               str(args.repeats), "--worker", str(result), "--workdir", str(workdir)]  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}",
               __file__, *options]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"torchrun with {ranks} rank(s) failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(result.read_text()))


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def llava7b_weights() -> dict[str, Any]:
    """LLaVA-1.5-7B's parameters counted on the meta device (no memory), and accelerate's 2-GPU split."""
    import logging
    import warnings

    from accelerate import infer_auto_device_map
    from accelerate.utils import compute_module_sizes
    from models import _hf_from_config, _processor

    spec = SIZES["llava7b"]
    with tempfile.TemporaryDirectory() as directory:
        model = _hf_from_config(spec, _processor(spec, Path(directory)), "meta", torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    budget = {0: "8GiB", 1: "8GiB", "cpu": "1GiB"}
    quiet = logging.getLogger("accelerate")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "device 0 is not available": this is a plan, not a load
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        placement = infer_auto_device_map(model, max_memory=budget, dtype=torch.bfloat16,  # type: ignore[arg-type]
                                          no_split_module_classes=["LlamaDecoderLayer", "CLIPEncoderLayer"])  # fmt: skip
    quiet.setLevel(level)
    sizes = compute_module_sizes(model, dtype=torch.bfloat16)
    per_device: dict[str, float] = {}
    for module, device in placement.items():
        per_device[str(device)] = per_device.get(str(device), 0.0) + sizes[module] / 2**30
    return {
        "how": "counted on the meta device (no weights allocated); the split is accelerate's "
        "infer_auto_device_map for 2 GPUs of 8 GiB, not a load",
        "parameters": n,
        "bf16_gib_per_data_parallel_rank": round(n * 2 / 2**30, 3),
        "bf16_gib_per_gpu_2way_device_map": {k: round(v, 3) for k, v in sorted(per_device.items())},
    }


def render(result: dict[str, Any]) -> str:
    head = result["headline"]
    lines = [
        f"HEADLINE scaling efficiency at {head['ranks']} ranks: {head['efficiency']:.2f} "
        f"(speed-up {head['speedup']:.2f}x; target >= {TARGET:.2f}: {verdict(head['met'])}); "
        f"same output: {head['same_output']}; CPU-time efficiency {head['cpu_efficiency']:.2f} (CPU seconds of the "
        "work on 1 rank / on all ranks together: the parallel overhead, whatever else the machine runs)",
        format_table(
            result["rows"],
            [
                ("launch", "launch"),
                ("ranks", "ranks"),
                ("median_s", "median s"),
                ("samples_per_s", "samples/s"),
                ("peak_rss_mb", "peak MB per rank"),
            ],
        ),  # fmt: skip
    ]
    w = result["llava7b_weights"]
    lines.append(
        f"llava7b weights per data-parallel rank: {w['bf16_gib_per_data_parallel_rank']} GiB bf16 "
        f"({w['parameters']:,} parameters, counted on meta); split over 2 GPUs: "
        f"{w['bf16_gib_per_gpu_2way_device_map']} GiB"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    check_size(args.size, args.device)
    counts = [int(r) for r in args.ranks.split(",")]
    base, wide = counts[0], counts[-1]
    rows: list[dict[str, Any]] = []
    by_launch: list[tuple[int, int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="sahs_bench_dist_") as root:
        outputs: dict[int, dict[str, bytes]] = {}
        for pair in range(args.pairs):
            for ranks in counts if pair % 2 == 0 else counts[::-1]:
                workdir = Path(root) / f"launch-{len(rows)}"
                workdir.mkdir()
                got = launch(args, ranks, workdir)
                median = statistics.median(got["times_s"])
                outputs.setdefault(ranks, _files(workdir / "run-0"))
                rows.append({"launch": len(rows), "pair": pair, "ranks": ranks, "median_s": round(median, 4),
                             "times_s": got["times_s"], "samples_per_s": round(args.samples / median, 3),
                             "cpu_s_per_rank": got["cpu_s"],
                             "peak_rss_mb": [round(m, 1) for m in got["peak_rss_mb"]], "peak_gpu_mb": got["peak_gpu_mb"]})  # fmt: skip
                by_launch.append((pair, ranks, args.samples / median, sum(got["cpu_s"])))
    ratios, cpu_ratios = [], []
    for pair in range(args.pairs):
        sps = {ranks: value for p, ranks, value, _ in by_launch if p == pair}
        cpu = {ranks: total for p, ranks, _, total in by_launch if p == pair}
        ratios.append(sps[wide] / sps[base] * base / wide)
        cpu_ratios.append(cpu[base] / cpu[wide])  # the work's CPU seconds, 1 rank / all ranks together
    efficiency = statistics.median(ratios)
    headline = {"ranks": wide, "threads_per_rank": 1, "efficiency": round(efficiency, 3), "efficiency_by_pair": ratios,
                "speedup": round(efficiency * wide / base, 3), "target": TARGET, "met": efficiency >= TARGET,
                "same_output": outputs[base] == outputs[wide],
                "cpu_efficiency": round(statistics.median(cpu_ratios), 3), "cpu_efficiency_by_pair": cpu_ratios}  # fmt: skip
    model = {**SIZES[args.size].__dict__, "samples": args.samples, "batch_size": args.batch_size}
    return publish(BENCH, args, model=model, headline=headline, rows=rows, render=render,
                   extra={"llava7b_weights": llava7b_weights()})  # fmt: skip


if __name__ == "__main__":
    main()
