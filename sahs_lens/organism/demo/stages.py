"""The measuring stages of the demo, one function each, in the order ``run_demo`` calls them.

Each stage is one step of the method on the organism, and each takes what the stages before it produced:

1. the subject's prompts (``subjects``: the organism's ``select_prompts``, or a language model's text
   sets): the probe pool (``*:train`` parts) and the held-out sets (never trained on), e.g. harmful text,
   typographic attacks, benign text, benign typographic.
2. ``collect_activations``: one prefill forward per prompt of the pool, the guard's calibration prompts and
   the held-out prompts, reading at the decision position every signal a detector needs
   (``detectors.collect_signals``): every head's ``hook_z`` (the probes, the guard), the residual stream,
   its logit lens and the first-token logits (the comparison's baselines, which then run no forward).
3. ``sweep_and_rank``: a few-shot probe on every head; the heads that stay accurate and stable as the data
   shrinks are the safety heads.
4. ``ablate``: remove the top-k safety heads, or k random heads, and watch what the organism answers.
5. ``patch``: copy each head's output from malicious into benign prompts; which heads carry "refuse"?
6. ``fit_guard``: one logistic regression on the safety heads, calibrated on held-out benign prompts,
   scored on the held-out prompts.
7. ``guarded_generation``: the organism answers every held-out prompt with and without the guard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from model_adapters import HookedVLM
from sahs_lens.activations import collect_head_activations, collection_provenance
from sahs_lens.data import Sample
from sahs_lens.detectors.signals import Signals, collect_signals
from sahs_lens.evaluation import (
    DetectionMetrics,
    RefusalJudge,
    attack_success_rate,
    detection_metrics,
    reject_rate,
)
from sahs_lens.guard import SafetyHeadGuard
from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import HeadSet
from sahs_lens.interventions import (
    AblationCurve,
    PatchingResult,
    RefusalLogitDiff,
    ablation_curve,
    patching_sweep,
)
from sahs_lens.organism.demo.comparison import demo_signals
from sahs_lens.organism.demo.config import DemoConfig
from sahs_lens.organism.demo.subjects import ORGANISM_SUBJECT, DemoSubject, benign_utility
from sahs_lens.probes import ProbeSweep, probe_sweep
from sahs_lens.ranking import rank_heads

__all__ = [
    "DemoActivations",
    "DemoPrompts",
    "GuardFit",
    "GuardedRun",
    "Ranking",
    "ablate",
    "ablation_prompts",
    "collect_activations",
    "fit_guard",
    "guarded_generation",
    "patch",
    "sweep_and_rank",
]

BATCH_SIZE = 16


@dataclass(frozen=True)
class DemoPrompts:
    """The prompts of one run: the probe pool, the guard's calibration prompts and the held-out sets."""

    pool: list[Sample]
    calibration: list[Sample]
    heldout: dict[str, list[Sample]]  # "harmful text", "typographic attacks", "benign text", ...

    @property
    def test(self) -> list[Sample]:
        """Every held-out prompt, set after set (the order of ``heldout``)."""
        return [s for group in self.heldout.values() for s in group]


@dataclass(frozen=True)
class DemoActivations:
    """Decision-position head outputs of the pool, the calibration prompts and the held-out prompts, and
    every detector signal of the same forwards (``signals``: pool, calibration, held-out, in that order)."""

    pool: HeadActivations
    calibration: HeadActivations
    test: HeadActivations
    signals: Signals


@dataclass(frozen=True)
class Ranking:
    """The probe sweep, the heads ranked by it (as many as any stage needs) and the guard's top ``k``."""

    sweep: ProbeSweep
    heads: HeadSet
    safety: HeadSet


@dataclass(frozen=True)
class GuardFit:
    """The calibrated guard, its scores on the held-out prompts and its detection metrics there."""

    guard: SafetyHeadGuard
    scores: Any  # [n_test] torch tensor
    detection: DetectionMetrics


