"""Detector cost side by side: what each detector of ``sahs-lens compare`` adds to the prefill forward.

Every detector but ``text_only`` reads the model, and all but ``model_refusal`` read it inside the prefill
forward that produces the first answer token, so their cost should be a few hooks and a small score. This
benchmark measures it, detector by detector, on the same model and prompts:

* A: what the detector does for a batch at inference: prepare the batch, one forward with the hooks its
  signal needs (``collect_signals``, the full forward, as in guarded generation) and its score; for
  ``text_only`` only its score (it never runs the model); for ``model_refusal`` a greedy answer of
  ``--new-tokens`` tokens and the refusal judge;
* B: prepare the batch and one plain forward (the prefill the model runs anyway).

Reported per detector and batch: ``ratio`` = time(A) / time(B) (median of interleaved pairs),
``ms_per_prompt`` = (A - B) per prompt (what the detector adds; negative = within noise), and
``extra_forwards`` (forward passes before its decision exists). Detectors are fitted first on
``--n-train`` real prompts (``samples.bench_samples``) so their scores are real.

Run: ``python benchmarks/bench_detectors.py --size mid --json auto`` (``--smoke`` for a quick check).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from cli_args import base_parser, fill_defaults, model_from_args, resolve_args
from measure import Timing
from models import BenchModel
from reporting import format_table, pair_range, publish
from samples import bench_samples

from sahs_lens.detectors import DEFAULT_DETECTORS, collect_signals, make_detector

BENCH = "detectors"
# size -> (batch sizes, training prompts, repeats, new tokens of model_refusal)
DEFAULTS: dict[str, tuple[tuple[int, ...], int, int, int]] = {
    "tiny": ((1, 8), 32, 7, 24),
    "mid": ((1, 8), 32, 3, 24),
    "llava7b": ((1, 8), 64, 5, 24),
}
SMOKE = ((2,), 16, 2, 4)
COLUMNS = (
    ("detector", "detector"), ("batch", "batch"), ("extra_forwards", "extra fwd"), ("detector_s", "A (s)"),
    ("plain_s", "B plain (s)"), ("ratio", "A/B"), ("pairs", "pairs"), ("ms_per_prompt", "ms/prompt added"),
)  # fmt: skip


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = base_parser("each detector's inference against the plain prefill forward")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8)")
    parser.add_argument("--n-train", type=int, default=None, help="prompts the detectors are fitted on")
    parser.add_argument("--new-tokens", type=int, default=None, help="answer length of model_refusal")
    parser.add_argument("--detectors", default=",".join(DEFAULT_DETECTORS), help="comma-separated detectors")
    args = resolve_args(parser.parse_args(argv))
    batches, n_train, repeats, tokens = SMOKE if args.smoke else DEFAULTS[args.size]
    args.batches = [int(b) for b in args.batches.split(",")] if args.batches else list(batches)
    fill_defaults(args, n_train=n_train, repeats=repeats, new_tokens=tokens)
    args.detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    return args


def fitted(bm: BenchModel, names: list[str], n_train: int, k: int) -> dict[str, Any]:
    train = bench_samples(n_train, bm.size.image_size)
    signals = collect_signals(
        bm.vlm, train, needs={"z", "resid", "logits", "lens"}, batch_size=8, progress=False
    )
    out = {}
    for name in names:
        out[name] = make_detector(name, k=k, seed=0, shots=(1, 2, 4), repeats=3, draws=3).fit(signals)
    return out


def detector_call(bm: BenchModel, detector: Any, samples: list[Any], new_tokens: int) -> Callable[[], Any]:
    model = bm.vlm
    if detector.name == "text_only":
        from sahs_lens.detectors import Signals

        return lambda: detector.score(Signals(samples))
    if detector.name == "model_refusal":
        return lambda: detector.score(
            collect_signals(
                model,
                samples,
                needs={"answers"},
                batch_size=len(samples),
                max_new_tokens=new_tokens,
                progress=False,
            )  # fmt: skip
        )
    needs = set(detector.needs) | {"logits"}  # the full forward, as the prefill of a guarded generation
    return lambda: detector.score(
        collect_signals(model, samples, needs=needs, batch_size=len(samples), progress=False)
    )


def plain_call(bm: BenchModel, samples: list[Any]) -> Callable[[], Any]:
    model = bm.vlm
    return lambda: model(model.prepare([s.prompt for s in samples], images=[s.image for s in samples]))


def measure(args: argparse.Namespace, bm: BenchModel, detectors: dict[str, Any]) -> list[dict[str, Any]]:
    timing = Timing(args.repeats, sync=bm.sync())
    rows = []
    for batch in args.batches:
        samples = bench_samples(batch, bm.size.image_size)
        for name, detector in detectors.items():
            result = timing.compare(
                detector_call(bm, detector, samples, args.new_tokens), plain_call(bm, samples)
            )
            a, b = result.wall.a_median, result.wall.b_median
            extra = args.new_tokens - 1 if name == "model_refusal" else detector.extra_forwards
            rows.append({
                "detector": name, "batch": batch, "extra_forwards": extra, "detector_s": a, "plain_s": b,
                "ms_per_prompt": 1000 * (a - b) / batch, **result.row(),
            })  # fmt: skip
            print(f"  {name} batch {batch}: ratio {result.ratio:.3f}", flush=True)
    return rows


def render(result: dict[str, Any]) -> str:
    s = result["settings"]
    rows = [{**row, "pairs": pair_range(row)} for row in result["rows"]]
    return "\n".join([
        f"bench_detectors: size {s['size']}, detectors fitted on {s['n_train']} prompts, model_refusal answers "
        f"{s['new_tokens']} tokens",
        "A: prepare + one forward with the detector's hooks + its score (text_only: its score only; model_refusal:\n"
        "a greedy answer + the judge); B: prepare + one plain forward. ratio: median of interleaved pairs",
        format_table(rows, COLUMNS),
    ])  # fmt: skip


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {f"{r['detector']}@{r['batch']}": r["ratio"] for r in rows}
    in_prefill = [r["ratio"] for r in rows if r["extra_forwards"] == 0 and r["detector"] != "text_only"]
    return {
        "ratio_by_detector_batch": by,
        "ms_per_prompt_by_detector_batch": {
            f"{r['detector']}@{r['batch']}": r["ms_per_prompt"] for r in rows
        },
        "extra_forwards": {r["detector"]: r["extra_forwards"] for r in rows},
        "worst_in_prefill_ratio": max(in_prefill) if in_prefill else None,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bm = model_from_args(args)
    k = min(8, bm.vlm.cfg.n_layers * bm.vlm.cfg.n_heads)
    detectors = fitted(bm, args.detectors, args.n_train, k)
    rows = measure(args, bm, detectors)
    return publish(BENCH, args, model=bm, headline=headline(rows), rows=rows, render=render)


if __name__ == "__main__":
    main()
