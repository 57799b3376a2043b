"""``run_demo``: the demo as the list of its stages, each announced, timed, and writing what it produced.

The stages themselves are in ``stages`` (measuring), ``headline`` (what the numbers claim) and ``report``
(what the run leaves on disk); this module only puts them in order, times them and prints progress: a
heading per step (``[3/8] probe sweep: ...``, with what it computes and how much), the step's progress bar
(prompts, answers, heads, runs) and its time when done.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from model_adapters import HookedVLM, load_vlm
from sahs_lens.organism import load_organism
from sahs_lens.organism.demo.comparison import DEMO_DETECTORS, comparison_rows, demo_comparison
from sahs_lens.organism.demo.headline import headline_rows, print_headline
from sahs_lens.organism.demo.report import (
    SMOKE_RUN,
    demo_figures,
    demo_metrics,
    demo_provenance,
    write_demo_report,
)
from sahs_lens.organism.demo.run_dir import finish_run, start_run
from sahs_lens.organism.demo.stages import (
    DemoPrompts,
    ablate,
    ablation_prompts,
    collect_activations,
    fit_guard,
    guarded_generation,
    patch,
    sweep_and_rank,
)
from sahs_lens.organism.demo.subjects import ORGANISM_SUBJECT, subject_for

__all__ = ["run_demo"]


STEPS = 8


@contextmanager
def _step(
    timings: dict[str, float], key: str | None, number: int, heading: str, say: Callable[..., Any]
) -> Iterator[None]:
    """Announce step ``number`` of ``STEPS``, run the block, say how long it took (added to ``timings[key]``)."""
    say(f"\n[{number}/{STEPS}] {heading}", flush=True)
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    if key is not None:
        timings[key] = timings.get(key, 0.0) + seconds
    say(f"      done in {seconds:.1f} s", flush=True)


def run_demo(
    out_dir: str | Path = "sahs_out",
    *,
    quick: bool = False,
    repeats: int | None = None,
    seed: int = 0,
    model: HookedVLM | str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo on the organism (or ``model``) and write ``report.html`` + ``metrics.json`` to ``out_dir``.

    A language model (``model="smollm2-135m-instruct"``, or any loaded one) gets the language-model
    subject (``subjects``): text prompts, the contrast set of benign requests with harmful-sounding words,
    answers judged by refusal keywords.

    Args:
        out_dir: the run directory (created): activations, sweep, heads, guard, figures, report, metrics,
            and ``run.json``, which says whether the run is complete (``run_dir``); an earlier run there
            is replaced whole.
        quick: the test suite's sizes (``config.QUICK``) instead of the README's (``config.FULL``).
        repeats: probe repeats per shot count (default: the configuration's).
        seed: the seed of the pool's pictures, the probe sweep, the bootstrap and the t-SNE.
        model: a loaded ``HookedVLM``, or what ``load_vlm`` loads (default: ``load_organism()``).
        progress: print the stages and show progress bars.

    Returns:
        The metrics dictionary (also written to ``metrics.json``).

    Example:
        >>> metrics = run_demo("/tmp/demo", quick=True)  # doctest: +SKIP
        >>> [row["met"] for row in metrics["headline"]]  # doctest: +SKIP
    """
    if isinstance(model, str):
        model = load_vlm(model)
    subject = subject_for(model) if model is not None else ORGANISM_SUBJECT
    cfg = (
        subject.config(quick)
        if repeats is None
        else dataclasses.replace(subject.config(quick), repeats=repeats)
    )
    out = Path(out_dir)
    settings = {
        "quick": quick,
        "repeats": cfg.repeats,
        "seed": seed,
        "model": model.cfg.model_name if model is not None else "organism",
    }
    start_run(out, settings)  # marks out incomplete before anything of an earlier run is replaced
    torch.manual_seed(seed)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    say: Callable[..., Any] = print if progress else (lambda *a, **k: None)
    if quick:
        say(f"sahs-lens demo --quick: a {SMOKE_RUN}", flush=True)
    with _step(timings, None, 1, subject.heading, say):
        model = model or load_organism()
        say(f"      {model}")
    n_heads = model.cfg.n_layers * model.cfg.n_heads
    prompts = DemoPrompts(*subject.heldout_sets(cfg, seed))
    n_test = len(prompts.test)
    with _step(
        timings,
        "activations",
        2,
        f"activations: every head's hook_z at the decision position, and the comparison's signals (residual "
        f"stream, its logit lens, first-token logits) from the same forward, for {len(prompts.pool)} probe-pool, "
        f"{len(prompts.calibration)} calibration and {n_test} held-out prompts",
        say,
    ):
        acts = collect_activations(model, prompts, out, progress)
    with _step(
        timings,
        "probes",
        3,
        f"probe sweep: {len(cfg.shots)} shot counts x {cfg.repeats} repeats x {n_heads} heads = "
        f"{len(cfg.shots) * cfg.repeats * n_heads} logistic probes, then the heads ranked (stable)",
        say,
    ):
        ranking = sweep_and_rank(acts.pool, cfg, seed, out, progress)
        say(f"      safety heads (top {cfg.k}, stable): {ranking.safety}")
    malicious, benign = ablation_prompts(prompts, cfg, subject)
    runs = 1 + len(cfg.ks) * (1 + len(cfg.seeds))
    with _step(
        timings,
        "ablation",
        4,
        f"ablation curve: {runs} runs (nothing removed; for k in {list(cfg.ks)}, the top-k safety heads and k "
        f"random heads x {len(cfg.seeds)} seeds), each answering {len(malicious)} harmful and {len(benign)} "
        "benign prompts",
        say,
    ):
        curve = ablate(model, prompts, ranking.heads, cfg, progress, subject)
    with _step(
        timings,
        "patching",
        5,
        f"patching map: each of the {n_heads} heads copied alone from {cfg.n_patch} harmful into "
        f"{cfg.n_patch} benign prompts",
        say,
    ):
        patching = patch(model, prompts, cfg, progress)
    bootstrap = 200 if quick else 1000
    with _step(
        timings,
        "guard",
        6,
        f"guard: fit on the pool's top-{cfg.k} safety heads, threshold set on the {len(prompts.calibration)} "
        f"calibration prompts, {n_test} held-out prompts scored ({bootstrap} bootstrap replicates)",
        say,
    ):
        fit = fit_guard(acts, ranking.safety, cfg, bootstrap=bootstrap, seed=seed, out=out)
        compare_started = time.perf_counter()
        say(f"      side by side: {len(DEMO_DETECTORS)} detectors fitted on {' and '.join(subject.comparison_pairs)}, "
            f"scored on {' and '.join(sorted({t for ts in subject.comparison_pairs.values() for t in ts}))}, all from "
            "step 2's signals", flush=True)  # fmt: skip
        comparison = demo_comparison(
            model, prompts.pool, prompts.heldout, k=cfg.k, seed=seed, shots=cfg.shots, repeats=cfg.repeats,
            bootstrap=bootstrap, signals=acts.signals, subject=subject,
        )  # fmt: skip
        timings["compare"] = time.perf_counter() - compare_started
    with _step(
        timings,
        "guard",
        7,
        f"guarded generation: the {n_test} held-out prompts ({len(prompts.heldout)} sets) answered without "
        f"and with the guard, {cfg.max_new_tokens} tokens each ({2 * n_test} answers)",
        say,
    ):
        run = guarded_generation(model, fit.guard, prompts.heldout, cfg, progress, subject.utility)
    timings["total"] = time.perf_counter() - started

    headline = headline_rows(
        fit.detection, run.groups, curve, len(malicious), success=subject.success_name
    ) + comparison_rows(comparison, in_distribution=subject.in_distribution, transfer=subject.transfer)
    say(
        f"\n[{STEPS}/{STEPS}] report: the figures (a t-SNE among them), report.html, metrics.json", flush=True
    )
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
    metrics["comparison"] = comparison.to_dict(roc=False)
    provenance = demo_provenance(model, cfg, seed, ranking, fit, timings["total"], quick=quick)
    path = write_demo_report(
        out, provenance=provenance, headline=headline, figures=figures, examples=run.examples, metrics=metrics
    )
    finish_run(out, settings)  # last: records every file and that the run is complete
    if quick:
        say(f"\nNOTE: this was a {SMOKE_RUN}.")
    print_headline(headline, say)
    say(f"\nreport:  {path}\nmetrics: {out / 'metrics.json'}\n({time.perf_counter() - started:.0f} s in all)")
    return metrics
