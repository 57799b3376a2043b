"""What a run directory of the CLI holds, found and read back through the strict readers.

``find_artifacts(run_dir)`` looks in ``run_dir``, its subdirectories and theirs (two levels, so ``runs/``
holding ``acts/``, ``probe/sweep/`` and ``guard/`` is one run) for what the subcommands write:

=================  ==========================================  =============================================
kind               written by                                  read with
=================  ==========================================  =============================================
activations        ``sahs-lens extract --out DIR``             ``HeadActivations.load`` (manifest.json)
probe sweep        ``sahs-lens probe`` (``OUT/sweep``)         ``ProbeSweep.load`` (probe_sweep.json)
head set           ``sahs-lens probe`` (``OUT/heads.json``)    ``HeadSet.load``
guard              ``sahs-lens guard fit --out DIR``           ``SafetyHeadGuard.load`` (guard.json)
ablation           ``sahs-lens ablate`` (``OUT/ablation.json``)  ``schema.read_json`` + ``check``
patching           ``sahs-lens patch`` (``OUT/patching.*``)    ``schema`` + safetensors (no pickle)
guard evaluation   ``sahs-lens guard eval --out FILE.json``    ``schema.read_json`` + ``check``
=================  ==========================================  =============================================

Every file is checked before it is used, and a damaged artifact raises the reader's ``ValueError`` naming
the file: a report never leaves out an artifact silently. Other JSON files are looked at only to see
whether they are a guard evaluation; the ones that are not are listed as not read. A demo run (its
``figures/index.json``) is not read here: ``sahs_lens.organism.demo.report_from_run`` rebuilds its report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sahs_lens.atomic_files import check_bound
from sahs_lens.guard import SafetyHeadGuard
from sahs_lens.guard.detector import GUARD_JSON
from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import HeadSet
from sahs_lens.interventions import AblationCurve, PatchingResult
from sahs_lens.probes import ProbeSweep
from sahs_lens.probes.sweep import SWEEP_JSON
from sahs_lens.schema import Rule, check, read_json
from sahs_lens.shards import MANIFEST

__all__ = ["KINDS", "Artifact", "RunContents", "find_artifacts", "is_demo_run"]

KINDS = {
    "activations": "an activations directory (manifest.json; sahs-lens extract --out DIR)",
    "probe sweep": "a probe sweep (probe_sweep.json; sahs-lens probe writes OUT/sweep)",
    "head set": "a head set (heads.json; sahs-lens probe writes OUT/heads.json)",
    "guard": "a guard (guard.json; sahs-lens guard fit --out DIR)",
    "ablation": "an ablation curve (ablation.json; sahs-lens ablate --out DIR)",
    "patching": "a patching map (patching.json + patching.safetensors; sahs-lens patch --out DIR)",
    "guard evaluation": "a guard evaluation (a JSON file; sahs-lens guard eval --out FILE)",
}
"""Each kind of artifact a run report reads, and what the CLI writes it as."""

_MAX_DIRS = 256
_MAX_EVAL_BYTES = 2 << 20
_RESERVED_JSON = {MANIFEST, SWEEP_JSON, GUARD_JSON, "heads.json", "ablation.json", "patching.json"}
_DEMO_INDEX = Path("figures") / "index.json"

_RATE = Rule(float, ge=0.0, le=1.0)
_ABLATION_RULES = {
    "ks": Rule(list, items=Rule(int, ge=1)),
    "baseline_refusal": _RATE,
    "safety_refusal": Rule(list, items=_RATE),
    "random_refusal": Rule(list, items=Rule(list, items=_RATE)),
    "baseline_utility": Rule(float, optional=True, nullable=True),
    "safety_utility": Rule(list, optional=True, nullable=True, items=Rule(float)),
    "random_utility": Rule(list, optional=True, nullable=True, items=Rule(list, items=Rule(float))),
    "seeds": Rule(list, optional=True, items=Rule(int)),
    "mode": Rule(str, optional=True),
    "heads": Rule(str, optional=True),
    "judge": Rule(str, optional=True),
    "baseline_asr": Rule(float, optional=True, nullable=True, ge=0.0, le=1.0),
    "safety_asr": Rule(list, optional=True, items=_RATE),
    "random_asr": Rule(list, optional=True, items=Rule(list, items=_RATE)),
    "success": Rule(str, optional=True),
}
_PATCHING_RULES = {
    "clean": Rule(float),
    "top": Rule(list, optional=True, items=Rule(str)),
    "metric": Rule(str, optional=True),
}
_ESTIMATE = {
    "value": Rule(float, finite=False),
    "low": Rule(float, optional=True, nullable=True),
    "high": Rule(float, optional=True, nullable=True),
}
_EVAL_RULES = {
    "metrics": Rule(dict),
    "threshold": Rule(float),
    "n_positive": Rule(int, ge=0),
    "n_negative": Rule(int, ge=0),
    "bootstrap": Rule(int, optional=True, ge=0),
    "ci": Rule(float, optional=True),
    "seed": Rule(int, optional=True, nullable=True),
    "ci_method": Rule(str, optional=True),
}


@dataclass(frozen=True)
class Artifact:
    """One artifact of a run: its kind (a key of ``KINDS``), where it is, and what was read from it."""

    kind: str
    path: Path
    value: Any


@dataclass
class RunContents:
    """Everything ``find_artifacts`` found: the artifacts, and what it looked at but did not read."""

    root: Path
    artifacts: list[Artifact] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def of(self, kind: str) -> list[Artifact]:
        return [a for a in self.artifacts if a.kind == kind]

    def where(self, artifact: Artifact) -> str:
        """The artifact's path relative to the run directory ("." for the run directory itself)."""
        rel = artifact.path.relative_to(self.root).as_posix() if artifact.path != self.root else "."
        return rel


