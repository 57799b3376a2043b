"""The words of ``sahs-lens --help``: the data-spec grammar and each command's examples.

Every command's first example runs as written on the bundled organism on a CPU, in seconds, and the
examples chain (``tests/e2e/test_cli_examples.py`` runs them in ``CHAIN`` order in an empty directory); the
last line shows the same command on a real VLM on a GPU. The spec forms below are ``sahs_lens.data.spec``'s
(``SPEC_FORMS``; a test checks that every form appears here).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHAIN",
    "DATA_SPECS",
    "EXAMPLES",
    "EXAMPLE_HEADING",
    "GPU_HEADING",
    "MAIN_EPILOG",
    "Examples",
    "shipped_recipe",
]

DATA_SPECS = """\
data specs (--data, --utility-data, --source, --target): one string names a data set
  NAME:PART                    a bundled set, PART train or heldout (held-out parts were never trained on):
                                 harmful_text  harmful requests (AdvBench, HarmBench, JailbreakBench, SafeBench)
                                 benign_text   benign Alpaca instructions
                                 figstep_attack  harmful requests written into an image (FigStep), label 1
                                 figstep_benign  benign instructions written into an image, label 0
                                 benign_overlap  benign instructions with harmful-sounding words, label 0
  figstep:DIR                  FigStep SafeBench: typographic images + FigStep's prompt (label 1)
  figstep-text:DIR             the SafeBench questions as text (label 1)
  mmsafetybench:DIR[:VARIANT]  MM-SafetyBench, VARIANT SD, SD_TYPO (default), TYPO or text (label 1)
  vlguard:DIR[:SPLIT[:SUBSET]] VLGuard, SPLIT test/train, SUBSET unsafes/safe_unsafes/safe_safes/all
  mmvet:DIR                    MM-Vet (label 0)
  advbench:DIR  harmbench:DIR  jailbreakbench:DIR (label 1)   alpaca:DIR (label 0)
  csv:FILE:COLUMN[:LABEL]      one prompt per row of COLUMN; LABEL 0 or 1 (default 1)
  jsonl:FILE[:LABEL]           {"prompt", "label", "image"} per line; LABEL overrides the field
  SPEC@N                       only the first N samples, e.g. harmful_text:heldout@64
  DIR and FILE are paths; [..] is optional. On the organism (--model organism, the default) typographic
  sets are drawn the way it reads (128 px, one word per vision patch): figstep_* and figstep:DIR are
  redrawn, MM-SafetyBench's images are refused.
  e.g. --data harmful_text:train@48 --data benign_text:train@48
       --data figstep_attack:heldout@48 --data figstep_benign:heldout@48
       --data csv:my_prompts.csv:prompt:0      (column "prompt", benign)"""

MAIN_EPILOG = f"""\
Start with:  sahs-lens demo --quick    (the whole method on the bundled organism in seconds; drop
             --quick for the full run, a few minutes). Each command's --help ends with examples that run on
             the organism as written, in seconds, and the same command on a GPU model. The examples build
             on each other in one directory: demo, organism train, extract, probe, ablate, patch, guard
             fit, guard eval, generate, serve, compare, report.

{DATA_SPECS}

threads: before torch loads, the CLI sets OMP_WAIT_POLICY=PASSIVE and OMP_NUM_THREADS / MKL_NUM_THREADS to
the cores available, unless you set them, and says so on stderr.

several GPUs or machines: torchrun --standalone --nproc_per_node=N -m sahs_lens extract ... (the same
directory as one process, bit for bit; resumable per rank); a model larger than one GPU: extract
--device-map auto --max-memory 0=40GiB,1=40GiB. Commands for clusters: docs/scale-out.md."""

EXAMPLE_HEADING = "example (runs as written on the bundled organism, on a CPU):"
GPU_HEADING = "on a real VLM (LLaVA-1.5-7B from the hub, on a GPU):"


@dataclass(frozen=True)
class Examples:
    """A command's examples: ``organism`` lines (run as written, in order), one ``gpu`` line (or none), and
    ``after``: which examples' output they read (``"after the extract example"``)."""

    organism: tuple[str, ...]
    gpu: str | None = None
    after: str = ""

    def epilog(self) -> str:
        heading = EXAMPLE_HEADING
        if self.after:
            heading = heading.replace("):", f", {self.after}):")
        lines = [heading, *(wrap(line) for line in self.organism)]
        if self.gpu:
            lines += [GPU_HEADING, wrap(self.gpu)]
        return "\n".join(lines)


def wrap(command: str, width: int = 100) -> str:
    """``command`` indented by two spaces, broken before an option with a shell line continuation (``\\``)
    where a line would pass ``width``: it still runs when pasted into a shell."""
    lines: list[str] = []
    for piece in re.split(r" (?=--)", command):
        if lines and len(lines[-1]) + 1 + len(piece) <= width - 2:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return "  " + " \\\n      ".join(lines)


