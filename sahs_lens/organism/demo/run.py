"""``run_demo``: the demo as the list of its stages, each timed, each writing what it produced.

The stages themselves are in ``stages`` (measuring), ``headline`` (what the numbers claim) and ``report``
(what the run leaves on disk); this module only puts them in order, times them and prints progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from model_adapters import HookedVLM
from sahs_lens.organism import load_organism
from sahs_lens.organism.demo.config import demo_config
from sahs_lens.organism.demo.headline import headline_rows, print_headline
from sahs_lens.organism.demo.report import (
    demo_figures,
    demo_metrics,
    demo_provenance,
    write_demo_report,
)
from sahs_lens.organism.demo.stages import (
    ablate,
    ablation_prompts,
    collect_activations,
    fit_guard,
    guarded_generation,
    patch,
    select_prompts,
    sweep_and_rank,
)

__all__ = ["run_demo"]


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the wall-clock seconds of the block to ``timings[name]``."""
    start = time.perf_counter()
    yield
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _load_model(model: HookedVLM | None, say: Callable[..., Any]) -> HookedVLM:
    model = model or load_organism()
    say(f"sahs-lens demo: {model}")
    return model


def run_demo(
    out_dir: str | Path = "sahs_out",
    *,
    quick: bool = False,
    repeats: int | None = None,
    seed: int = 0,
    model: HookedVLM | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo on the organism (or ``model``) and write ``report.html`` + ``metrics.json`` to ``out_dir``.

    Args:
        out_dir: the run directory (created): activations, sweep, heads, guard, figures, report, metrics.
        quick: the test suite's sizes (``config.QUICK``) instead of the README's (``config.FULL``).
        repeats: probe repeats per shot count (default: the configuration's).
        seed: the seed of the pool's pictures, the probe sweep, the bootstrap and the t-SNE.
        model: a loaded ``HookedVLM`` (default: ``load_organism()``).
        progress: print the stages and show progress bars.

    Returns:
        The metrics dictionary (also written to ``metrics.json``).

    Example:
        >>> metrics = run_demo("/tmp/demo", quick=True)  # doctest: +SKIP
        >>> [row["met"] for row in metrics["headline"]]  # doctest: +SKIP
    """
    cfg = demo_config(quick, repeats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    say: Callable[..., Any] = print if progress else (lambda *a, **k: None)
    model = _load_model(model, say)

    with _timed(timings, "activations"):
        prompts = select_prompts(cfg, seed)
        acts = collect_activations(model, prompts, out, progress)
    with _timed(timings, "probes"):
        ranking = sweep_and_rank(acts.pool, cfg, seed, out, progress)
    say(f"safety heads (top {cfg.k}, stable): {ranking.safety}")
    with _timed(timings, "ablation"):
        curve = ablate(model, prompts, ranking.heads, cfg, progress)
    with _timed(timings, "patching"):
        patching = patch(model, prompts, cfg, progress)
    with _timed(timings, "guard"):
        fit = fit_guard(acts, ranking.safety, cfg, bootstrap=200 if quick else 1000, seed=seed, out=out)
        run = guarded_generation(model, fit.guard, prompts.heldout, cfg)
    timings["total"] = time.perf_counter() - started

    n_ablated = len(ablation_prompts(prompts, cfg)[0])
    headline = headline_rows(fit.detection, run.groups, curve, n_ablated)
    figures = demo_figures(ranking, acts, curve, patching, fit, seed)
    metrics = demo_metrics(
        model=model,
        cfg=cfg,
        seed=seed,
        quick=quick,
        ranking=ranking,
        headline=headline,
        fit=fit,
        run=run,
        curve=curve,
        patching=patching,
        timings=timings,
    )
    provenance = demo_provenance(model, cfg, seed, ranking, fit, timings["total"])
    path = write_demo_report(
        out, provenance=provenance, headline=headline, figures=figures, examples=run.examples, metrics=metrics
    )
    print_headline(headline, say)
    say(f"\nreport:  {path}\nmetrics: {out / 'metrics.json'}\n({timings['total']:.0f} s)")
    return metrics