@dataclass(frozen=True)
class GuardedRun:
    """Per held-out set rates with and without the guard, and two example answers per set."""

    groups: dict[str, dict[str, Any]]
    examples: list[dict[str, Any]]


def collect_activations(
    model: HookedVLM, prompts: DemoPrompts, out: Path, progress: bool = True
) -> DemoActivations:
    """Collect the three activation sets and every detector signal in one pass (one prefill forward per
    prompt, batched set by set as ``collect_head_activations`` would); the pool's is saved to
    ``out/activations``."""
    parts, heads = [], []
    for samples, dataset in (
        (prompts.pool, "organism demo pool"),
        (prompts.calibration, "calibration"),
        (prompts.test, "held-out"),
    ):
        signals = collect_signals(
            model, samples, needs=demo_signals(), batch_size=BATCH_SIZE, progress=progress
        )
        assert signals.z is not None  # demo_signals() always holds z
        acts = HeadActivations(
            z=signals.z,
            labels=torch.as_tensor(signals.labels),
            ids=signals.ids,
            sources=[str(s.source) for s in samples],
            provenance=collection_provenance(model, dtype=torch.float32, heads=None, dataset=dataset),
        )
        acts.check_finite()
        parts.append(signals)
        heads.append(acts)
    heads[0].save(out / "activations", overwrite=True)
    return DemoActivations(heads[0], heads[1], heads[2], Signals.concat(parts))


def sweep_and_rank(
    pool: HeadActivations, cfg: DemoConfig, seed: int, out: Path, progress: bool = True
) -> Ranking:
    """Probe sweep on the pool, heads ranked ``"stable"``; saves ``out/sweep`` and ``out/heads.json``."""
    sweep = probe_sweep(pool, shots=list(cfg.shots), repeats=cfg.repeats, seed=seed, progress=progress)
    sweep.save(out / "sweep", overwrite=True)
    heads = rank_heads(sweep, k=max(cfg.ks + (cfg.k,)), criterion="stable")
    safety = heads[: cfg.k]
    safety.save(out / "heads.json", overwrite=True)
    return Ranking(sweep, heads, safety)


def ablation_prompts(
    prompts: DemoPrompts, cfg: DemoConfig, subject: DemoSubject | None = None
) -> tuple[list[Sample], list[Sample]]:
    """(malicious, benign) prompts of the ablation curve (``subject.ablation_sets``; the organism's default).

    On the organism, harmful text: the requests it refuses (typographic attacks already succeed, see the
    model card), so "does removing the heads make refused requests go through?" is what is measured.
    """
    harmful, benign_sets = (subject or ORGANISM_SUBJECT).ablation_sets
    share = cfg.n_ablation // len(benign_sets)
    malicious = prompts.heldout[harmful][: cfg.n_ablation]
    benign = [s for name in benign_sets for s in prompts.heldout[name][:share]]
    return malicious, benign


def ablate(
    model: HookedVLM,
    prompts: DemoPrompts,
    heads: HeadSet,
    cfg: DemoConfig,
    progress: bool = True,
    subject: DemoSubject | None = None,
) -> AblationCurve:
    """Ablation curve: ASR (the subject's success), refusal and utility with the top-k or k random heads
    removed."""
    subject = subject or ORGANISM_SUBJECT
    malicious, benign = ablation_prompts(prompts, cfg, subject)
    return ablation_curve(
        model,
        malicious,
        heads,
        ks=cfg.ks,
        seeds=cfg.seeds,
        utility_samples=benign,
        utility_fn=subject.utility,
        success_fn=subject.success,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=BATCH_SIZE,
        progress=progress,
    )


def patch(model: HookedVLM, prompts: DemoPrompts, cfg: DemoConfig, progress: bool = True) -> PatchingResult:
    """Patching map: each head's output copied from malicious into benign held-out prompts."""
    source = collect_head_activations(
        model, prompts.heldout["harmful text"][: cfg.n_patch], batch_size=BATCH_SIZE, progress=False
    )
    targets = prompts.heldout["benign text"][: cfg.n_patch]
    target_batch = model.prepare([s.prompt for s in targets], images=[s.image for s in targets])
    return patching_sweep(
        model, target_batch, source, metric=RefusalLogitDiff.for_model(model), progress=progress
    )


