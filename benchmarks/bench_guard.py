"""Guard overhead: guarded against unguarded generation of the same tokens on the same model.

``SafetyHeadGuard`` reads its safety heads' ``hook_z`` at the decision position inside the prefill forward
that produces the first token, so guarding should cost one dot product (``k x d_head`` multiply-adds per row)
plus the hooks that copy the heads' outputs. This benchmark measures what it really costs:

* ``hooked``: ``guard.generate(model, batch, 64, policy="refuse")`` against ``model.generate_tokens(batch,
  64)`` at batch 1 and 8, with a guard of k = 32 heads (all heads when the model has fewer). Target: ratio
  <= 1.02. The floor is 1.00; the dot product alone (``guard.score_features``) is timed and reported as a
  fraction of unguarded generation, which is what a perfect implementation would add;
* ``hf``: plain Hugging Face ``generate`` with ``guard.attach_hf`` (``o_proj`` pre-hooks and a logits
  processor) against plain ``generate`` on the same weights.

Both sides must decode the same tokens, so the guard flags nothing: it is fitted on real activations, then its
bias is set to -1e4 (every score is ~0; the scoring work is the same as for any guard). Both sides decode the
full budget: ``stop_at_eos=False`` for ``generate_tokens``, and the benchmark models never choose the
end-of-sequence token (``models.suppress_eos``). The benchmark checks that both sides produce the same text.

Run: ``python benchmarks/bench_guard.py --size mid`` (``--smoke`` for a quick check).
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from cli_args import (
    GenerationDefaults,
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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = base_parser("guarded vs unguarded generation (HookedVLM and plain Hugging Face)")
    add_generation_options(parser, "comma-separated batch sizes (default 1,8)")
    parser.add_argument("--k", type=int, default=32, help="safety heads in the guard (default 32)")
    parser.add_argument("--n-train", type=int, default=None, help="samples the guard is fitted on")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face generate comparison")
    return parse_generation_args(parser, argv, DEFAULTS, SMOKE, "n_train")


def pick_heads(n_layers: int, n_heads: int, k: int, seed: int) -> HeadSet:
    """``k`` heads drawn at random (all heads when the model has fewer): cost does not depend on which."""
    every = [Head(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    return HeadSet(random.Random(seed).sample(every, min(k, len(every))))


def silent_guard(bm: BenchModel, heads: HeadSet, n_train: int) -> SafetyHeadGuard:
    """A guard fitted on real activations whose bias is pushed to -1e4, so it flags no prompt."""
    train = bench_samples(n_train, bm.size.image_size)
    acts = collect_head_activations(bm.vlm, train, batch_size=min(8, n_train), heads=heads, progress=False)
    guard = SafetyHeadGuard.fit(acts, heads)
    guard.bias = -1e4
    return guard


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


def render(result: dict[str, Any]) -> str:
    s, h = result["settings"], result["headline"]
    rows = [
        {**row, "dot_pct": f"{100 * row['dot_fraction']:.4f}", "pairs": pair_range(row)}
        for row in result["rows"]
    ]
    lines = [
        f"bench_guard: size {s['size']}, {s['new_tokens']} new tokens, guard of {h['k']} heads, "
        f"{s['repeats']} interleaved runs per pair (median of per-pair ratios)",
        f"HEADLINE guarded / unguarded generation (HookedVLM) = {h['ratio_worst']:.3f} at worst "
        f"(target <= {TARGET}: {verdict(h['met'])}; floor 1.00, floor + dot product {h['floor_with_dot']:.4f})",
        "",
        format_table(rows, TABLE),
        "path: hooked = guard.generate vs HookedVLM.generate_tokens; hf = HF generate + guard.attach_hf vs plain HF\n"
        "generate. ratio: median of interleaved pairs (pairs: lowest-highest); cpu ratio: the same from process CPU\n"
        "time (steadier on a busy CPU machine); dot ms / dot %: guard.score_features alone, and as a share of plain",
    ]
    return "\n".join(lines)


def headline(rows: list[dict[str, Any]], k: int) -> dict[str, Any]:
    hooked = [row for row in rows if row["path"] == "hooked"]
    worst = max(row["ratio"] for row in hooked)
    out: dict[str, Any] = {
        "k": k,
        "ratio_worst": worst,
        "ratio_by_batch": {str(row["batch"]): row["ratio"] for row in hooked},
        "target": f"<= {TARGET}",
        "met": worst <= TARGET,
        "floor": 1.0,
        "floor_with_dot": 1.0 + max(row["dot_fraction"] for row in hooked),
        "same_output": all(row["same_output"] for row in rows),
    }
    hf = [row for row in rows if row["path"] == "hf"]
    if hf:
        out["hf_ratio_by_batch"] = {str(row["batch"]): row["ratio"] for row in hf}
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bm = model_from_args(args)
    heads = pick_heads(bm.vlm.cfg.n_layers, bm.vlm.cfg.n_heads, args.k, args.seed)
    guard = silent_guard(bm, heads, args.n_train)
    rows = measure(args, bm, guard)
    extra = {"heads": heads.to_list()}
    return publish(
        BENCH, args, model=bm, headline=headline(rows, len(heads)), rows=rows, render=render, extra=extra
    )


if __name__ == "__main__":
    main()
