"""Guard overhead: guarded against unguarded generation of the same tokens on the same model.

``SafetyHeadGuard`` reads its safety heads' ``hook_z`` at the decision position inside the prefill forward
that produces the first token, so guarding should cost one dot product (``k x d_head`` multiply-adds per row)
plus the hooks that copy the heads' outputs. This benchmark measures what it really costs:

* ``hooked``: ``guard.generate(model, batch, 64, policy="refuse")`` against ``model.generate_tokens(batch,
  64)`` at batch 1 and 8, with a guard of k = 32 heads (all heads when the model has fewer). Target: ratio
  <= 1.02. The floor is 1.00; the dot product alone (``guard.score_features``) is timed and reported as a
  fraction of unguarded generation, which is what a perfect implementation would add;
* ``hf``: plain Hugging Face ``generate`` with ``guard.attach_hf`` (``o_proj`` pre-hooks and a logits
  processor) against plain ``generate`` on the same weights;
* ``concurrent``: N threads (``--concurrency``, default 1,2,4) sharing one model, each calling
  ``guard.generate(model, batch, new_tokens, policy="refuse")`` on its own prepared batches, against one
  thread doing the same calls one after another (interleaved, as every A/B here). Reported: prompts per
  second of each side and ``ratio`` = threaded / sequential throughput. Hooked forwards of one model hold
  the model's lock (``model_adapters.concurrency``), so the threads run one at a time: the ratio should be
  about 1.0 (no speed-up, no loss); below 1.0 is the cost of the lock and the thread switches. Every
  threaded result (texts, flagged, scores) must equal the sequential one: ``same_output``. This row uses the
  fitted guard with its own bias (real scores, some rows flagged), not the silenced one.

In ``hooked`` and ``hf`` both sides must decode the same tokens, so the guard flags nothing: it is fitted on real activations, then its
bias is set to -1e4 (every score is ~0; the scoring work is the same as for any guard). Both sides decode the
full budget: ``stop_at_eos=False`` for ``generate_tokens``, and the benchmark models never choose the
end-of-sequence token (``models.suppress_eos``). The benchmark checks that both sides produce the same text.

``--backend`` (default ``hf``) is the ``load_vlm`` backend of the model both ``hooked`` sides and the
``concurrent`` row run on: ``hf`` (Hugging Face's own ``generate``, hook points wired only while hooks are
open) or ``bridge`` (TransformerLens' bridge and its decoding loop). The ``hf`` path does not depend on it.

Run: ``python benchmarks/bench_guard.py --size mid`` (``--smoke`` for a quick check).
"""

from __future__ import annotations

import argparse
import copy
import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from cli_args import (
    GenerationDefaults,
    add_backend_option,
    add_generation_options,
    base_parser,
    model_from_args,
    parse_generation_args,
)
from measure import Timing
from models import BenchModel
from reporting import format_table, pair_range, publish, verdict
from samples import bench_samples

from model_adapters import VLMInputs
from sahs_lens.activations import collect_head_activations
from sahs_lens.evaluation import time_call
from sahs_lens.guard import SafetyHeadGuard
from sahs_lens.heads import Head, HeadSet

