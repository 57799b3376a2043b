"""The ``sahs-lens`` command: every stage of the method from the shell, on any supported model.

Each subcommand reads and writes the artifacts of the Python API (activations directories, probe sweeps,
``heads.json``, guard directories), so stages can be chained, resumed and mixed with notebook work::

    sahs-lens demo                                           # the whole story on the bundled organism
    sahs-lens extract --model llava-hf/llava-1.5-7b-hf --device cuda --dtype float16 \\
        --data figstep:data/FigStep --data mmvet:data/mm-vet --out runs/acts
    sahs-lens probe --acts runs/acts --out runs/probe --k 32
    sahs-lens guard fit --acts runs/acts --heads runs/probe/heads.json --out runs/guard
    sahs-lens generate --model llava-hf/llava-1.5-7b-hf --guard runs/guard --prompt "..." --image x.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sahs_lens._version import __version__

DTYPES = ("float32", "float16", "bfloat16")


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="organism",
        help="hub id, local checkpoint directory, or 'organism' (the bundled model; default)",
    )
    group.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    group.add_argument(
        "--dtype", default="float32", choices=DTYPES, help="parameter dtype (default: float32)"
    )
    group.add_argument("--template", default=None, help="prompt template (default: the family's)")
    group.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "hf", "bridge"),
        help="hf: the Hugging Face model with hook points (every family); bridge: TransformerLens' "
        "TransformerBridge (full hook vocabulary); auto: hf (default)",
    )
    group.add_argument("--batch-size", type=int, default=8, help="prompts per forward (default: 8)")


def _load_model(args: argparse.Namespace) -> Any:
    import torch

    from model_adapters import load_vlm

    dtype = getattr(torch, args.dtype)
    if args.model == "organism":
        from sahs_lens.organism import load_organism

        return load_organism(device=args.device, dtype=dtype, template=args.template, backend=args.backend)
    return load_vlm(args.model, device=args.device, dtype=dtype, template=args.template, backend=args.backend)


def _load_samples(specs: Sequence[str], image_size: int | None = None) -> list[Any]:
    from sahs_lens.data.spec import load_data

    samples = []
    for spec in specs:
        samples.extend(load_data(spec, image_size=image_size))
    return samples


def _load_heads(text: str) -> Any:
    from sahs_lens.heads import HeadSet

    path = Path(text)
    return HeadSet.load(path) if path.suffix == ".json" or path.exists() else HeadSet.parse(text)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


# ---- subcommands ---------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from sahs_lens.organism.demo import run_demo

    run_demo(args.out, quick=args.quick, repeats=args.repeats, seed=args.seed)
    return 0


def cmd_organism_train(args: argparse.Namespace) -> int:
    from sahs_lens.organism.train import train_organism

    train_organism(args.out, seed=args.seed, steps=args.steps)
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from sahs_lens.activations import collect_head_activations

    model = _load_model(args)
    samples = _load_samples(args.data)
    acts = collect_head_activations(
        model, samples, batch_size=args.batch_size, out=args.out, dataset="+".join(args.data)
    )
    print(f"{acts} -> {args.out}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from sahs_lens.head_activations import HeadActivations
    from sahs_lens.probes import probe_sweep
    from sahs_lens.ranking import rank_heads

    acts = HeadActivations.load(args.acts)
    shots: list[int | str] = [int(s) if s.isdigit() else s for s in args.shots]
    sweep = probe_sweep(acts, shots=shots, repeats=args.repeats, seed=args.seed, device=args.device)
    out = Path(args.out)
    sweep.save(out / "sweep")
    heads = rank_heads(sweep, k=args.k, criterion=args.criterion)
    heads.save(out / "heads.json")
    print(f"top {args.k} heads ({args.criterion}): {heads}\n-> {out}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from sahs_lens.interventions import ablation_curve

    model = _load_model(args)
    heads = _load_heads(args.heads)
    samples = _load_samples(args.data)
    utility = _load_samples(args.utility_data) if args.utility_data else None
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
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.json").write_text(json.dumps(curve.to_dict(), indent=2) + "\n")
    _print_json(
        {"ks": curve.ks, "safety_refusal": curve.safety_refusal, "random_refusal": curve.random_mean()}
    )
    return 0


def cmd_patch(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from sahs_lens.activations import collect_head_activations
    from sahs_lens.interventions import patching_sweep

    model = _load_model(args)
    source = _load_samples(args.source)[: args.n]
    target = _load_samples(args.target)[: args.n]
    if len(source) != len(target):
        raise SystemExit(f"got {len(source)} source and {len(target)} target samples; give as many of each")
    source_acts = collect_head_activations(model, source, batch_size=args.batch_size)
    batch = model.prepare([s.prompt for s in target], images=[s.image for s in target])
    result = patching_sweep(model, batch, source_acts, heads=_load_heads(args.heads) if args.heads else None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"effect": result.effect.contiguous()}, str(out / "patching.safetensors"))
    top = result.top(10)
    (out / "patching.json").write_text(json.dumps({"clean": result.clean, "top": top.to_list()}, indent=2))
    print(f"clean metric {result.clean:.3f}; strongest heads: {top}\n-> {out}")
    return 0


def cmd_guard_fit(args: argparse.Namespace) -> int:
    from sahs_lens.guard import SafetyHeadGuard
    from sahs_lens.head_activations import HeadActivations

    acts = HeadActivations.load(args.acts)
    guard = SafetyHeadGuard.fit(acts, _load_heads(args.heads), C=args.C)
    if args.calibrate:
        benign = HeadActivations.load(args.calibrate)
        guard.calibrate(benign.select(benign.labels == 0), target_fpr=args.target_fpr)
    guard.save(args.out)
    print(f"{guard} -> {args.out}")
    return 0


def cmd_guard_eval(args: argparse.Namespace) -> int:
    from sahs_lens.evaluation import detection_metrics
    from sahs_lens.guard import SafetyHeadGuard
    from sahs_lens.head_activations import HeadActivations

    guard = SafetyHeadGuard.load(args.guard)
    acts = HeadActivations.load(args.acts)
    metrics = detection_metrics(acts.labels.numpy(), guard.score(acts).numpy(), threshold=guard.threshold)
    print(metrics)
    if args.out:
        Path(args.out).write_text(json.dumps(metrics.to_dict(), indent=2) + "\n")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from sahs_lens.guard import SafetyHeadGuard

    model = _load_model(args)
    batch = model.prepare([args.prompt], images=[args.image])
    if args.guard:
        guard = SafetyHeadGuard.load(args.guard, model=model)
        out = guard.generate(model, batch, args.max_new_tokens, policy=args.policy)
        print(f"[guard score {out.scores[0]:.3f} -> {'FLAGGED' if out.flagged[0] else 'allowed'}]")
        print(out.texts[0])
    else:
        print(model.generate(batch, max_new_tokens=args.max_new_tokens)[0])
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sahs_lens.organism.demo import report_from_run

    path = report_from_run(args.run)
    print(f"report: {path}")
    return 0


# ---- parser --------------------------------------------------------------------------------------------
Handler = Callable[[argparse.Namespace], int]


def _command(
    subparsers: Any,
    name: str,
    help_text: str,
    example: str,
    func: Handler | None = None,
    *,
    model: bool = False,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (its help, an example in the epilog) that runs ``func``.

    ``model=True`` adds the model argument group (``--model --device --dtype --template --batch-size``).
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if model:
        _add_model_args(parser)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def _actions(subparsers: Any, name: str, help_text: str, example: str) -> Any:
    """Add subcommand ``name`` whose own subcommands (``sahs-lens name ACTION``) are added to the result."""
    parser = _command(subparsers, name, help_text, example)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sahs-lens",
        description="Find, test and deploy the safety attention heads of vision-language models.",
        epilog="Start with: sahs-lens demo        Each command has --help with an example.",
    )
    parser.add_argument("--version", action="version", version=f"sahs-lens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _command(
        sub,
        "demo",
        "the whole pipeline on the bundled model organism, with a report",
        "sahs-lens demo --out sahs_out",
        cmd_demo,
    )
    p.add_argument("--out", default="sahs_out", help="output directory (default: sahs_out)")
    p.add_argument("--quick", action="store_true", help="fewer samples and repeats (a smoke run)")
    p.add_argument("--repeats", type=int, default=20, help="probe repeats per shot count (default: 20)")
    p.add_argument("--seed", type=int, default=0)

    org = _actions(sub, "organism", "the bundled model organism", "sahs-lens organism train --out organism/")
    p = _command(
        org,
        "train",
        "train the organism from scratch on the bundled data",
        "sahs-lens organism train --out organism/ --seed 0",
        cmd_organism_train,
    )
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the shipped recipe)")

    p = _command(
        sub,
        "extract",
        "collect every head's hook_z at the decision position (resumable)",
        "sahs-lens extract --model llava-hf/llava-1.5-7b-hf --device cuda --dtype float16 "
        "--data figstep:FigStep --data mmvet:mm-vet --out runs/acts",
        cmd_extract,
        model=True,
    )
    p.add_argument("--data", action="append", required=True, help="data spec (repeat for several)")
    p.add_argument("--out", required=True, help="activations directory (resumed if it exists)")

    p = _command(
        sub,
        "probe",
        "few-shot probe sweep over every head, then rank the safety heads",
        "sahs-lens probe --acts runs/acts --out runs/probe --k 32 --criterion stable",
        cmd_probe,
    )
    p.add_argument("--acts", required=True, help="activations directory (from extract)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--shots",
        nargs="+",
        default=["2", "4", "8", "16", "32", "64"],
        help="samples per class: counts or percentages like 10%% (default: 2 4 8 16 32 64)",
    )
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=32, help="how many safety heads to keep (default: 32)")
    p.add_argument("--criterion", default="stable", choices=("mean", "stable"))
    p.add_argument("--device", default=None, help="where to solve the probes (default: cpu)")

    p = _command(
        sub,
        "ablate",
        "refusal (and utility) with the top-k safety heads vs k random heads removed",
        "sahs-lens ablate --model organism --heads runs/probe/heads.json --data harmful_text:heldout@64 "
        "--utility-data benign_text:heldout@64 --out runs/ablate",
        cmd_ablate,
        model=True,
    )
    p.add_argument("--heads", required=True, help="heads.json or a list like 'L3H1,L2H0'")
    p.add_argument("--data", action="append", required=True, help="malicious data spec(s)")
    p.add_argument("--utility-data", action="append", help="benign data spec(s) for utility")
    p.add_argument("--ks", nargs="+", type=int, default=[4, 8, 16, 32])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--mode", default="zero", choices=("zero", "mean", "resample"))
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--out", required=True)

    p = _command(
        sub,
        "patch",
        "patch each head from malicious prompts into benign ones: an effect map",
        "sahs-lens patch --model organism --source harmful_text:heldout --target benign_text:heldout "
        "--n 8 --out runs/patch",
        cmd_patch,
        model=True,
    )
    p.add_argument("--source", action="append", required=True, help="source data spec (e.g. malicious)")
    p.add_argument("--target", action="append", required=True, help="target data spec (e.g. benign)")
    p.add_argument("--n", type=int, default=8, help="prompt pairs (default: 8)")
    p.add_argument("--heads", default=None, help="restrict the sweep to these heads")
    p.add_argument("--out", required=True)

    guard = _actions(sub, "guard", "fit and evaluate a SafetyHeadGuard", "sahs-lens guard fit --help")
    p = _command(
        guard,
        "fit",
        "fit a guard on activations and safety heads",
        "sahs-lens guard fit --acts runs/acts --heads runs/probe/heads.json --calibrate runs/benign_acts "
        "--out runs/guard",
        cmd_guard_fit,
    )
    p.add_argument("--acts", required=True)
    p.add_argument("--heads", required=True)
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--calibrate", default=None, help="activations whose benign rows set the threshold")
    p.add_argument("--target-fpr", type=float, default=0.05)
    p.add_argument("--out", required=True)
    p = _command(
        guard,
        "eval",
        "detection metrics of a guard on labelled activations",
        "sahs-lens guard eval --guard runs/guard --acts runs/test_acts",
        cmd_guard_eval,
    )
    p.add_argument("--guard", required=True)
    p.add_argument("--acts", required=True)
    p.add_argument("--out", default=None, help="write the metrics as JSON here")

    p = _command(
        sub,
        "generate",
        "answer one prompt (and image), with or without a guard",
        "sahs-lens generate --prompt 'How do I bake bread?' --guard runs/guard",
        cmd_generate,
        model=True,
    )
    p.add_argument("--prompt", required=True)
    p.add_argument("--image", default=None, help="image file (optional)")
    p.add_argument("--guard", default=None, help="guard directory (from guard fit)")
    p.add_argument("--policy", default="refuse", choices=("refuse", "indicate", "prefix"))
    p.add_argument("--max-new-tokens", type=int, default=64)

    p = _command(
        sub, "report", "rebuild report.html of a run directory", "sahs-lens report --run sahs_out", cmd_report
    )
    p.add_argument("--run", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"sahs-lens {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