def is_demo_run(directory: str | Path) -> bool:
    """Whether ``directory`` is a ``sahs-lens demo`` run (its ``run.json`` or ``figures/index.json`` exists)."""
    return (Path(directory) / _DEMO_INDEX).is_file() or (Path(directory) / "run.json").is_file()


def find_artifacts(run_dir: str | Path) -> RunContents:
    """Find and read every artifact in ``run_dir`` and two levels of subdirectories below it.

    Raises:
        FileNotFoundError: ``run_dir`` is not a directory.
        ValueError: an artifact fails its reader's checks (the message names the file and the key).
    """
    root = Path(run_dir)
    if not root.is_dir():
        what = "a file" if root.exists() else "missing"
        raise FileNotFoundError(f"{root} is {what}; sahs-lens report --run takes a run directory")
    contents = RunContents(root)
    for directory in _directories(root, contents):
        _read_directory(directory, contents)
    return contents


def _directories(root: Path, contents: RunContents) -> list[Path]:
    """``root`` and the subdirectories two levels down (hidden ones, links and demo runs left out)."""
    found, level = [root], [root]
    for _ in range(2):
        below = []
        for directory in level:
            for child in sorted(directory.iterdir()):
                if (
                    not child.is_dir()
                    or child.is_symlink()
                    or child.name.startswith(".")
                    or child.name == "figures"
                ):
                    continue
                if is_demo_run(child):
                    contents.skipped.append(
                        (child, "a demo run: sahs-lens report --run on it rebuilds its report")
                    )
                    continue
                below.append(child)
        found.extend(below)
        level = below
        if len(found) > _MAX_DIRS:
            raise ValueError(f"{root} holds more than {_MAX_DIRS} directories; point --run at one run")
    return found


def _read_directory(directory: Path, contents: RunContents) -> None:
    def add(kind: str, path: Path, value: Any) -> None:
        contents.artifacts.append(Artifact(kind, path, value))

    if (directory / MANIFEST).is_file():
        add("activations", directory, HeadActivations.load(directory))
    if (directory / SWEEP_JSON).is_file():
        add("probe sweep", directory, ProbeSweep.load(directory))
    if (directory / "heads.json").is_file():
        add("head set", directory / "heads.json", HeadSet.load(directory / "heads.json"))
    if (directory / GUARD_JSON).is_file():
        add("guard", directory, SafetyHeadGuard.load(directory))
    if (directory / "ablation.json").is_file():
        add("ablation", directory, read_ablation(directory / "ablation.json"))
    if (directory / "patching.json").is_file():
        add("patching", directory, read_patching(directory))
    for path in sorted(directory.glob("*.json")):
        if path.name in _RESERVED_JSON or not path.is_file():
            continue
        evaluation, why = _guard_evaluation(path)
        if evaluation is None:
            contents.skipped.append((path, why))
        else:
            add("guard evaluation", path, evaluation)