BENCH = "guard"
TARGET = 1.02
# size -> (new tokens, batch sizes, training samples, repeats)
DEFAULTS: dict[str, GenerationDefaults] = {
    "tiny": (64, (1, 8), 16, 7),
    "mid": (64, (1, 8), 8, 3),
    "llava7b": (64, (1, 8), 32, 5),
}
SMOKE = (8, (1, 4), 8, 2)
# size -> (new tokens, calls per thread) of the concurrent row; each call is one batch of --concurrent-batch
CONCURRENT: dict[str, tuple[int, int]] = {"tiny": (64, 2), "mid": (16, 1), "llava7b": (64, 2)}
CONCURRENT_SMOKE = (8, 1)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = base_parser("guarded vs unguarded generation (HookedVLM and plain Hugging Face)")
    add_generation_options(parser, "comma-separated batch sizes (default 1,8)")
    add_backend_option(parser)
    parser.add_argument("--k", type=int, default=32, help="safety heads in the guard (default 32)")
    parser.add_argument("--n-train", type=int, default=None, help="samples the guard is fitted on")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face generate comparison")
    parser.add_argument(
        "--concurrency", default="1,2,4",
        help="comma-separated thread counts of the concurrent row (default 1,2,4; not torch's --threads)",
    )  # fmt: skip
    parser.add_argument("--concurrent-tokens", type=int, default=None, help="new tokens per concurrent call")
    parser.add_argument("--concurrent-calls", type=int, default=None, help="guard.generate calls per thread")
    parser.add_argument("--concurrent-batch", type=int, default=1, help="prompts per concurrent call (1)")
    parser.add_argument("--no-concurrent", action="store_true", help="skip the concurrent row")
    args = parse_generation_args(parser, argv, DEFAULTS, SMOKE, "n_train")
    tokens, calls = CONCURRENT_SMOKE if args.smoke else CONCURRENT[args.size]
    args.concurrency = [int(n) for n in str(args.concurrency).split(",")] if not args.no_concurrent else []
    args.concurrent_tokens = args.concurrent_tokens or tokens
    args.concurrent_calls = args.concurrent_calls or calls
    return args


