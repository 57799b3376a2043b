"""One function per subcommand: check the options and outputs, read the inputs, load the model, compute.

Every function imports what it needs when it runs, so ``sahs-lens --help`` never loads torch. The order
inside each is the same: outputs are checked first (a bad ``--out`` fails before any work), then the cheap
inputs (head sets, activations), then the model, then the computation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sahs_lens.atomic_files import write_atomic, write_json_atomic
from sahs_lens.cli.checks import check_new_dir, check_new_file, check_outputs
from sahs_lens.cli.compare import cmd_compare
from sahs_lens.cli.loading import is_organism, load_heads, load_model, load_samples

__all__ = [
    "cmd_ablate",
    "cmd_compare",
    "cmd_demo",
    "cmd_extract",
    "cmd_generate",
    "cmd_guard_eval",
    "cmd_guard_fit",
    "cmd_organism_train",
    "cmd_patch",
    "cmd_probe",
    "cmd_report",
]


def _note(text: str) -> None:
    print(f"sahs-lens: {text}", file=sys.stderr)


def _load_acts(path: str, flag: str) -> Any:
    from sahs_lens.head_activations import HeadActivations

    if not Path(path).expanduser().is_dir():
        raise FileNotFoundError(
            f"{flag} {path} is not a directory of activations; write one with sahs-lens extract --out {path}"
        )
    return HeadActivations.load(Path(path).expanduser())


# ---- demo and organism -----------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from model_adapters import load_vlm
    from model_adapters.loading import is_language_model
    from sahs_lens.cli.loading import is_organism
    from sahs_lens.organism.demo import run_demo
    from sahs_lens.organism.demo.run_dir import holds_earlier_run, run_state

    model_name = getattr(args, "model", "organism")
    organism = is_organism(model_name)
    if not organism and not is_language_model(model_name):
        raise ValueError(
            f"--model {model_name}: the demo runs on the organism or on a language model (text only; e.g. "
            "smollm2-135m-instruct); for a vision-language model run extract, probe, ablate, patch, guard "
            "and compare with your own --data"
        )
    out = check_outputs(args.out, [])
    if holds_earlier_run(out):  # replaced whole: stages of two runs must never mix (run.json)
        _note(f"starting over in {out}: the earlier demo run there ({run_state(out)}) is replaced whole, since "
              "the stages of two runs must not mix")  # fmt: skip
    model = None if organism else load_vlm(model_name)
    run_demo(out, quick=args.quick, repeats=args.repeats, seed=args.seed, model=model)
    return 0


def cmd_organism_train(args: argparse.Namespace) -> int:
    from sahs_lens.organism.train import train_organism

    check_new_dir(args.out, "a new checkpoint")
    out = train_organism(args.out, seed=args.seed, steps=args.steps)
    print(f"checkpoint written to {out}; use it with --model {out}")
    return 0


# ---- the method's stages -----------------------------------------------------------------------------
def cmd_extract(args: argparse.Namespace) -> int:
    from sahs_lens.activations import collect_head_activations
    from sahs_lens.distributed import env_world, shutdown

    out = check_outputs(args.out, [])
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise FileExistsError(
            f"--out {out} is not empty and holds no activations (no manifest.json); choose a new or empty "
            "directory (an earlier extract there is resumed)"
        )
    rank, world, local_rank = env_world()  # under torchrun: one process per GPU, each its own
    if world > 1 and args.device == "cuda":
        args.device = f"cuda:{local_rank}"
    if world > 1 and args.device_map:
        raise ValueError(
            f"--device-map under torchrun ({world} ranks) would put every rank's copy on the same devices; "
            "run one process with --device-map, or torchrun with --device cuda (one GPU per rank)"
        )
    samples = load_samples(args.data, organism=is_organism(args.model))
    model = load_model(args)
    try:
        acts = collect_head_activations(model, samples, batch_size=args.batch_size, out=out,
                                        shard_size=args.shard_size, dataset="+".join(args.data))  # fmt: skip
    finally:
        shutdown()
    labels = acts.labels.tolist()
    if rank == 0:
        ranks = f" ({world} ranks)" if world > 1 else ""
        print(f"{acts} ({labels.count(1)} malicious, {labels.count(0)} benign) -> {out}{ranks}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from sahs_lens.distributed import current_world
    from sahs_lens.probes import probe_sweep
    from sahs_lens.ranking import rank_heads

    # Under torchrun every rank solves its share of the heads and gets the whole sweep back; rank 0 alone
    # checks and writes the outputs (a refusal there is raised on every rank, so none waits forever).
    world = current_world()
    out = world.all_ok(lambda: check_outputs(args.out, ["sweep", "heads.json"]) if world.is_main else None)
    acts = _load_acts(args.acts, "--acts")
    n_heads = acts.n_layers * acts.n_heads
    if args.k > n_heads:
        raise ValueError(f"--k {args.k} is more than the {n_heads} heads the activations hold")
    sweep = probe_sweep(
        acts, shots=list(args.shots), repeats=args.repeats, seed=args.seed, device=args.device
    )
    heads = rank_heads(sweep, k=args.k, criterion=args.criterion)
    if out is None:  # not rank 0
        return 0
    sweep.save(out / "sweep")
    heads.save(out / "heads.json")
    print(f"top {args.k} heads ({args.criterion}): {heads}\n-> {out / 'heads.json'}, {out / 'sweep'}")
    return 0


def _ablation_table(curve: Any, n: int, n_utility: int, organism: bool) -> list[str]:
    """The ablation curve as lines: refusal, ASR and utility per row, the no-ablation baseline first."""
    nan = float("nan")
    has_utility = curve.baseline_utility is not None
    random_refusal, random_asr = curve.random_mean("refusal"), curve.random_mean("asr")
    random_utility = curve.random_mean("utility") if has_utility else []

    def cell(value: float | None) -> str:
        return "    -" if value is None or value != value else f"{value:5.3f}"

    rows = [
        ("nothing removed (baseline)", curve.baseline_refusal, curve.baseline_asr, curve.baseline_utility)
    ]
    for i, k in enumerate(curve.ks):
        rows.append(
            (
                f"top-{k} safety heads",
                curve.safety_refusal[i],
                curve.safety_asr[i],
                curve.safety_utility[i] if has_utility and curve.safety_utility else None,
            )
        )
        if random_refusal:
            rows.append(
                (
                    f"{k} random heads (mean of {len(curve.seeds)})",
                    random_refusal[i],
                    random_asr[i] if random_asr else nan,
                    random_utility[i] if random_utility else None,
                )
            )
    asr = "answered in the organism's helpful form" if organism else "not refused (keyword judge)"
    utility = (
        f"share of {n_utility} benign prompts answered in the organism's trained helpful form"
        if organism
        else f"share of {n_utility} benign prompts answered without refusal (keyword judge)"
    )
    lines = [
        f"ablation ({curve.mode}) on {n} harmful prompts:",
        "  refusal: share of the harmful prompts refused (keyword judge)",
        f"  ASR:     attack success rate, the share of the harmful prompts {asr}",
        f"  utility: {utility}" if has_utility else "  utility: - (give --utility-data benign prompts)",
        f"  {'heads removed':<34} refusal   ASR    utility",
    ]
    lines += [f"  {name:<34} {cell(r)}   {cell(a)}  {cell(u)}" for name, r, a, u in rows]
    return lines


def cmd_ablate(args: argparse.Namespace) -> int:
    from sahs_lens.interventions import ablation_curve

    out = check_outputs(args.out, ["ablation.json"])
    heads = load_heads(args.heads)
    if max(args.ks) > len(heads):
        raise ValueError(
            f"--ks {max(args.ks)} asks for more heads than --heads {args.heads} holds ({len(heads)})"
        )
    if args.mode != "zero" and not args.reference:
        raise ValueError(
            f"--mode {args.mode} takes the heads' values from reference prompts: give --reference DIR, the "
            "activations of benign prompts (sahs-lens extract --data ... --out DIR), or use --mode zero"
        )
    if args.reference and args.mode == "zero":
        raise ValueError(
            "--reference is used by --mode mean and resample only; drop it, or choose one of them"
        )
    organism = is_organism(args.model)
    samples = load_samples(args.data, organism=organism)
    utility = load_samples(args.utility_data, organism=organism) if args.utility_data else None
    extra: dict[str, Any] = {}
    if organism:  # broken answers are neither refusals nor answers: score the organism's own answer form
        from sahs_lens.organism.demo.subjects import benign_utility
        from sahs_lens.organism.evaluate import complied

        extra = {"success_fn": complied, "utility_fn": benign_utility if utility else None}
    model = load_model(args)
    if args.reference:
        from sahs_lens.head_activations import HeadActivations

        extra["reference"] = HeadActivations.load(args.reference, model=model)
    curve = ablation_curve(
        model,
        samples,
        heads,
        ks=args.ks,
        seeds=args.seeds,
        utility_samples=utility,
        mode=args.mode,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        **extra,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "ablation.json", curve.to_dict())
    print("\n".join(_ablation_table(curve, len(samples), len(utility or []), organism)))
    print(f"-> {out / 'ablation.json'}")
    return 0


def cmd_patch(args: argparse.Namespace) -> int:
    from safetensors.torch import save as save_bytes

    from sahs_lens.activations import collect_head_activations
    from sahs_lens.interventions import patching_sweep

    out = check_outputs(args.out, ["patching.safetensors", "patching.json"])
    heads = load_heads(args.heads) if args.heads else None
    organism = is_organism(args.model)
    source = load_samples(args.source, organism=organism)[: args.n]
    target = load_samples(args.target, organism=organism)[: args.n]
    if len(source) != len(target):
        raise ValueError(
            f"--n {args.n} pairs asked for, but there are {len(source)} source and {len(target)} target "
            "samples; give as many of each (or a smaller --n)"
        )
    model = load_model(args)
    source_acts = collect_head_activations(model, source, batch_size=args.batch_size, progress=False)
    batch = model.prepare([s.prompt for s in target], images=[s.image for s in target])
    result = patching_sweep(model, batch, source_acts, heads=heads)
    out.mkdir(parents=True, exist_ok=True)
    digest = write_atomic(out / "patching.safetensors", save_bytes({"effect": result.effect.contiguous()}))
    top = result.top(10)
    summary = {"clean": result.clean, "top": top.to_list(), "files": {"patching.safetensors": digest}}
    write_json_atomic(out / "patching.json", summary)  # last: it binds the tensors by SHA-256
    print(
        f"patched {len(target)} pairs: each head's decision-position output copied from a source into a target "
        "prompt.\n"
        f"  metric: refusal logit difference of the first answer token (refusal minus compliance openings; "
        f"> 0 leans to refusing); targets unpatched: {result.clean:.3f}\n"
        f"  heads whose transplant raises it most: {top}\n-> {out}"
    )
    return 0


def cmd_guard_fit(args: argparse.Namespace) -> int:
    from sahs_lens.guard import SafetyHeadGuard

    out = check_outputs(args.out, ["guard.json", "guard.safetensors"])
    heads = load_heads(args.heads)
    acts = _load_acts(args.acts, "--acts")
    benign = None
    if args.calibrate:
        calibration = _load_acts(args.calibrate, "--calibrate")
        benign = calibration.select(calibration.labels == 0)
        if len(benign) == 0:
            raise ValueError(
                f"--calibrate {args.calibrate} holds no benign (label 0) rows to set the threshold"
            )
    guard = SafetyHeadGuard.fit(acts, heads, C=args.C)
    if benign is not None:
        guard.calibrate(benign, target_fpr=args.target_fpr)
    guard.save(out)
    how = (
        f"set so that {args.target_fpr:.0%} of the {len(benign)} benign calibration prompts are flagged"
        if benign is not None
        else "the default: no --calibrate"
    )
    print(f"{guard}\n  threshold {guard.threshold:.3f} ({how})\n-> {out}")
    return 0


def cmd_guard_eval(args: argparse.Namespace) -> int:
    from sahs_lens.evaluation import detection_metrics
    from sahs_lens.guard import SafetyHeadGuard

    if (args.acts is None) == (args.data is None):
        raise ValueError(
            "give either --acts (activations from extract) or --data (data specs to read), not both"
        )
    if args.out:
        check_new_file(args.out)
    if args.acts is not None:
        guard = SafetyHeadGuard.load(args.guard)
        acts = _load_acts(args.acts, "--acts")
    else:
        from sahs_lens.activations import collect_head_activations

        samples = load_samples(args.data, organism=is_organism(args.model))
        model = load_model(args)
        guard = SafetyHeadGuard.load(args.guard, model=model)
        acts = collect_head_activations(
            model, samples, batch_size=args.batch_size, heads=guard.heads, dataset="+".join(args.data)
        )
    labels = acts.labels.numpy()
    if labels.min() == labels.max():
        raise ValueError(
            f"the prompts are all {'malicious' if labels[0] else 'benign'}; detection metrics need both "
            "(add --data with the other label)"
        )
    metrics = detection_metrics(labels, guard.score(acts).numpy(), threshold=guard.threshold)
    print(metrics)
    print(
        "  auroc: how well the score ranks malicious above benign prompts (1 = always, 0.5 = chance); "
        f"tpr / fpr: the share of malicious / benign prompts flagged at the guard's threshold "
        f"({guard.threshold:.3f})"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(args.out), metrics.to_dict())
        print(f"-> {args.out}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from sahs_lens.guard import SafetyHeadGuard

    if args.image is not None and not Path(args.image).is_file():
        raise FileNotFoundError(f"--image {args.image} does not exist")
    guard_dir = Path(args.guard) if args.guard else None
    if guard_dir is not None and not (guard_dir / "guard.json").is_file():
        raise FileNotFoundError(
            f"--guard {guard_dir} holds no guard (guard.json); fit one with sahs-lens guard fit"
        )
    model = load_model(args)
    batch = model.prepare([args.prompt], images=[args.image])
    if guard_dir is not None:
        guard = SafetyHeadGuard.load(guard_dir, model=model)
        out = guard.generate(model, batch, args.max_new_tokens, policy=args.policy)
        verdict = "FLAGGED" if out.flagged[0] else "allowed"
        print(f"[guard score {out.scores[0]:.3f} (threshold {guard.threshold:.3f}) -> {verdict}]")
        print(out.texts[0])
    else:
        print(model.generate(batch, max_new_tokens=args.max_new_tokens)[0])
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sahs_lens.organism.demo import report_from_run
    from sahs_lens.run_artifacts import is_demo_run
    from sahs_lens.run_report import report_for_run

    run = Path(args.run)
    if not run.is_dir():
        raise FileNotFoundError(f"--run {run} is not a directory; give the --out of a sahs-lens run")
    path = report_from_run(run) if is_demo_run(run) else report_for_run(run)
    print(f"report: {path}")
    return 0