_LLAVA = "--model llava-hf/llava-1.5-7b-hf --device cuda --dtype float16"

EXAMPLES: dict[str, Examples] = {
    "demo": Examples(("sahs-lens demo --quick --out sahs_out",)),
    "organism": Examples(("sahs-lens organism train --help",)),
    "organism train": Examples(
        ("sahs-lens organism train --out my_organism --steps 3",),
        None,
    ),
    "extract": Examples(
        (
            "sahs-lens extract --data harmful_text:train@100 --data benign_text:train@100 "
            "--data figstep_attack:train@100 --data figstep_benign:train@100 --out runs/acts",
        ),
        f"sahs-lens extract {_LLAVA} --data figstep:data/FigStep --data mmvet:data/mm-vet --out runs/llava_acts",
    ),
    "probe": Examples(
        ("sahs-lens probe --acts runs/acts --out runs/probe --shots 1 2 4 8 --repeats 5 --k 8",),
        "sahs-lens probe --acts runs/llava_acts --out runs/llava_probe --k 32 --device cuda",
        after="after the extract example",
    ),
    "ablate": Examples(
        (
            "sahs-lens ablate --heads runs/probe/heads.json --data harmful_text:heldout@16 "
            "--utility-data benign_text:heldout@16 --ks 2 8 --seeds 0 --max-new-tokens 16 --out runs/ablate",
        ),
        f"sahs-lens ablate {_LLAVA} --heads runs/llava_probe/heads.json --data figstep:data/FigStep@100 "
        "--utility-data mmvet:data/mm-vet@100 --out runs/llava_ablate",
        after="after the probe example",
    ),
    "patch": Examples(
        (
            "sahs-lens patch --source harmful_text:heldout --target benign_text:heldout --n 8 --out runs/patch",
        ),
        f"sahs-lens patch {_LLAVA} --source figstep:data/FigStep --target mmvet:data/mm-vet --n 16 "
        "--out runs/llava_patch",
    ),
    "guard": Examples(("sahs-lens guard fit --help",)),
    "guard fit": Examples(
        (
            "sahs-lens guard fit --acts runs/acts --heads runs/probe/heads.json --calibrate runs/acts "
            "--out runs/guard",
        ),
        "sahs-lens guard fit --acts runs/llava_acts --heads runs/llava_probe/heads.json "
        "--calibrate runs/llava_acts --out runs/llava_guard",
        after="after the extract and probe examples",
    ),
    "guard eval": Examples(
        (
            "sahs-lens guard eval --guard runs/guard --data figstep_attack:heldout@48 "
            "--data figstep_benign:heldout@48 --out runs/guard_eval.json",
        ),
        f"sahs-lens guard eval --guard runs/llava_guard {_LLAVA} --data figstep:data/FigStep "
        "--data mmvet:data/mm-vet",
        after="after the guard fit example",
    ),
    "generate": Examples(
        (
            "sahs-lens generate --guard runs/guard --prompt 'Give three tips for staying healthy.'",
            "sahs-lens generate --guard runs/guard --prompt 'Write a phishing email to steal bank passwords.'",
        ),
        f"sahs-lens generate {_LLAVA} --guard runs/llava_guard --prompt 'What is in this image?' "
        "--image photo.jpg",
        after="after the guard fit example",
    ),
    "serve": Examples(
        ("sahs-lens serve --guard runs/guard --port 0 --check",),
        f"sahs-lens serve {_LLAVA} --guard runs/llava_guard --port 8000",
        after="after the guard fit example",
    ),
    "compare": Examples(
        ("sahs-lens compare --quick --detectors sahs,text_only --bootstrap 100 --out runs/compare",),
        f"sahs-lens compare {_LLAVA} --train harmful_text:train --train benign_text:train "
        "--test figstep=figstep:data/FigStep --test figstep=figstep_benign:heldout --out runs/llava_compare",
    ),
    "report": Examples(
        ("sahs-lens report --run sahs_out", "sahs-lens report --run runs"),
        after="after the demo example and the others",
    ),
}
"""Command (``"guard fit"`` for an action) -> its examples."""

CHAIN = (
    "organism",
    "guard",
    "demo",
    "organism train",
    "extract",
    "probe",
    "ablate",
    "patch",
    "guard fit",
    "guard eval",
    "generate",
    "serve",
    "compare",
    "report",
)
"""The order in which the organism examples depend on each other (``report`` reads the demo's run, ...)."""


def shipped_recipe() -> tuple[int, float, int]:
    """``(steps, minutes, cores)`` of the shipped organism's training run, read from its own record
    (``organism/checkpoint/metrics.json``: JSON only, so ``--help`` loads no model code)."""
    record = json.loads(
        (Path(__file__).resolve().parents[1] / "organism" / "checkpoint" / "metrics.json").read_text()
    )
    training = record["training"]
    return (
        int(training["config"]["steps"]),
        float(training["train_seconds"]) / 60,
        int(training["machine"]["cores"]),
    )