def pick_heads(n_layers: int, n_heads: int, k: int, seed: int) -> HeadSet:
    """``k`` heads drawn at random (all heads when the model has fewer): cost does not depend on which."""
    every = [Head(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    return HeadSet(random.Random(seed).sample(every, min(k, len(every))))


def fitted_guard(bm: BenchModel, heads: HeadSet, n_train: int) -> SafetyHeadGuard:
    """A guard fitted on real activations of the bench prompts (its scores are real; it flags some rows)."""
    train = bench_samples(n_train, bm.size.image_size)
    acts = collect_head_activations(bm.vlm, train, batch_size=min(8, n_train), heads=heads, progress=False)
    return SafetyHeadGuard.fit(acts, heads)


def silenced(guard: SafetyHeadGuard) -> SafetyHeadGuard:
    """A copy of ``guard`` whose bias is pushed to -1e4, so it flags no prompt (same scoring work)."""
    silent = copy.copy(guard)
    silent.bias = -1e4
    return silent


def hooked_pair(
    bm: BenchModel, guard: SafetyHeadGuard, batch: VLMInputs, new_tokens: int
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    def guarded() -> Any:
        return guard.generate(bm.vlm, batch, new_tokens, policy="refuse", stop_at_eos=False)

    def plain() -> Any:
        return bm.vlm.generate_tokens(batch, new_tokens, stop_at_eos=False)

    return guarded, plain


def hf_pair(
    bm: BenchModel, guard: SafetyHeadGuard, batch: VLMInputs, new_tokens: int
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    inputs = bm.raw_inputs(batch)

    def plain() -> Any:
        return bm.raw_generate(inputs, new_tokens)

    def guarded() -> Any:
        with torch.no_grad(), guard.attach_hf(bm.raw, tokenizer=bm.vlm.tokenizer) as session:
            return bm.raw_generate(inputs, new_tokens, logits_processor=[session.logits_processor])

    return guarded, plain


def check_same(path: str, guarded: Any, plain: Any, batch: VLMInputs, new_tokens: int) -> bool:
    """Both sides decoded the same, full-length output and the guard flagged nothing."""
    if path == "hooked":
        return (
            not any(guarded.flagged) and guarded.texts == plain.texts and plain.tokens.shape[1] == new_tokens
        )
    return bool(torch.equal(guarded, plain)) and plain.shape[1] == batch.input_ids.shape[1] + new_tokens


def dot_product_s(guard: SafetyHeadGuard, batch_size: int, device: torch.device, sync: Any) -> float:
    """Median time of the guard's scoring alone (``score_features`` on ``[batch, k * d_head]``)."""
    x = torch.randn(batch_size, len(guard.heads) * guard.d_head, device=device)
    return time_call(lambda: guard.score_features(x), repeats=50, warmup=5, sync=sync).median


def run_threads(work: Callable[[int], Any], n: int) -> list[Any]:
    """``[work(0), ..., work(n - 1)]``, each in its own thread, all released together; re-raises a failure."""
    results: list[Any] = [None] * n
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,), name=f"bench-guard-{i}") for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def concurrent_rows(args: argparse.Namespace, bm: BenchModel, guard: SafetyHeadGuard) -> list[dict[str, Any]]:
    """Throughput of N threads sharing one model against one thread doing the same calls in turn."""
    timing = Timing(args.repeats, sync=bm.sync())
    calls, per_call, tokens = args.concurrent_calls, args.concurrent_batch, args.concurrent_tokens
    prompts = bench_samples(max(args.concurrency) * calls * per_call, bm.size.image_size)
    chunks = [prompts[j * per_call : (j + 1) * per_call] for j in range(len(prompts) // per_call)]
    rows = []
    for n in args.concurrency:
        # thread i's calls: its own prepared batches, prepared once, outside the timing
        batches = [[bm.prepare(chunks[i * calls + c]) for c in range(calls)] for i in range(n)]

        def work(i: int, batches: list[list[VLMInputs]] = batches) -> list[Any]:
            generate = guard.generate
            return [generate(bm.vlm, b, tokens, policy="refuse", stop_at_eos=False) for b in batches[i]]

        runs: dict[str, list[list[list[Any]]]] = {"sequential": [], "threaded": []}  # every run's results

        def sequential(n: int = n, work: Callable[[int], Any] = work, runs: dict[str, Any] = runs) -> None:
            runs["sequential"].append([work(i) for i in range(n)])

        def threaded(n: int = n, work: Callable[[int], Any] = work, runs: dict[str, Any] = runs) -> None:
            runs["threaded"].append(run_threads(work, n))

        cmp = timing.compare(sequential, threaded)  # ratio = time(sequential) / time(threaded)
        reference = runs["sequential"][0]
        same = all(run == reference for run in runs["threaded"] + runs["sequential"])
        outs = [out for thread in reference for out in thread]
        total = n * calls * per_call
        rows.append(
            {
                "path": "concurrent",
                "threads": n,
                "batch": per_call,
                "calls_per_thread": calls,
                "new_tokens": tokens,
                "prompts": total,
                "sequential_s": cmp.wall.a_median,
                "threaded_s": cmp.wall.b_median,
                "sequential_pps": total / cmp.wall.a_median,
                "threaded_pps": total / cmp.wall.b_median,
                **cmp.row(),
                "flagged": sum(sum(out.flagged) for out in outs),
                "nonfinite": sum(out.nonfinite for out in outs),
                "threaded_runs_checked": len(runs["threaded"]),
                "same_output": same,
            }
        )
    return rows


def measure(args: argparse.Namespace, bm: BenchModel, guard: SafetyHeadGuard) -> list[dict[str, Any]]:
    timing = Timing(args.repeats, sync=bm.sync())
    prompts = bench_samples(max(args.batches), bm.size.image_size)
    paths = {"hooked": hooked_pair} if args.no_hf else {"hooked": hooked_pair, "hf": hf_pair}
    rows = []
    for batch_size in args.batches:
        batch = bm.prepare(prompts[:batch_size])
        dot = dot_product_s(guard, batch_size, bm.vlm.device, bm.sync())
        for path, make in paths.items():
            cmp = timing.compare(*make(bm, guard, batch, args.new_tokens))
            rows.append(
                {
                    "path": path,
                    "batch": batch_size,
                    "guarded_s": cmp.wall.a_median,
                    "plain_s": cmp.wall.b_median,
                    **cmp.row(),
                    "target": TARGET,
                    "met": cmp.ratio <= TARGET,
                    "dot_ms": dot * 1e3,
                    "dot_fraction": dot / cmp.wall.b_median,
                    "same_output": check_same(path, cmp.a_last, cmp.b_last, batch, args.new_tokens),
                }
            )
    return rows


TABLE = [
    ("path", "path"),
    ("batch", "batch"),
    ("plain_s", "plain s"),
    ("guarded_s", "guarded s"),
    ("ratio", "ratio"),
    ("pairs", "pairs"),
    ("cpu_ratio", "cpu ratio"),
    ("dot_ms", "dot ms"),
    ("dot_pct", "dot %"),
    ("same_output", "same out"),
]


CONCURRENT_TABLE = [
    ("threads", "threads"),
    ("prompts", "prompts"),
    ("sequential_pps", "seq prompts/s"),
    ("threaded_pps", "threaded prompts/s"),
    ("ratio", "ratio"),
    ("pairs", "pairs"),
    ("cpu_ratio", "cpu ratio"),
    ("flagged", "flagged"),
    ("same_output", "same out"),
]


def render_concurrent(result: dict[str, Any]) -> list[str]:
    rows = result.get("concurrent") or []
    if not rows:
        return []
    first = rows[0]
    return [
        "",
        "concurrent: N threads share one model, each guard.generate(policy='refuse') on its own batches\n"
        f"({first['calls_per_thread']} call(s) per thread, batch {first['batch']}, {first['new_tokens']} new "
        "tokens), against one thread doing the same calls in turn",
        format_table([{**row, "pairs": pair_range(row)} for row in rows], CONCURRENT_TABLE),
        "ratio: threaded / sequential throughput (median of interleaved pairs). Hooked forwards of one model hold\n"
        "its lock, so the threads run one at a time: ~1.0 = no speed-up and no loss; below 1.0 = lock and thread\n"
        "overhead. same out: every threaded result (texts, flagged, scores) equals the sequential one",
    ]


def render(result: dict[str, Any]) -> str:
    s, h = result["settings"], result["headline"]
    rows = [
        {**row, "dot_pct": f"{100 * row['dot_fraction']:.4f}", "pairs": pair_range(row)}
        for row in result["rows"]
    ]
    lines = [
        f"bench_guard: size {s['size']}, {h['backend']} backend, {s['new_tokens']} new tokens, guard of {h['k']} heads, "
        f"{s['repeats']} interleaved runs per pair (median of per-pair ratios)",
        f"HEADLINE guarded / unguarded generation (HookedVLM) = {h['ratio_worst']:.3f} at worst "
        f"(target <= {TARGET}: {verdict(h['met'])}; floor 1.00, floor + dot product {h['floor_with_dot']:.4f})",
        "",
        format_table(rows, TABLE),
        "path: hooked = guard.generate vs HookedVLM.generate_tokens; hf = HF generate + guard.attach_hf vs plain HF\n"
        "generate. ratio: median of interleaved pairs (pairs: lowest-highest); cpu ratio: the same from process CPU\n"
        "time (steadier on a busy CPU machine); dot ms / dot %: guard.score_features alone, and as a share of plain",
        *render_concurrent(result),
    ]
    return "\n".join(lines)


def headline(
    rows: list[dict[str, Any]], k: int, concurrent: list[dict[str, Any]], backend: str
) -> dict[str, Any]:
    hooked = [row for row in rows if row["path"] == "hooked"]
    worst = max(row["ratio"] for row in hooked)
    out: dict[str, Any] = {
        "backend": backend,
        "k": k,
        "ratio_worst": worst,
        "ratio_by_batch": {str(row["batch"]): row["ratio"] for row in hooked},
        "target": f"<= {TARGET}",
        "met": worst <= TARGET,
        "floor": 1.0,
        "floor_with_dot": 1.0 + max(row["dot_fraction"] for row in hooked),
        "same_output": all(row["same_output"] for row in rows + concurrent),
    }
    hf = [row for row in rows if row["path"] == "hf"]
    if hf:
        out["hf_ratio_by_batch"] = {str(row["batch"]): row["ratio"] for row in hf}
    if concurrent:
        out["concurrent_ratio_by_threads"] = {str(row["threads"]): row["ratio"] for row in concurrent}
        out["concurrent_same_output"] = all(row["same_output"] for row in concurrent)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bm = model_from_args(args)
    heads = pick_heads(bm.vlm.cfg.n_layers, bm.vlm.cfg.n_heads, args.k, args.seed)
    guard = fitted_guard(bm, heads, args.n_train)
    rows = measure(args, bm, silenced(guard))
    concurrent = concurrent_rows(args, bm, guard) if args.concurrency else []
    extra = {"heads": heads.to_list(), "concurrent": concurrent}
    return publish(
        BENCH,
        args,
        model=bm,
        headline=headline(rows, len(heads), concurrent, bm.vlm.backend),
        rows=rows,
        render=render,
        extra=extra,
    )


if __name__ == "__main__":
    main()
