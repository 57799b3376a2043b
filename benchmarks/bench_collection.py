"""Collection throughput: ``collect_head_activations`` against a plain forward and two other ways to get hook_z.

The SAHs feature of a prompt is every head's output (``hook_z``, the input of ``o_proj``) at the last prompt
position. ``collect_head_activations`` gets it with one prefill forward per batch, a small hook per layer that
copies one column into a buffer, and it stops the forward after the deepest layer it needs. This benchmark
says what that costs, in samples per second on the same prompts, against:

* ``forward``: a plain forward of the same batches (``model(batch)``): what collection cannot beat by much.
  Headline ratio: collect / forward throughput, target >= 0.95x (it can exceed 1: collection skips the
  unembedding of every position, a plain forward does not);
* ``run_with_cache``: TransformerLens' ``run_with_cache`` with no filter, the first thing a TransformerLens
  user would write: every activation of every position is kept;
* ``collect_bs1``: the same collector, one sample per forward: the batching speed-up alone;
* ``paper``: the paper code's approach on plain Hugging Face: forward pre-hooks on every ``o_proj``, one sample
  per forward, the features of each sample written to its own file with ``torch.save``.

Peak memory of each method is measured apart from the timing: on a GPU with ``torch.cuda.max_memory_allocated``
in this process; on a CPU as peak RSS above the starting RSS, one cold run per method in a fresh process
(``tracemalloc`` does not see torch's allocations). Prompts are real (bundled harmful / benign requests), each
with a typographic image, so every row holds the model's full count of image tokens.

Run: ``python benchmarks/bench_collection.py --size mid`` (``--smoke`` for a quick check).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from cli_args import base_parser, child_options, fill_defaults, model_from_args, resolve_args
from measure import Comparison, Timing, peak_memory, print_marked, release_freed_memory, run_child
from models import BenchModel
from reporting import format_table, publish, verdict
from samples import bench_samples

from model_adapters.structure import find_language_model
from sahs_lens.activations import collect_head_activations
from sahs_lens.data import Sample

BENCH = "collection"
Method = Callable[[BenchModel, Sequence[Sample], int], None]
DEFAULTS = {"tiny": (32, 8, 7), "mid": (8, 4, 3)}  # size -> (samples, batch size, repeats)
SMOKE = (8, 4, 2)


def run_collect(bm: BenchModel, samples: Sequence[Sample], batch_size: int) -> None:
    collect_head_activations(bm.vlm, samples, batch_size=batch_size, progress=False)


def run_collect_bs1(bm: BenchModel, samples: Sequence[Sample], batch_size: int) -> None:
    collect_head_activations(bm.vlm, samples, batch_size=1, progress=False)


def run_forward(bm: BenchModel, samples: Sequence[Sample], batch_size: int) -> None:
    for batch in bm.batches(samples, batch_size):
        bm.vlm(batch)


def run_with_cache(bm: BenchModel, samples: Sequence[Sample], batch_size: int) -> None:
    for batch in bm.batches(samples, batch_size):
        _, cache = bm.vlm.run_with_cache(batch)
        del cache


def run_paper(bm: BenchModel, samples: Sequence[Sample], batch_size: int) -> None:
    """o_proj pre-hooks on the plain Hugging Face model, one sample per forward, one ``torch.save`` per sample."""
    attention = find_language_model(bm.raw).attention
    store: dict[int, torch.Tensor] = {}

    def pre_hook(layer: int) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            store[layer] = args[0][:, -1].detach().cpu()

        return hook

    with contextlib.ExitStack() as stack:
        for i, attn in enumerate(attention):
            o_proj: Any = attn.o_proj
            stack.callback(o_proj.register_forward_pre_hook(pre_hook(i)).remove)
        out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sahs_paper_")))
        for sample in samples:
            batch = bm.prepare([sample])
            with torch.no_grad():
                bm.raw(**bm.raw_inputs(batch))
            features = torch.stack([store[i] for i in range(len(attention))], dim=1)  # [1, layer, d_model]
            torch.save({"z": features, "label": sample.label}, out / f"{sample.id.replace(':', '_')}.pt")


METHODS: dict[str, tuple[Method, str]] = {
    "collect": (run_collect, "collect_head_activations (hook_z[:, -1], stops after the last layer)"),
    "forward": (run_forward, "plain forward, model(batch)"),
    "run_with_cache": (run_with_cache, "TransformerLens run_with_cache, no filter"),
    "collect_bs1": (run_collect_bs1, "collect_head_activations, batch size 1"),
    "paper": (run_paper, "paper code: HF o_proj pre-hooks, 1 sample/forward, torch.save per sample"),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = base_parser(
        "collect_head_activations throughput against forward, run_with_cache and the paper code"
    )
    parser.add_argument("--n", type=int, default=None, help="samples per timed run")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="prompts per forward for batched methods"
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of the methods")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)  # internal: one method, cold
    args = resolve_args(parser.parse_args(argv))
    n, batch_size, repeats = SMOKE if args.smoke else DEFAULTS.get(args.size, (32, 8, 5))
    fill_defaults(args, n=n, batch_size=batch_size, repeats=repeats)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown or "collect" not in args.methods:
        raise SystemExit(f"--methods must name 'collect' and any of {', '.join(METHODS)}; got {args.methods}")
    return args


def setup(args: argparse.Namespace) -> tuple[BenchModel, list[Sample]]:
    bm = model_from_args(args)
    return bm, bench_samples(args.n, bm.size.image_size)


def measure_memory(method: str, bm: BenchModel, samples: Sequence[Sample], batch_size: int) -> dict[str, Any]:
    """Peak memory of one cold run of ``method`` (see ``measure.peak_memory``)."""
    with peak_memory(bm.vlm.device) as mem:
        METHODS[method][0](bm, samples, batch_size)
    return mem


def memory_in_subprocess(args: argparse.Namespace, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Run ``methods`` once each, cold, in a fresh process (CPU peak RSS needs one); read the peaks back."""
    options = ["--memory-probe", ",".join(methods), *child_options(args), "--n", str(args.n),
               "--batch-size", str(args.batch_size)]  # fmt: skip
    found = run_child(__file__, options, "MEMORY", expect=len(methods))
    return {mem.pop("name"): mem for mem in found}