def read_ablation(path: Path) -> AblationCurve:
    """The ``AblationCurve`` of an ``ablation.json`` (``sahs-lens ablate``), checked key by key."""
    data = read_json(path, what="an ablation curve (sahs-lens ablate)")
    check(data, _ABLATION_RULES, file=path)
    n = len(data["ks"])
    rows = {
        "safety_refusal": [data["safety_refusal"]],
        "random_refusal": data["random_refusal"],
        "safety_utility": [data["safety_utility"]] if data.get("safety_utility") is not None else [],
        "random_utility": data.get("random_utility") or [],
        "safety_asr": [data["safety_asr"]] if data.get("safety_asr") else [],
        "random_asr": data.get("random_asr") or [],
    }
    for key, lists in rows.items():
        for row in lists:
            if len(row) != n:
                raise ValueError(
                    f"{path}: {key!r} has {len(row)} values per row for {n} ks; the file is damaged"
                )
    fields = {key: data[key] for key in _ABLATION_RULES if key in data}
    return AblationCurve(**fields)


def read_patching(directory: Path) -> PatchingResult:
    """The ``PatchingResult`` of ``patching.json`` + ``patching.safetensors`` (``sahs-lens patch``)."""
    from safetensors.torch import load as load_bytes

    path = directory / "patching.json"
    data = read_json(path, what="a patching summary (sahs-lens patch)")
    check(data, _PATCHING_RULES, file=path)
    tensors_path = directory / "patching.safetensors"
    if not tensors_path.is_file():
        raise FileNotFoundError(f"{directory} has patching.json but no patching.safetensors; patch again")
    raw = tensors_path.read_bytes()  # read once: what is verified is what is loaded
    if "files" in data:  # written by a binding save (sahs_lens.atomic_files)
        check_bound(directory, data["files"], where=str(path), expected=("patching.safetensors",),
                    read={"patching.safetensors": raw})  # fmt: skip
    try:
        effect = load_bytes(raw).get("effect")
    except Exception as error:  # safetensors raises its own error types for malformed files
        raise ValueError(f"{tensors_path} cannot be read as safetensors ({error}); patch again") from None
    if effect is None or effect.ndim != 2 or not effect.is_floating_point():
        raise ValueError(f"{tensors_path} must hold 'effect', a [layer, head] float tensor; patch again")
    if not torch.isfinite(effect).all():
        raise ValueError(f"{tensors_path}: 'effect' holds NaN or inf values; patch again")
    metric = data.get("metric", "RefusalLogitDiff")  # the only metric sahs-lens patch uses
    return PatchingResult(effect=effect.float(), clean=float(data["clean"]), patched_all=None, metric=metric)


def read_guard_evaluation(path: Path) -> dict[str, Any]:
    """The metrics ``sahs-lens guard eval --out FILE`` wrote (``DetectionMetrics.to_dict``), checked."""
    data = read_json(path, what="a guard evaluation (sahs-lens guard eval --out)")
    check(data, _EVAL_RULES, file=path)
    for name, estimate in data["metrics"].items():
        check(estimate, _ESTIMATE, file=path, path=f"metrics.{name}")
    return dict(data)


def _guard_evaluation(path: Path) -> tuple[dict[str, Any] | None, str]:
    """A JSON file that looks like a guard evaluation, read strictly; else None and why it was not read."""
    if path.stat().st_size > _MAX_EVAL_BYTES:
        return None, "not read: larger than any guard evaluation"
    try:
        data = read_json(path, what="a JSON file", top=None)
    except ValueError as error:
        return None, f"not read: {str(error)[:200]}"
    if isinstance(data, dict) and data.get("format") == "sahs_lens.compare/1":
        return None, "a detector comparison (sahs-lens compare): its own page is compare.html beside it"
    if not (isinstance(data, dict) and "metrics" in data and "n_positive" in data):
        return None, "not read: not a file sahs-lens writes"
    return read_guard_evaluation(path), ""