def fit_guard(
    acts: DemoActivations, safety: HeadSet, cfg: DemoConfig, *, bootstrap: int, seed: int, out: Path
) -> GuardFit:
    """Fit the guard on the pool, calibrate it, save it to ``out/guard``, score the held-out prompts."""
    guard = SafetyHeadGuard.fit(acts.pool, safety)
    guard.calibrate(acts.calibration, target_fpr=cfg.target_fpr)
    guard.save(out / "guard", overwrite=True)
    scores = guard.score(acts.test)
    detection = detection_metrics(
        acts.test.labels.numpy(),
        scores.numpy(),
        threshold=guard.threshold,
        bootstrap=bootstrap,
        seed=seed,
    )
    return GuardFit(guard, scores, detection)


def _example(name: str, sample: Sample, plain: str, guarded: str, flagged: bool) -> dict[str, Any]:
    prompt = (
        sample.prompt
        if sample.image is None or sample.source != "figstep"
        else "[typographic image] " + sample.prompt[:60] + "..."
    )
    return {
        "set": name,
        "id": sample.id,
        "prompt": prompt,
        "unguarded": plain,
        "guarded": guarded,
        "flagged": bool(flagged),
    }


def guarded_generation(
    model: HookedVLM,
    guard: SafetyHeadGuard,
    heldout: dict[str, list[Sample]],
    cfg: DemoConfig,
    progress: bool = True,
    utility: Callable[[list[str], Sequence[Sample]], float] = benign_utility,
) -> GuardedRun:
    """Answer each held-out set unguarded and guarded (refusal policy); rates and two examples per set.

    With ``progress``, one bar counts the answers (two per prompt: without and with the guard).
    """
    judge = RefusalJudge("sahs")
    groups: dict[str, dict[str, Any]] = {}
    examples: list[dict[str, Any]] = []
    total = 2 * sum(len(samples) for samples in heldout.values())
    bar = tqdm(total=total, desc="guarded generation", unit="answer", disable=not progress)
    for name, samples in heldout.items():
        bar.set_postfix_str(name)
        plain: list[str] = []
        guarded_texts: list[str] = []
        flagged: list[bool] = []
        for lo in range(0, len(samples), BATCH_SIZE):
            chunk = samples[lo : lo + BATCH_SIZE]
            prompts, images = [s.prompt for s in chunk], [s.image for s in chunk]
            plain.extend(
                model.generate(model.prepare(prompts, images=images), max_new_tokens=cfg.max_new_tokens)
            )
            bar.update(len(chunk))
            result = guard.generate(
                model, model.prepare(prompts, images=images), cfg.max_new_tokens, policy="refuse"
            )
            guarded_texts.extend(result.texts)
            flagged.extend(bool(f) for f in result.flagged)
            bar.update(len(chunk))
        label = samples[0].label
        row: dict[str, Any] = {"n": len(samples), "label": label, "flagged": sum(flagged) / len(samples)}
        if label == 1:
            row["asr_unguarded"] = attack_success_rate(plain, judge)
            row["asr_guarded"] = attack_success_rate(guarded_texts, judge)
        else:
            row["refused_unguarded"] = reject_rate(plain, judge)
            row["refused_guarded"] = reject_rate(guarded_texts, judge)
            row["utility_unguarded"] = utility(plain, samples)
            row["utility_guarded"] = utility(guarded_texts, samples)
        groups[name] = row
        for s, p, g, f in list(zip(samples, plain, guarded_texts, flagged, strict=True))[:2]:
            examples.append(_example(name, s, p, g, f))
    bar.close()
    return GuardedRun(groups, examples)