def memory_probe(args: argparse.Namespace, bm: BenchModel, samples: Sequence[Sample]) -> None:
    """The child side of ``memory_in_subprocess``: one ``MEMORY {json}`` line per method."""
    for name in args.memory_probe.split(","):
        release_freed_memory()
        mem = measure_memory(name, bm, samples, args.batch_size)
        print_marked("MEMORY", {"name": name, **mem})


def time_methods(args: argparse.Namespace, bm: BenchModel, samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """Time every method against ``collect``, interleaved; one row per method, ``collect`` first."""
    timing = Timing(args.repeats, sync=bm.sync())

    def call(name: str) -> Callable[[], None]:
        return lambda: METHODS[name][0](bm, samples, args.batch_size)

    rows: list[dict[str, Any]] = []
    first: Comparison | None = None
    for name in args.methods:
        if name == "collect":
            continue
        comparison = timing.compare(call("collect"), call(name))
        first = first or comparison
        rows.append(_row(name, args, comparison.wall.b_median, comparison))
    if first is None:  # only collect was asked for
        first = timing.compare(call("collect"), call("collect"))
    return [_row("collect", args, first.wall.a_median, None), *rows]


def _row(
    name: str, args: argparse.Namespace, median_s: float, comparison: Comparison | None
) -> dict[str, Any]:
    """One method's row; ``collect_speedup`` = collect's samples/s over this method's (1 / time ratio)."""
    per_sample = name in ("collect_bs1", "paper")
    row: dict[str, Any] = {
        "method": name,
        "what": METHODS[name][1],
        "batch": 1 if per_sample else args.batch_size,
        "median_s": median_s,
        "samples_per_s": args.n / median_s,
        "collect_speedup": 1.0,
    }
    if comparison is not None:
        low, high = comparison.spread
        cpu = comparison.cpu_ratio
        row.update(
            collect_speedup=1.0 / comparison.ratio,
            collect_range=f"{1.0 / high:.2f}-{1.0 / low:.2f}",
            collect_speedup_cpu=None if cpu is None else 1.0 / cpu,
            **comparison.row(),
        )
    return row


def add_memory(
    args: argparse.Namespace, bm: BenchModel, samples: Sequence[Sample], rows: list[dict[str, Any]]
) -> None:
    """Peak memory per method: in this process on a GPU; on a CPU one fresh process per method, or with
    ``--smoke`` one process for all (freed memory handed back to the system in between: approximate)."""
    names = [row["method"] for row in rows]
    if bm.vlm.device.type == "cuda":
        mems = {name: measure_memory(name, bm, samples, args.batch_size) for name in names}
    elif args.smoke:
        mems = memory_in_subprocess(args, names)
        for mem in mems.values():
            mem["method"] += " (--smoke: all methods in one process, approximate)"
    else:
        mems = {name: memory_in_subprocess(args, [name])[name] for name in names}
    for row in rows:
        row["peak_mb"] = mems[row["method"]]["peak_bytes"] / 2**20
        row["memory_method"] = mems[row["method"]]["method"]


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    speedup = {row["method"]: row["collect_speedup"] for row in rows}
    out: dict[str, Any] = {"collect_samples_per_s": rows[0]["samples_per_s"]}
    if "forward" in speedup:
        ratio = speedup["forward"]
        out.update(collect_vs_forward=ratio, target=">= 0.95", met=ratio >= 0.95)
    for name in ("run_with_cache", "collect_bs1", "paper"):
        if name in speedup:
            out[f"collect_vs_{name}"] = speedup[name]
    return out


TABLE = [
    ("method", "method"),
    ("batch", "batch"),
    ("median_s", "median s/run"),
    ("samples_per_s", "samples/s"),
    ("collect_speedup", "collect x"),
    ("collect_range", "pairs"),
    ("collect_speedup_cpu", "cpu x"),
    ("peak_mb", "peak MB"),
    ("what", "what"),
]


NOTE = (
    "collect x: collect's samples/s over this method's, median of interleaved pairs (read rows by this column:\n"
    "each pair ran at its own time on a shared machine); pairs: its lowest-highest pair; cpu x: the same from\n"
    "process CPU time (steadier on a busy CPU machine). samples/s: this method's own median run"
)


def render(result: dict[str, Any]) -> str:
    h, s = result["headline"], result["settings"]
    lines = [
        f"bench_collection: size {s['size']}, {s['n']} samples with images, batch {s['batch_size']}, "
        f"{s['repeats']} interleaved runs per pair (median)",
    ]
    if "collect_vs_forward" in h:
        lines.append(
            f"HEADLINE collect / forward throughput = {h['collect_vs_forward']:.3f}x "
            f"(target >= 0.95x: {verdict(h['met'])})"
        )
    if "collect_vs_paper" in h:
        lines.append(
            f"batched collect vs the paper's per-sample code: {h['collect_vs_paper']:.2f}x the samples/s"
        )
    lines += ["", format_table(result["rows"], TABLE), NOTE]
    if result["rows"] and "memory_method" in result["rows"][0]:
        lines.append(f"peak memory: {result['rows'][0]['memory_method']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bm, samples = setup(args)
    if args.memory_probe:
        memory_probe(args, bm, samples)
        return {}
    rows = time_methods(args, bm, samples)
    if not args.no_memory:
        add_memory(args, bm, samples, rows)
    return publish(BENCH, args, model=bm, headline=headline(rows), rows=rows, render=render)


if __name__ == "__main__":
    main()
