"""The paths a command was given, checked before anything heavy is imported: an input error in under a second.

Each command imports torch, transformers and the model code when it runs (seconds); a missing directory
used to be reported only after that. ``precheck`` looks at the arguments first, with nothing but the
standard library: every path flag (``--acts``, ``--calibrate``, ``--reference``, ``--guard``, ``--image``,
``--run``, a ``--heads`` file) must exist as what it should be, and every data spec that names a file or a
directory (``csv:FILE:...``, ``figstep:DIR``) must point at one. What it cannot
judge cheaply (the contents) is left to the command's own strict readers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["PATH_KINDS", "precheck"]

_DIRS = {  # flag -> (what must be inside, what writes it)
    "acts": ("manifest.json", "sahs-lens extract --out DIR"),
    "calibrate": ("manifest.json", "sahs-lens extract --out DIR"),
    "reference": ("manifest.json", "sahs-lens extract --out DIR"),
    "guard": ("guard.json", "sahs-lens guard fit --out DIR"),
}
_SPECS = ("data", "utility_data", "source", "target", "train", "test")
PATH_KINDS = ("figstep", "figstep-text", "mmsafetybench", "vlguard", "mmvet", "advbench", "harmbench",
              "jailbreakbench", "alpaca", "csv", "jsonl")  # fmt: skip
"""The data-spec kinds whose second field is a file or directory (``sahs_lens.data.spec.SPEC_FORMS``'s keys;
a test keeps the two equal)."""


def precheck(args: argparse.Namespace) -> None:
    """Raise ``FileNotFoundError`` for the first path argument that does not exist as it should (and
    ``ValueError`` for ``ablate --mode mean/resample`` without ``--reference``)."""
    for flag, (inside, writer) in _DIRS.items():
        value = getattr(args, flag, None)
        if isinstance(value, str) and not (Path(value).expanduser() / inside).is_file():
            what = "does not exist" if not Path(value).expanduser().exists() else f"holds no {inside}"
            raise FileNotFoundError(f"--{flag} {value} {what}; give a directory written by {writer}")
    image = getattr(args, "image", None)
    if isinstance(image, str) and not Path(image).expanduser().is_file():
        raise FileNotFoundError(f"--image {image} does not exist; give an image file (PNG, JPEG, ...)")
    run = getattr(args, "run", None)
    if isinstance(run, str) and not Path(run).expanduser().is_dir():
        raise FileNotFoundError(f"--run {run} is not a directory; give the --out of a sahs-lens run")
    heads = getattr(args, "heads", None)
    if (
        isinstance(heads, str)
        and (heads.endswith(".json") or "/" in heads)
        and not Path(heads).expanduser().exists()
    ):
        raise FileNotFoundError(
            f"--heads {heads} does not exist; give heads.json (from probe) or heads like L3H1,L2H0"
        )
    for name in _SPECS:
        for spec in getattr(args, name, None) or []:
            _check_spec(f"--{name.replace('_', '-')}", spec)
    mode = getattr(args, "mode", None)
    if args.command == "ablate" and mode != "zero" and not getattr(args, "reference", None):
        raise ValueError(
            f"--mode {mode} takes the heads' values from reference prompts: give --reference DIR, the "
            "activations of benign prompts (sahs-lens extract --data ... --out DIR), or use --mode zero"
        )


def _check_spec(flag: str, spec: str) -> None:
    text = spec.split("=", 1)[1] if "=" in spec.split(":", 1)[0] else spec  # --test NAME=SPEC
    text = text.rsplit("@", 1)[0] if "@" in text else text
    kind, _, rest = text.partition(":")
    if not rest or kind not in PATH_KINDS:  # a bundled set, or a kind the spec reader will name as unknown
        return
    path = Path(rest.split(":", 1)[0]).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{flag} {spec}: {path} does not exist")
