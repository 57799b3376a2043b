"""Adapter overhead: ``HookedVLM`` on each backend against raw Hugging Face on the same weights, no hooks.

Everything sahs_lens does goes through ``HookedVLM``, on one of two backends (``load_vlm(..., backend=)``):
``hf``, the plain Hugging Face model with TransformerLens ``HookPoint`` s wired in only while a hook context
is open, generating through Hugging Face's own ``generate``; and ``bridge``, TransformerLens'
``TransformerBridge`` (a ``HookPoint`` at every named activation) with our own KV-cache decoding loop. This
benchmark measures, side by side in one run, what each costs when no hook is attached:

* ``forward``: ``model(batch)`` against the Hugging Face forward with the same ids, mask, ``position_ids``,
  pixel values and ``use_cache=False`` (what ``HookedVLM`` passes);
* ``generate``: ``model.generate_tokens(batch, 64)`` against Hugging Face ``generate(do_sample=False,
  max_new_tokens=64)`` with the same left-padded inputs, at batch 1 and 8. Both decode all 64 tokens (the
  benchmark models never choose the end-of-sequence token).

Every row carries its parity flag, computed from that row's outputs (never assumed): ``parity`` is
``same_logits`` (forward: the largest logit difference over real positions within ``LOGIT_TOL`` of the
dtype) or ``same_tokens and full_length`` (generate: token-identical to Hugging Face, 64 tokens each).

Targets: ``hf`` backend / raw HF <= 1.02 at every size (it is Hugging Face plus a handful of hooks that
return at once); ``bridge`` / raw HF <= 1.10 on a GPU at full size (llava7b); on a CPU, and at the tiny size
above all, the bridge's ratio shows the Python cost of its wrapping. ``--backends`` picks the backends
(default ``hf,bridge``). ``--profile`` adds a cProfile of both sides of one generate call (top functions by
own time), to see where the time goes.

The raw side is a pristine twin that shares the parameters (``models.raw_twin``), and each backend wraps its
own twin: the bridge replaces the Hugging Face modules of the model it wraps, so its ``hf_model`` is no
longer raw.

Run: ``python benchmarks/bench_adapter.py --size mid`` (``--smoke`` for a quick check).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
from collections.abc import Callable, Sequence
from typing import Any

import torch
from cli_args import (
    GenerationDefaults,
    add_backend_option,
    add_generation_options,
    base_parser,
    model_from_args,
    parse_backends,
    parse_generation_args,
)
from measure import Timing
from models import BenchModel
from reporting import format_table, pair_range, publish, verdict
from samples import bench_samples

from model_adapters import HookedVLM, VLMInputs

BENCH = "adapter"
TARGETS = {"hf": 1.02, "bridge": 1.10}
TARGET_WHERE = {"hf": "every size", "bridge": "GPU, llava7b"}
# largest |logit difference| that still counts as the same logits, by dtype (float32: the parity tests' 1e-5)
LOGIT_TOL = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 5e-2}
# size -> (new tokens, generate batch sizes, forward batch size, repeats)
DEFAULTS: dict[str, GenerationDefaults] = {
    "tiny": (64, (1, 8), 8, 7),
    "mid": (64, (1, 8), 8, 3),
    "llava7b": (64, (1, 8), 8, 5),
}
SMOKE = (8, (1, 4), 4, 2)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = base_parser("HookedVLM (hf and bridge backends) forward and generate against raw Hugging Face")
    add_generation_options(parser, "comma-separated generate batch sizes (default 1,8)")
    add_backend_option(parser, several=True)
    parser.add_argument("--forward-batch", type=int, default=None, help="forward batch size (default 8)")
    parser.add_argument("--profile", action="store_true", help="cProfile one generate call of each side")
    args = parse_generation_args(parser, argv, DEFAULTS, SMOKE, "forward_batch")
    args.backends = parse_backends(args.backends)
    return args


Pair = tuple[Callable[[], Any], Callable[[], Any]]


def forward_pair(bm: BenchModel, vlm: HookedVLM, batch: VLMInputs, new_tokens: int) -> Pair:
    kwargs = {**bm.raw_inputs(batch, position_ids=True), "use_cache": False}

    def raw() -> Any:
        with torch.no_grad():
            return bm.raw(**kwargs).logits

    return (lambda: vlm(batch)), raw


def generate_pair(bm: BenchModel, vlm: HookedVLM, batch: VLMInputs, new_tokens: int) -> Pair:
    inputs = bm.raw_inputs(batch)

    def raw() -> Any:
        return bm.raw_generate(inputs, new_tokens)

    return (lambda: vlm.generate_tokens(batch, new_tokens)), raw


def parity(kind: str, hooked: Any, raw: Any, batch: VLMInputs, new_tokens: int, dtype: str) -> dict[str, Any]:
    """What the two sides' outputs say, with an explicit ``parity`` flag: the same logits (forward, within
    ``LOGIT_TOL[dtype]``) or the same, full-length tokens (generate)."""
    if kind == "forward":
        real = batch.attention_mask.bool()
        diff = float((hooked.float() - raw.float())[real].abs().max())
        same = diff <= LOGIT_TOL[dtype]
        return {
            "max_abs_logit_diff": diff,
            "logit_tol": LOGIT_TOL[dtype],
            "same_logits": same,
            "parity": same,
        }
    new = raw[:, batch.input_ids.shape[1] :]
    same_tokens = bool(torch.equal(hooked.tokens, new))
    full = bool(hooked.tokens.shape[1] == new.shape[1] == new_tokens)
    return {
        "same_tokens": same_tokens,
        "new_tokens": [int(hooked.tokens.shape[1]), int(new.shape[1])],
        "full_length": full,
        "parity": same_tokens and full,
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
    """Every case on every backend: for each case, one interleaved A/B per backend, one after the other."""
    timing = Timing(args.repeats, sync=bm.sync())
    prompts = bench_samples(max(b for _, b in cases(args)), bm.size.image_size)
    makers = {"forward": forward_pair, "generate": generate_pair}
    rows, profiles = [], {}
    for kind, batch_size in cases(args):
        batch = bm.prepare(prompts[:batch_size])
        for backend in args.backends:
            vlm = bm.on(backend)
            hooked, raw = makers[kind](bm, vlm, batch, args.new_tokens)
            cmp = timing.compare(hooked, raw)
            target = TARGETS[backend]
            rows.append(
                {
                    "backend": vlm.backend,
                    "kind": kind,
                    "batch": batch_size,
                    "tokens": int(batch.input_ids.shape[1]),
                    "raw_s": cmp.wall.b_median,
                    "hooked_s": cmp.wall.a_median,
                    **cmp.row(),
                    "target": target,
                    "target_where": TARGET_WHERE[backend],
                    "met": cmp.ratio <= target,
                    **parity(kind, cmp.a_last, cmp.b_last, batch, args.new_tokens, args.dtype),
                }
            )
            if args.profile and kind == "generate":
                profiles[f"generate-b{batch_size}-{backend}"] = profile(hooked)
                profiles[f"generate-b{batch_size}-raw-vs-{backend}"] = profile(raw)
    return rows, profiles


def headline(rows: list[dict[str, Any]], backends: Sequence[str]) -> dict[str, Any]:
    """Per backend: the worst ratio, its case, whether it met its target, parity; ``ratio_worst`` / ``met`` /
    ``target`` are those of the first backend measured (``hf`` by default)."""
    per: dict[str, dict[str, Any]] = {}
    for backend in backends:
        mine = [row for row in rows if row["backend"] == backend]
        worst = max(mine, key=lambda row: row["ratio"])
        per[backend] = {
            "ratio_worst": worst["ratio"],
            "worst_case": f"{worst['kind']} batch {worst['batch']}",
            "target": f"<= {TARGETS[backend]} ({TARGET_WHERE[backend]})",
            "met": worst["ratio"] <= TARGETS[backend],
            "parity": all(row["parity"] is True for row in mine),
        }
    first = per[backends[0]]
    return {
        "backend": backends[0],
        "ratio_worst": first["ratio_worst"],
        "worst_case": first["worst_case"],
        "target": first["target"],
        "met": first["met"],
        "ratios": {f"{row['backend']}-{row['kind']}-b{row['batch']}": row["ratio"] for row in rows},
        "by_backend": per,
        "parity": all(row["parity"] is True for row in rows),
    }


TABLE = [
    ("backend", "backend"),
    ("kind", "call"),
    ("batch", "batch"),
    ("tokens", "prompt len"),
    ("raw_s", "HF s"),
    ("hooked_s", "HookedVLM s"),
    ("ratio", "ratio"),
    ("pairs", "pairs"),
    ("cpu_ratio", "cpu ratio"),
    ("check", "check"),
    ("parity", "parity"),
]


def render(result: dict[str, Any]) -> str:
    s, h = result["settings"], result["headline"]
    rows = []
    for row in result["rows"]:
        if row["kind"] == "forward":
            check = f"max|dlogit| {row['max_abs_logit_diff']:.1e}"
        else:
            check = "same tokens" if row["same_tokens"] else "TOKENS DIFFER"
            check += "" if row["full_length"] else ", SHORT"
        rows.append(
            {**row, "check": check, "pairs": pair_range(row), "parity": "yes" if row["parity"] else "NO"}
        )
    lines = [
        f"bench_adapter: size {s['size']}, backends {', '.join(s['backends'])}, generate {s['new_tokens']} new "
        f"tokens, {s['repeats']} interleaved runs per pair (median of per-pair ratios)",
        f"HEADLINE HookedVLM / raw Hugging Face = {h['ratio_worst']:.3f} at worst on the {h['backend']} backend "
        f"({h['worst_case']}; target {h['target']}: {verdict(h['met'])})",
    ]
    for backend, b in h["by_backend"].items():
        if backend != h["backend"]:
            lines.append(
                f"  {backend} backend / raw HF = {b['ratio_worst']:.3f} at worst ({b['worst_case']}; target "
                f"{b['target']}: {verdict(b['met'])} here)"
            )
    lines += [
        "",
        format_table(rows, TABLE),
        "ratio: median of interleaved pairs (pairs: lowest-highest); cpu ratio: the same from process CPU time\n"
        "(steadier on a busy CPU machine); check / parity: this row's two outputs agree (logits within the\n"
        "dtype's tolerance, or the same full-length tokens)",
    ]
    for name, text in result.get("profiles", {}).items():
        lines += ["", f"--- cProfile {name} (top by own time)", text.strip()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    bm = model_from_args(args)
    rows, profiles = measure(args, bm)
    extra: dict[str, Any] = {"load_avg_start": load_start}
    if profiles:
        extra["profiles"] = profiles
    return publish(
        BENCH, args, model=bm, headline=headline(rows, args.backends), rows=rows, render=render, extra=extra
    )


if __name__ == "__main__":
    main()
