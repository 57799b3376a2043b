"""Scaling: how the time and memory of collection and probing grow with samples, prompt length and heads.

The other benchmarks measure a ratio at one size; this one measures *growth*. Each sweep varies one axis and
keeps the others fixed, measures every point, and fits the growth exponent ``alpha`` of ``time ~ size^alpha``
by least squares of log(time) on log(size), so the growth law is a number (1 = linear, 2 = quadratic, < 1:
a fixed cost is still being amortised over the range). ``alpha (last two)`` is the slope between the two
largest points only: where the growth is heading once fixed costs are amortised.

Collection (``collect_head_activations`` on a HookedVLM built in memory, as ``models.build_model`` builds
``mid``; every variant is the base ``--size`` shape changed in one field, ``dataclasses.replace``):

* ``samples``: prompts per run at a fixed batch size. Expect alpha = 1: collection is one prefill per batch
  and its output buffer (``n x layers x heads x d_head``) is small, so memory should hardly grow;
* ``image_tokens``: the vision grid (image side / patch side: 2 x 2 ... 24 x 24 patches, 4 ... 576 image
  tokens) at a fixed number of prompts. The size fitted is the *prompt length in tokens* (image tokens plus
  the ~20-30 tokens of text and template), measured on the first batch: what a prefill's cost depends on.
  Linear layers grow linearly with it and eager attention quadratically, so alpha lies between 1 and 2 once
  the per-sample fixed costs (image preprocessing, Python) are amortised, close to 1 while the length is
  small against ~6 x d_model (the attention term's share of a layer's FLOPs is about length / (6 d_model));
* ``heads``: the language model's depth (layers x heads per layer at a fixed d_head), so the number of heads
  read grows with the layers that compute them; the vision tower and the embedding stay fixed, so alpha < 1.

Probing (``probe_sweep`` on synthetic head outputs, ``bench_probes.activation_like``: per-head offsets, a
power-law spectrum and a weak class signal; ``draws`` random training draws per head folded into the problem
count, as a few-shot sweep does, each of N samples from a pool of 2N, so that no two draws share a training
set (with a pool of exactly N every draw would be the same set, and the sweep's warm start from the first
draw would make the other draws free), all scored on a fixed held-out set):

* ``probe_n``: training samples N (N / 2 per class) at a fixed number of heads. The solver works in the dual
  (an N x N system) while N <= 7/8 d_head and in the primal (d_head x d_head) above, so past that switch a
  Newton step costs O(N d_head^2) and alpha should approach 1;
* ``probe_heads``: heads at a fixed N: independent problems, batched, so alpha should be 1; memory should
  level off, because ``probe_sweep`` solves heads in batches of bounded working memory (~512 MB).

Each point: one cold run (it is the warm-up, excluded from timing, and its peak memory is the point's
memory), then ``--repeats`` timed runs; the median wall time is reported, with the median process CPU time
beside it on a CPU (steadier on a shared machine, see benchmarks/README.md). Peak memory: on a GPU
``torch.cuda.max_memory_allocated`` above what was allocated before (GPU memory only: activations collected
to the host and the synthetic probe data on the host are not in it); on a CPU peak RSS above the RSS before
the cold run, measured in a **fresh process per point** (``--point``, as ``bench_collection.py`` does), since
memory the allocator kept from earlier work would hide part of a later peak. ``--smoke`` and GPU runs measure
every point in one process (on a CPU that memory is then approximate). Points shared by two sweeps (the base
shape) are measured once.

Output: the table (``HEADLINE`` line first), the JSON result with the fitted exponents and the figure's JSON,
and next to the JSON a self-contained HTML figure (plotly.js embedded, so it opens offline): log-log time and
memory against size, one column per sweep, with the fitted power law dashed.

Run: ``python benchmarks/bench_scaling.py --size mid --threads 1 --json auto`` (8 minutes on 2 shared cores;
on a machine shared with other jobs use one thread, see benchmarks/README.md), ``--smoke`` (~20 s),
``--size llava7b --device cuda --json auto`` on a GPU (real scale: up to 576 image tokens, 1,024 heads,
2,048 prompts collected, N = 4,000 probe samples), ``--sweeps samples,probe_n`` for a subset.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_probes import activation_like
from cli_args import base_parser, child_options, resolve_args
from machine import machine_info
from measure import cold_then_timed, device_sync, print_marked, run_child
from models import SIZES, ModelCache, ModelSize, check_size, torch_dtype
from reporting import format_table, json_path, publish
from samples import bench_samples

from sahs_lens.activations import collect_head_activations
from sahs_lens.probes import probe_sweep

BENCH = "scaling"
Job = dict[str, Any]  # one point to measure, JSON-serialisable (it is handed to a fresh process as is)


@dataclass(frozen=True)
class Axes:
    """The sizes every sweep visits at one ``--size``; each sweep varies one axis, the others stay fixed."""

    samples: tuple[int, ...]  # collection: prompts per run
    batch: int  # collection: prompts per forward
    fixed_samples: int  # prompts per run in the image-token and heads sweeps
    grids: tuple[int, ...]  # image side / patch side; image tokens = grid ** 2
    layers: tuple[int, ...]  # language-model layers; heads = layers x heads per layer
    n_train: tuple[int, ...]  # probes: training samples N (N / 2 per class)
    probe_heads: tuple[int, ...]  # probes: heads
    fixed_heads: int  # heads in the probe N sweep
    fixed_train: int  # N in the probe heads sweep
    d_head: int  # probes: features per head
    draws: int  # probes: random training draws per head (probe_sweep's repeats)
    test: int  # probes: held-out samples every probe is scored on
    repeats: int  # timed runs per point (after the cold one)


AXES: dict[str, Axes] = {
    # tiny: 2 x 4 heads, 32 px / 8 px patches -> 16 image tokens; Python overhead dominates (~1.5 min)
    "tiny": Axes(samples=(4, 8, 16), batch=4, fixed_samples=8, grids=(2, 4, 8), layers=(1, 2, 4),
                 n_train=(20, 40, 80), probe_heads=(4, 16, 64), fixed_heads=16, fixed_train=40, d_head=32,
                 draws=4, test=100, repeats=3),
    # mid (CPU): 8 x 16 heads x d_head 64, 224 px / 14 px -> 256 image tokens; probes at LLaVA's d_head 128
    "mid": Axes(samples=(4, 8, 16, 32), batch=4, fixed_samples=8, grids=(2, 4, 8, 16), layers=(2, 4, 8, 16),
                n_train=(100, 250, 500, 1000, 2000), probe_heads=(16, 64, 256, 1024), fixed_heads=64,
                fixed_train=500, d_head=128, draws=20, test=500, repeats=3),
    # llava7b (GPU): 32 x 32 heads x d_head 128, 336 px / 14 px -> 576 image tokens
    "llava7b": Axes(samples=(128, 512, 2048), batch=8, fixed_samples=128, grids=(2, 4, 8, 16, 24),
                    layers=(4, 8, 16, 32), n_train=(100, 250, 500, 1000, 2000, 4000), probe_heads=(64, 256, 1024),
                    fixed_heads=1024, fixed_train=1000, d_head=128, draws=20, test=500, repeats=2),
}  # fmt: skip
# --smoke (CI): the fewest points that still fit a line, measured once each in one process
SMOKE = Axes(samples=(2, 4, 8), batch=2, fixed_samples=4, grids=(2, 4), layers=(1, 2), n_train=(20, 40),
             probe_heads=(4, 16), fixed_heads=16, fixed_train=40, d_head=32, draws=2, test=50, repeats=1)  # fmt: skip


@dataclass(frozen=True)
class Sweep:
    """One axis: its points (``jobs``), what is fitted on the x axis (``x_key`` of a measurement)."""

    name: str
    part: str  # "collection" or "probes"
    x_key: str
    x_label: str
    jobs: list[Job]


# --------------------------------------------------------------------------------------------------------
# The sweeps
# --------------------------------------------------------------------------------------------------------


def collect_job(spec: ModelSize, n: int, batch: int) -> Job:
    return {"part": "collection", "spec": asdict(spec), "n": n, "batch": batch}


def probe_job(n_train: int, heads: int, axes: Axes) -> Job:
    return {"part": "probes", "n_train": n_train, "heads": heads, "d_head": axes.d_head, "draws": axes.draws,
            "test": axes.test}  # fmt: skip


def variant(base: ModelSize, **changes: Any) -> ModelSize:
    """``base`` with some fields changed (``base`` itself when nothing changes, so shared points match)."""
    if all(getattr(base, key) == value for key, value in changes.items()):
        return base
    what = ", ".join(f"{key} {value}" for key, value in changes.items())
    return replace(base, description=f"{base.name} with {what}", **changes)


def sweeps_for(size: str, axes: Axes) -> list[Sweep]:
    """The five sweeps at ``size``: three of collection around the base shape, two of probing."""
    base = SIZES[size]
    grid = [variant(base, image_size=g * base.patch_size) for g in axes.grids]
    depth = [variant(base, n_layers=layers) for layers in axes.layers]
    fixed = axes.fixed_samples
    return [
        Sweep("samples", "collection", "n", "samples",
              [collect_job(base, n, axes.batch) for n in axes.samples]),
        Sweep("image_tokens", "collection", "prompt_tokens", "prompt tokens (image tokens vary)",
              [collect_job(spec, fixed, axes.batch) for spec in grid]),
        Sweep("heads", "collection", "heads", "heads (layers vary)",
              [collect_job(spec, fixed, axes.batch) for spec in depth]),
        Sweep("probe_n", "probes", "n_train", "probe training samples N",
              [probe_job(n, axes.fixed_heads, axes) for n in axes.n_train]),
        Sweep("probe_heads", "probes", "heads", "probe heads",
              [probe_job(axes.fixed_train, h, axes) for h in axes.probe_heads]),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------------------
# Measuring one point
# --------------------------------------------------------------------------------------------------------


def measure_collection(job: Job, args: argparse.Namespace, models: ModelCache) -> dict[str, Any]:
    """``collect_head_activations`` of ``job["n"]`` real prompts with images on a model of ``job["spec"]``."""
    spec = ModelSize(**job["spec"])
    bm = models.get(spec)
    samples = bench_samples(job["n"], spec.image_size)
    inputs = bm.prepare(samples[: job["batch"]])
    prompt_tokens = float(inputs.attention_mask.sum(1).float().mean())

    def run() -> None:
        collect_head_activations(bm.vlm, samples, batch_size=job["batch"], progress=False)

    out = cold_then_timed(run, bm.vlm.device, args.repeats, bm.sync())
    return {
        "n": job["n"], "batch": job["batch"], "image_tokens": spec.image_tokens, "prompt_tokens": prompt_tokens,
        "layers": spec.n_layers, "heads": spec.n_layers * spec.n_heads, "d_head": spec.d_head,
        "build_s": bm.build_s, **out, "samples_per_s": job["n"] / out["median_s"],
    }  # fmt: skip


def measure_probes(job: Job, args: argparse.Namespace) -> dict[str, Any]:
    """``probe_sweep`` at N = ``job["n_train"]`` on ``job["heads"]`` heads of synthetic head outputs."""
    n_train, test = job["n_train"], job["test"]
    n_pool = 2 * n_train  # draws of N from 2N samples: no two draws train on the same set
    torch.manual_seed(args.seed)
    acts = activation_like(n_pool + test, 1, job["heads"], job["d_head"], seed=args.seed)
    pool, held_out = np.arange(n_pool), np.arange(n_pool, n_pool + test)
    device = torch.device(args.device)

    def run() -> None:
        probe_sweep(acts, shots=[n_train // 2], repeats=job["draws"], seed=args.seed, pool=pool,
                    test_idx=held_out, metric="accuracy", device=device, progress=False)  # fmt: skip

    out = cold_then_timed(run, device, args.repeats, device_sync(device))
    problems = job["heads"] * job["draws"]
    return {
        "n_train": n_train, "pool": n_pool, "heads": job["heads"], "d_head": job["d_head"],
        "draws": job["draws"], "test": test, "problems": problems, **out, "probes_per_s": problems / out["median_s"],
    }  # fmt: skip


def model_cache(args: argparse.Namespace) -> ModelCache:
    """Where in-process points keep the last model built."""
    return ModelCache(device=args.device, dtype=torch_dtype(args.dtype), seed=args.seed)


def measure_here(job: Job, args: argparse.Namespace, models: ModelCache) -> dict[str, Any]:
    if job["part"] == "collection":
        return measure_collection(job, args, models)
    models.drop()
    return measure_probes(job, args)


def measure_in_subprocess(job: Job, args: argparse.Namespace) -> dict[str, Any]:
    """Measure ``job`` in a fresh process (CPU peak RSS needs one) and read its ``POINT {json}`` line."""
    options = ["--point", json.dumps(job), *child_options(args), "--repeats", str(args.repeats)]
    return run_child(__file__, options, "POINT", expect=1)[0]


def measure_all(sweeps: Sequence[Sweep], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every distinct point of every sweep, keyed by its job; a point two sweeps share is measured once.

    On a CPU each point runs in a fresh process, unless ``--smoke``; on a GPU all run here, one model kept
    while consecutive points share its shape."""
    in_process = args.smoke or torch.device(args.device).type == "cuda"
    models = model_cache(args)
    done: dict[str, dict[str, Any]] = {}
    for sweep in sweeps:
        for job in sweep.jobs:
            key = json.dumps(job, sort_keys=True)
            if key in done:
                continue
            done[key] = measure_here(job, args, models) if in_process else measure_in_subprocess(job, args)
            if args.smoke and torch.device(args.device).type == "cpu":
                done[key]["memory_method"] += " (--smoke: all points in one process, approximate)"
            m = done[key]
            print(f"  {sweep.name} {sweep.x_key}={m[sweep.x_key]:.0f}: {m['median_s']:.3f} s, "
                  f"peak {m['peak_mb']:.1f} MB", file=sys.stderr, flush=True)  # fmt: skip
    models.drop()
    return done


