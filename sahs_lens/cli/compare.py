"""``sahs-lens compare``: every detector trained on one set and scored on every test set.

With no data argument it runs the default comparison on the bundled organism (``organism.demo.comparison``:
typed, typed with an image, typographic, each harmful source, leave one source out). With ``--train SPEC``
(repeat to join several specs into one training set) and ``--test NAME=SPEC`` (repeat; specs of one NAME are
joined, so a test set can hold a harmful and a benign spec) it compares on your data. It writes
``OUT/compare.json`` and ``OUT/compare.html``. Building this parser imports nothing heavy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sahs_lens.cli.checks import fraction, non_negative_int, positive_int

__all__ = ["add_compare_arguments", "cmd_compare"]

OUTPUTS = ("compare.json", "compare.html")


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``sahs-lens compare`` (the model group is added by the parser)."""
    p.add_argument(
        "--out", required=True, help="directory for compare.json and compare.html (new, or without them)"
    )
    p.add_argument("--train", action="append", default=None, metavar="SPEC",
                   help="data spec of the training set (repeat to join several); default: the organism's sets")  # fmt: skip
    p.add_argument("--test", action="append", default=None, metavar="NAME=SPEC",
                   help="a test set: NAME=SPEC (repeat; the specs of one NAME are joined)")  # fmt: skip
    p.add_argument("--detectors", default=None,
                   help="comma-separated detectors (default: all; a wrong name lists them)")  # fmt: skip
    p.add_argument("--k", type=positive_int, default=8, help="heads of the head detectors (default: 8)")
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of splits, sweeps, draws, bootstrap"
    )
    p.add_argument(
        "--allow-overlap", action="store_true", help="measure even if train and test share sample ids"
    )
    p.add_argument(
        "--bootstrap", type=non_negative_int, default=500, help="bootstrap replicates (default: 500)"
    )
    p.add_argument("--target-fpr", type=fraction, default=0.05,
                   help="false-positive rate each threshold is calibrated for (default: 0.05)")  # fmt: skip
    p.add_argument("--max-new-tokens", type=positive_int, default=24, help="answer length of model_refusal")
    p.add_argument("--quick", action="store_true", help="the default run with small sets (a smoke run)")


def _parse_tests(items: list[str]) -> dict[str, list[str]]:
    tests: dict[str, list[str]] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValueError(
                f"--test {item!r} is not NAME=SPEC; give a name and a data spec, e.g. --test heldout=harmful_text:heldout"
            )
        tests.setdefault(name.strip(), []).append(spec.strip())
    return tests


def _closing_note(result: Any) -> list[str]:
    """What to read first: the lexical control on the typographic set, and the guard's margin above it."""
    lines = []
    for train, test in result.pairs():
        if test != "typographic" or "sahs" not in result.detectors or "text_only" not in result.detectors:
            continue
        g, c = result.auroc("sahs", train, test), result.auroc("text_only", train, test)
        if g is None or c is None:
            continue
        kind = "transfer" if result.row("sahs", train, test)["transfer"] else "in distribution"
        gap = round(g - c, 3)
        side = f"{gap:.3f} above it" if gap > 0 else f"{-gap:.3f} below it" if gap < 0 else "level with it"
        lines.append(
            f"{train} -> typographic ({kind}): text_only AUROC {c:.3f} (every prompt has the same text; chance "
            f"is 0.5), sahs {g:.3f}, {side}"
        )
    for train, test in result.pairs():
        best = result.ranking(train, test)
        if best and best[0][0] != "sahs" and "sahs" in result.detectors:
            g = result.auroc("sahs", train, test)
            if g is not None and round(best[0][1], 3) > round(g, 3):  # a win that the printed numbers show
                lines.append(f"{train} -> {test}: {best[0][0]} ({best[0][1]:.3f}) beats sahs ({g:.3f})")
    return lines


def _default_sets(args: argparse.Namespace, organism: bool) -> tuple[Any, Any, Any]:
    """The default sets: the organism's (typed, typographic, sources), or a language model's text sets
    (``detectors.text_sets``: in distribution, leave one source out, the contrast set)."""
    if organism:
        from sahs_lens.organism.demo.comparison import organism_sets

        sizes = (
            {"n_train": 40, "n_typographic_train": 20, "n_benign_test": 40, "n_image_test": 20, "n_harmful_test": 60}
            if args.quick
            else {}
        )  # fmt: skip
        return organism_sets(seed=args.seed, **sizes)
    from sahs_lens.detectors.text_sets import language_model_sets

    quick = {"n_train": 40, "n_benign_test": 40, "n_contrast": 40, "n_harmful_test": 60}
    return language_model_sets(seed=args.seed, **(quick if args.quick else {}))


def cmd_compare(args: argparse.Namespace) -> int:
    from model_adapters.loading import is_language_model
    from sahs_lens.cli.checks import check_outputs
    from sahs_lens.cli.loading import is_organism, load_model, load_samples
    from sahs_lens.detectors import DEFAULT_DETECTORS, check_detector_names, compare
    from sahs_lens.detectors.page import write_compare_page

    out = check_outputs(args.out, list(OUTPUTS))
    detectors = check_detector_names(args.detectors) if args.detectors else list(DEFAULT_DETECTORS)
    organism = is_organism(args.model)
    if (args.train is None) != (args.test is None):
        raise ValueError(
            "give both --train SPEC and --test NAME=SPEC, or neither (the default sets of the organism or of a "
            "language model)"
        )
    if args.train is None and not organism and not is_language_model(args.model):
        raise ValueError(
            f"the default sets are drawn for the organism and for language models; with the vision-language "
            f"model {args.model} give --train SPEC and --test NAME=SPEC"
        )
    model = load_model(args) if set(detectors) != {"text_only"} else None
    if args.train is None:
        trains, tests, pairs = _default_sets(args, organism)
    else:
        tests_specs = _parse_tests(args.test)
        trains = {"train": load_samples(args.train, organism=organism)}
        tests = {name: load_samples(specs, organism=organism) for name, specs in tests_specs.items()}
        pairs = None
    result = compare(
        model, trains, tests, detectors=detectors, k=args.k, seed=args.seed, pairs=pairs,
        allow_overlap=args.allow_overlap, bootstrap=args.bootstrap, target_fpr=args.target_fpr,
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, progress=True, say=print,
    )  # fmt: skip
    path = result.save(Path(out) / "compare.json")
    page = write_compare_page(out, result.to_dict())
    print("\nAUROC (rows: detectors; columns: training set -> test set)")
    print(result.table())
    for line in _closing_note(result):
        print(line)
    if args.train is None and not args.quick and organism:
        from sahs_lens.organism.demo.comparison import readme_table

        print(
            "\nthe README's table (section 'Detectors side by side'):\n"
            + readme_table(result.to_dict(roc=False))
        )
    print(f"\ncompare.json: {path}\ncompare.html: {page}\n({result.timing['total_s']:.0f} s in all)")
    return 0
