"""Adapter overhead: ``HookedVLM`` against raw Hugging Face on the same weights, with no hooks attached.

Everything sahs_lens does goes through ``HookedVLM``: a TransformerLens ``TransformerBridge`` around the live
Hugging Face model, which adds a ``HookPoint`` (an identity module) at every named activation and runs its
own decoding loop with a KV cache. This benchmark measures what that wrapping costs when no hook is attached:

* ``forward``: ``model(batch)`` against the Hugging Face forward with the same ids, mask, ``position_ids``
  and pixel values;
* ``generate``: ``model.generate_tokens(batch, 64)`` against Hugging Face ``generate(do_sample=False,
  max_new_tokens=64)`` with the same left-padded inputs, at batch 1 and 8. Both decode all 64 tokens (the
  benchmark models never choose the end-of-sequence token) and the benchmark checks they are the same tokens.

Target: ratio <= 1.10 on a GPU at full size (llava7b). On a CPU, and at the tiny size above all, the ratio shows
the Python cost of the wrapping per call. ``--profile`` adds a cProfile of both sides of one generate call
(top functions by own time), to see where the time goes.

The raw side is a pristine twin of the wrapped model that shares its parameters (``models.raw_twin``): the
bridge replaces the Hugging Face modules of the model it wraps, so ``model.hf_model`` itself is no longer raw.

Run: ``python benchmarks/bench_adapter.py --size mid`` (``--smoke`` for a quick check).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
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

BENCH = "adapter"
TARGET = 1.10
# size -> (new tokens, generate batch sizes, forward batch size, repeats)
DEFAULTS: dict[str, GenerationDefaults] = {
    "tiny": (64, (1, 8), 8, 7),
    "mid": (64, (1, 8), 8, 3),
    "llava7b": (64, (1, 8), 8, 5),
}
SMOKE = (8, (1, 4), 4, 2)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = base_parser("HookedVLM forward and generate against raw Hugging Face on the same weights")
    add_generation_options(parser, "comma-separated generate batch sizes (default 1,8)")
    parser.add_argument("--forward-batch", type=int, default=None, help="forward batch size (default 8)")
    parser.add_argument("--profile", action="store_true", help="cProfile one generate call of each side")
    return parse_generation_args(parser, argv, DEFAULTS, SMOKE, "forward_batch")


Pair = tuple[Callable[[], Any], Callable[[], Any]]


def forward_pair(bm: BenchModel, batch: VLMInputs, new_tokens: int) -> Pair:
    kwargs = bm.raw_inputs(batch, position_ids=True)

    def raw() -> Any:
        with torch.no_grad():
            return bm.raw(**kwargs).logits

    return (lambda: bm.vlm(batch)), raw


def generate_pair(bm: BenchModel, batch: VLMInputs, new_tokens: int) -> Pair:
    inputs = bm.raw_inputs(batch)

    def raw() -> Any:
        return bm.raw_generate(inputs, new_tokens)

    return (lambda: bm.vlm.generate_tokens(batch, new_tokens)), raw


def parity(kind: str, hooked: Any, raw: Any, batch: VLMInputs, new_tokens: int) -> dict[str, Any]:
    """What the two sides' outputs say: same tokens (generate) or the largest logit difference (forward)."""
    if kind == "forward":
        real = batch.attention_mask.bool()
        return {"max_abs_logit_diff": float((hooked.float() - raw.float())[real].abs().max())}
    new = raw[:, batch.input_ids.shape[1] :]
    return {
        "same_tokens": bool(torch.equal(hooked.tokens, new)),
        "new_tokens": [int(hooked.tokens.shape[1]), int(new.shape[1])],
        "full_length": hooked.tokens.shape[1] == new.shape[1] == new_tokens,
    }


def profile(fn: Callable[[], Any], top: int = 25) -> str:
    """cProfile of one call of ``fn``: the ``top`` functions by own time."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def cases(args: argparse.Namespace) -> list[tuple[str, int]]:
    return [("forward", args.forward_batch)] + [("generate", b) for b in args.batches]


def measure(args: argparse.Namespace, bm: BenchModel) -> tuple[list[dict[str, Any]], dict[str, str]]:
    timing = Timing(args.repeats, sync=bm.sync())
    prompts = bench_samples(max(b for _, b in cases(args)), bm.size.image_size)
    makers = {"forward": forward_pair, "generate": generate_pair}
    rows, profiles = [], {}
    for kind, batch_size in cases(args):
        batch = bm.prepare(prompts[:batch_size])
        hooked, raw = makers[kind](bm, batch, args.new_tokens)
        cmp = timing.compare(hooked, raw)
        rows.append(
            {
                "kind": kind,
                "batch": batch_size,
                "tokens": int(batch.input_ids.shape[1]),
                "raw_s": cmp.wall.b_median,
                "hooked_s": cmp.wall.a_median,
                **cmp.row(),
                "target": TARGET,
                "met": cmp.ratio <= TARGET,
                **parity(kind, cmp.a_last, cmp.b_last, batch, args.new_tokens),
            }
        )
        if args.profile and kind == "generate":
            profiles[f"generate-b{batch_size}-hooked"] = profile(hooked)
            profiles[f"generate-b{batch_size}-raw"] = profile(raw)
    return rows, profiles


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    worst = max(rows, key=lambda row: row["ratio"])
    return {
        "ratio_worst": worst["ratio"],
        "worst_case": f"{worst['kind']} batch {worst['batch']}",
        "ratios": {f"{row['kind']}-b{row['batch']}": row["ratio"] for row in rows},
        "target": f"<= {TARGET} (GPU, llava7b)",
        "met": worst["ratio"] <= TARGET,
        "parity": all(row.get("same_tokens", True) and row.get("full_length", True) for row in rows),
    }


TABLE = [
    ("kind", "call"),
    ("batch", "batch"),
    ("tokens", "prompt len"),
    ("raw_s", "HF s"),
    ("hooked_s", "HookedVLM s"),
    ("ratio", "ratio"),
    ("pairs", "pairs"),
    ("cpu_ratio", "cpu ratio"),
    ("check", "check"),
]


def render(result: dict[str, Any]) -> str:
    s, h = result["settings"], result["headline"]
    rows = []
    for row in result["rows"]:
        if row["kind"] == "forward":
            check = f"max|dlogit| {row['max_abs_logit_diff']:.1e}"
        else:
            check = "same tokens" if row["same_tokens"] else "TOKENS DIFFER"
        rows.append({**row, "check": check, "pairs": pair_range(row)})
    lines = [
        f"bench_adapter: size {s['size']}, generate {s['new_tokens']} new tokens, "
        f"{s['repeats']} interleaved runs per pair (median of per-pair ratios)",
        f"HEADLINE HookedVLM / raw Hugging Face = {h['ratio_worst']:.3f} at worst ({h['worst_case']}; "
        f"target <= {TARGET} on a GPU at llava7b: {verdict(h['met'])} here)",
        "",
        format_table(rows, TABLE),
        "ratio: median of interleaved pairs (pairs: lowest-highest); cpu ratio: the same from process CPU time\n"
        "(steadier on a busy CPU machine); check: the two sides' outputs agree",
    ]
    for name, text in result.get("profiles", {}).items():
        lines += ["", f"--- cProfile {name} (top by own time)", text.strip()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bm = model_from_args(args)
    rows, profiles = measure(args, bm)
    extra = {"profiles": profiles} if profiles else {}
    return publish(BENCH, args, model=bm, headline=headline(rows), rows=rows, render=render, extra=extra)


if __name__ == "__main__":
    main()