# --------------------------------------------------------------------------------------------------------
# Growth laws
# --------------------------------------------------------------------------------------------------------


def power_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """``(alpha, log_c)`` of ``y ~ c x^alpha``, least squares of log y on log x; None without two usable points.

    Points with ``x <= 0`` or ``y <= 0`` are left out (a CPU peak-memory delta can be 0 at ``tiny``)."""
    pts = [
        (math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if x > 0 and y is not None and y > 0
    ]
    if len({p[0] for p in pts}) < 2:
        return None
    alpha, log_c = np.polyfit([p[0] for p in pts], [p[1] for p in pts], 1)
    return float(alpha), float(log_c)


def exponent(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    fit = power_fit(xs, ys)
    return None if fit is None else fit[0]


def sweep_rows(sweeps: Sequence[Sweep], measured: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per point of every sweep (a shared point appears in each of its sweeps), x ascending."""
    rows = []
    for sweep in sweeps:
        points = [measured[json.dumps(job, sort_keys=True)] for job in sweep.jobs]
        for m in sorted(points, key=lambda m: m[sweep.x_key]):
            rows.append({"sweep": sweep.name, "part": sweep.part, "x": m[sweep.x_key], **m})
    return rows


def growth(sweeps: Sequence[Sweep], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per sweep: the time exponent over all points and over the last two, the CPU-time and memory ones."""
    out = []
    for sweep in sweeps:
        mine = [row for row in rows if row["sweep"] == sweep.name]
        xs = [row["x"] for row in mine]
        cpu = [row["cpu_s"] for row in mine]
        out.append({
            "sweep": sweep.name, "part": sweep.part, "size": sweep.x_label, "points": len(mine),
            "x_range": f"{xs[0]:.0f}-{xs[-1]:.0f}",
            "alpha": exponent(xs, [row["median_s"] for row in mine]),
            "alpha_last": exponent(xs[-2:], [row["median_s"] for row in mine[-2:]]),
            "alpha_cpu": exponent(xs, cpu) if all(c is not None for c in cpu) else None,
            "alpha_memory": exponent(xs, [row["peak_mb"] for row in mine]),
            "time_growth": mine[-1]["median_s"] / mine[0]["median_s"],
            "size_growth": xs[-1] / xs[0],
        })  # fmt: skip
    return out


def headline(laws: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``alpha_<sweep>`` of every sweep (time ~ size^alpha), and the other exponents by sweep."""
    out: dict[str, Any] = {f"alpha_{law['sweep']}": law["alpha"] for law in laws}
    out["alpha_last"] = {law["sweep"]: law["alpha_last"] for law in laws}
    out["alpha_cpu"] = {law["sweep"]: law["alpha_cpu"] for law in laws}
    out["alpha_memory"] = {law["sweep"]: law["alpha_memory"] for law in laws}
    out["law"] = "time ~ size^alpha, least squares of log(median time) on log(size)"
    return out


# --------------------------------------------------------------------------------------------------------
# Figure, table, command line
# --------------------------------------------------------------------------------------------------------


def figure(sweeps: Sequence[Sweep], rows: Sequence[dict[str, Any]], laws: Sequence[dict[str, Any]]) -> Any:
    """Log-log time (top) and peak memory (bottom) against size, one column per sweep, fits dashed."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    def title(law: dict[str, Any], key: str, what: str) -> str:
        fitted = f" ~ x^{law[key]:.2f}" if law[key] is not None else ""
        return f"{law['sweep']}: {what}{fitted}"

    fig = make_subplots(rows=2, cols=len(sweeps), horizontal_spacing=0.05, vertical_spacing=0.16,
                        subplot_titles=[title(law, "alpha", "time") for law in laws]
                        + [title(law, "alpha_memory", "memory") for law in laws])  # fmt: skip
    for col, sweep in enumerate(sweeps, start=1):
        mine = [row for row in rows if row["sweep"] == sweep.name]
        xs = [row["x"] for row in mine]
        for row_i, key, unit in ((1, "median_s", "s"), (2, "peak_mb", "MB")):
            ys = [row[key] for row in mine]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+lines", name=f"{sweep.name} {unit}",
                                     showlegend=False, line={"color": "#1f77b4" if row_i == 1 else "#d62728"}),
                          row=row_i, col=col)  # fmt: skip
            fit = power_fit(xs, ys)
            if fit is not None:
                alpha, log_c = fit
                fitted = [math.exp(log_c) * x**alpha for x in xs]
                fig.add_trace(go.Scatter(x=xs, y=fitted, mode="lines", name=f"fit x^{alpha:.2f}",
                                         showlegend=False, line={"dash": "dash", "color": "gray"}),
                              row=row_i, col=col)  # fmt: skip
            fig.update_xaxes(type="log", title_text=sweep.x_label if row_i == 2 else None, row=row_i, col=col)
            fig.update_yaxes(type="log", row=row_i, col=col)
    fig.update_yaxes(title_text="median time per run (s)", row=1, col=1)
    fig.update_yaxes(title_text="peak memory (MB)", row=2, col=1)
    fig.update_layout(template="plotly_white", height=720, width=340 * len(sweeps) + 120,
                      title="sahs_lens scaling: cost vs size (log-log; dashed: least-squares power law)")  # fmt: skip
    return fig


def write_figure(fig: Any, path: Path) -> Path:
    """A self-contained HTML file (plotly.js embedded: it opens offline)."""
    import plotly.io as pio

    path.parent.mkdir(parents=True, exist_ok=True)
    pio.write_html(fig, path, include_plotlyjs=True, full_html=True)
    return path


POINTS = [
    ("sweep", "sweep"), ("n", "samples"), ("image_tokens", "image tok"), ("prompt_tokens", "prompt tok"),
    ("heads", "heads"), ("n_train", "N train"), ("median_s", "median s"), ("cpu_s", "cpu s"),
    ("samples_per_s", "samples/s"), ("probes_per_s", "probes/s"), ("peak_mb", "peak MB"),
]  # fmt: skip
LAWS = [
    ("sweep", "sweep"), ("size", "size (x)"), ("x_range", "x range"), ("alpha", "alpha time"),
    ("alpha_last", "alpha (last two)"), ("alpha_cpu", "alpha cpu"), ("alpha_memory", "alpha memory"),
    ("time_growth", "time x"), ("size_growth", "size x"),
]  # fmt: skip
NOTE = (
    "alpha: slope of log(median time) on log(size), least squares over the sweep (time ~ size^alpha);\n"
    "alpha (last two): the slope between the two largest points; alpha cpu: the same from process CPU time;\n"
    "time x / size x: how much time grew over the sweep, against how much size grew. The image_tokens sweep\n"
    "fits against prompt tokens (image + text); the heads sweep grows the layers."
)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(result: dict[str, Any]) -> str:
    s, laws = result["settings"], result["laws"]
    shown = ", ".join(f"{law['sweep']} {_fmt(law['alpha'])}" for law in laws)
    axes = result["axes"]
    lines = [
        f"HEADLINE time ~ size^alpha: {shown}",
        f"bench_scaling: size {s['size']} on {s['device']} ({s['dtype']}); collection batch {axes['batch']}, "
        f"{axes['fixed_samples']} prompts in the token and head sweeps; probes d_head {axes['d_head']} x "
        f"{axes['draws']} draws, {axes['test']} held out; {s['repeats']} timed run(s) per point after a cold "
        "one (median)",
        "",
        format_table(result["rows"], POINTS),
        "",
        format_table(laws, LAWS),
        NOTE,
        f"peak memory: {result['rows'][0]['memory_method']}",
    ]
    if result.get("figure_html"):
        lines.append(f"figure: {result['figure_html']}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = base_parser("time and memory of collection and probing as samples, prompt length and heads grow")
    parser.add_argument("--sweeps", default=None, help="comma-separated subset of the sweeps (default all)")
    parser.add_argument("--point", default=None, help=argparse.SUPPRESS)  # internal: one job, fresh process
    args = resolve_args(parser.parse_args(argv))
    args.repeats = args.repeats or axes_for(args).repeats
    return args


def axes_for(args: argparse.Namespace) -> Axes:
    return SMOKE if args.smoke else AXES[args.size]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.point:  # the child side of measure_in_subprocess
        print_marked("POINT", measure_here(json.loads(args.point), args, model_cache(args)))
        return {}
    check_size(args.size, args.device)  # refuse llava7b on a CPU before measuring anything
    axes = axes_for(args)
    sweeps = sweeps_for(args.size, axes)
    if args.sweeps:
        wanted = {name.strip() for name in args.sweeps.split(",")}
        sweeps = [sweep for sweep in sweeps if sweep.name in wanted]
        if not sweeps:
            names = ", ".join(sweep.name for sweep in sweeps_for(args.size, axes))
            raise SystemExit(f"--sweeps names none of {names}")
    rows = sweep_rows(sweeps, measure_all(sweeps, args))
    laws = growth(sweeps, rows)
    fig = figure(sweeps, rows, laws)
    info = machine_info(args.device)
    base = SIZES[args.size]
    model = {**asdict(base), "d_head": base.d_head, "image_tokens": base.image_tokens,
             "variants": "image_size (grid x patch_size) and n_layers varied one at a time"}  # fmt: skip
    extra: dict[str, Any] = {"axes": asdict(axes), "laws": laws, "figure": json.loads(fig.to_json())}
    path = json_path(BENCH, args, info)
    if path is not None:
        # the figure sits next to the JSON: record its name, not a path of this machine
        extra["figure_html"] = write_figure(fig, path.with_suffix(".html")).name
    return publish(BENCH, args, model=model, headline=headline(laws), rows=rows, render=render, extra=extra,
                   info=info)  # fmt: skip


if __name__ == "__main__":
    main()
