"""``ProbeSweep``: the frozen artifact of a few-shot probe sweep, and how it is read, written and checked.

A sweep (``sahs_lens.probes.driver.probe_sweep``) fits a probe on every head for every shot count and
every random draw, and keeps only what it measured: ``accuracy[shot, repeat, layer, head_index]`` on the
held-out samples (and AUROC / F1 when asked), the training indices of every draw, the settings and the
provenance of the activations. Everything that reads a sweep (``rank_heads``, the plots, the report)
reads this object; nothing changes it after it is made (it is a frozen dataclass; derive a variant with
``dataclasses.replace``).

Three ways to carry it, all of them lossless:

- ``to_dict`` / ``from_dict``: plain JSON-ready data (tensors as nested lists with their dtype and shape),
  ``ProbeSweep.from_dict(sweep.to_dict()) == sweep``;
- ``save`` / ``load``: a directory with ``probe_sweep.safetensors`` (the tensors) and ``probe_sweep.json``
  (everything else, and a readable summary). No pickle: loading executes no code, and what is read is
  checked first (``sahs_lens.schema``: keys, types and ranges of the JSON; tensor shapes against it).
  ``save`` refuses to overwrite unless asked; ``load(directory, model=model)`` refuses a sweep made on
  another model;
- ``summary``: a short JSON-ready picture (per shot count the mean over heads, the best head, ...), for
  reports. It is a digest, not the sweep.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import Tensor

from model_adapters.identity import check_identity
from sahs_lens._version import __version__
from sahs_lens.atomic_files import (
    bound_metadata,
    check_bound,
    payload_metadata,
    write_atomic,
    write_json_atomic,
)
from sahs_lens.probes.shots import ShotSpec, _spec_text
from sahs_lens.schema import Rule, check, read_json

if TYPE_CHECKING:
    from model_adapters import HookedVLM

__all__ = ["METRICS", "SWEEP_FORMAT", "SWEEP_JSON", "SWEEP_TENSORS", "ProbeSweep"]

METRICS = ("accuracy", "auroc", "f1")
SWEEP_FORMAT = "sahs_lens.probe_sweep/1"
SWEEP_TENSORS = "probe_sweep.safetensors"
SWEEP_JSON = "probe_sweep.json"

_SETTINGS = ("shots", "shot_specs", "seed", "C", "standardize", "provenance", "pool", "test_idx",
             "non_converged", "sample_ids")  # fmt: skip
_DTYPES = {
    str(dtype).removeprefix("torch."): dtype
    for dtype in (torch.bool, torch.int32, torch.int64, torch.float16, torch.bfloat16, torch.float32,
                  torch.float64)
}  # fmt: skip


@dataclass(frozen=True, eq=False)
class ProbeSweep:
    """Held-out probe metrics of every head, for every shot count and every random draw.

    Attributes:
        accuracy: ``[S, R, n_layers, n_heads]`` test accuracy (S shot counts, R repeats).
        auroc, f1: same shape, when requested (else None).
        shots: the resolved training samples *per class* of each shot count (``resolve_shots``).
        shot_specs: the shot specs as given (``"16"``, ``"10%"``, ``"0.05"``).
        draws: per shot count, ``[R, 2 * shots]`` int64 indices of the training samples of each repeat
            (indices into the activations; the test set of a repeat is every other sample, or ``test_idx``).
        seed, C, standardize: the settings; ``pool``, ``test_idx``: the sample indices given (or None).
        non_converged: per shot count, the number of probes that hit the Newton step cap.
        provenance: the provenance of the activations (model, template, hook, ...).
        sample_ids: the ids of the activations' samples, so ``draws`` can be read back to samples.
    """

    accuracy: Float[Tensor, "shot repeat layer head_index"]
    shots: list[int]
    shot_specs: list[str]
    draws: list[Int[Tensor, "repeat train"]]
    seed: int
    C: float
    standardize: bool
    provenance: dict[str, Any] = field(default_factory=dict)
    auroc: Float[Tensor, "shot repeat layer head_index"] | None = None
    f1: Float[Tensor, "shot repeat layer head_index"] | None = None
    pool: list[int] | None = None
    test_idx: list[int] | None = None
    non_converged: list[int] = field(default_factory=list)
    sample_ids: list[str] = field(default_factory=list)

    # ---- shape --------------------------------------------------------------------------------------
    @property
    def repeats(self) -> int:
        return int(self.accuracy.shape[1])

    @property
    def n_layers(self) -> int:
        return int(self.accuracy.shape[2])

    @property
    def n_heads(self) -> int:
        return int(self.accuracy.shape[3])

    @property
    def metrics(self) -> list[str]:
        return [m for m in METRICS if getattr(self, m) is not None]

    def __repr__(self) -> str:
        model = self.provenance.get("model_name", "?")
        return (
            f"ProbeSweep(shots={self.shots}, repeats={self.repeats}, {self.n_layers} layers x {self.n_heads} "
            f"heads, metrics={self.metrics}, seed={self.seed}, model={model!r})"
        )

    # ---- reading ------------------------------------------------------------------------------------
    def values(self, metric: str = "accuracy") -> Float[Tensor, "shot repeat layer head_index"]:
        """The ``[S, R, L, H]`` tensor of ``metric``; a clear error if it was not computed."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        value = getattr(self, metric)
        if value is None:
            raise ValueError(
                f"this sweep did not compute {metric!r} (it has {self.metrics}); run probe_sweep "
                f"with metric=({metric!r}, ...)"
            )
        return value  # type: ignore[no-any-return]

    def shot_indices(self, at: ShotSpec | Sequence[ShotSpec] | None = "all") -> list[int]:
        """Positions along the shot axis for ``at``.

        ``at`` may be ``"all"`` / None (every shot count), a resolved count (``16``), a spec exactly as given
        (``"10%"``), or a list of those. A count that appears twice (``2`` and ``"0.1%"`` both resolving to 2)
        selects both positions.
        """
        if at is None or (isinstance(at, str) and at == "all"):
            return list(range(len(self.shots)))
        wanted = [at] if isinstance(at, (str, int, float)) else list(at)
        out: list[int] = []
        for spec in wanted:
            hits = [
                i
                for i, (n, s) in enumerate(zip(self.shots, self.shot_specs, strict=True))
                if (isinstance(spec, str) and spec.strip() == s)
                or (isinstance(spec, int) and not isinstance(spec, bool) and spec == n)
                or (isinstance(spec, float) and _spec_text(spec) == s)
            ]
            if not hits:
                raise ValueError(
                    f"shot count {spec!r} is not in this sweep; it has shots {self.shots} (given as "
                    f"{self.shot_specs}); pass one of those, a list of them, or 'all'"
                )
            out.extend(i for i in hits if i not in out)
        return out

    def mean(self, metric: str = "accuracy", at: ShotSpec | Sequence[ShotSpec] | None = None) -> Tensor:
        """Mean over repeats.

        ``at=None``: per shot count, ``[S, n_layers, n_heads]``. Otherwise (a shot, a list, or ``"all"``):
        averaged over the chosen shot counts too, ``[n_layers, n_heads]``.
        """
        per_shot = self.values(metric).mean(1)
        return per_shot if at is None else per_shot[self.shot_indices(at)].mean(0)

    def std(self, metric: str = "accuracy", at: ShotSpec | Sequence[ShotSpec] | None = None) -> Tensor:
        """Standard deviation over repeats (``n - 1`` in the denominator; 0 with a single repeat).

        Shapes as ``mean``; with several shot counts, the mean of the per-shot standard deviations.
        """
        values = self.values(metric)
        per_shot = values.std(1) if self.repeats > 1 else torch.zeros_like(values[:, 0])
        return per_shot if at is None else per_shot[self.shot_indices(at)].mean(0)

    # ---- equality --------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        """Field by field: tensors by dtype, shape and values (NaN equals NaN), everything else by ``==``."""
        if not isinstance(other, ProbeSweep):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    # ---- provenance --------------------------------------------------------------------------------
    def check_model(self, model: HookedVLM) -> None:
        """Raise ``ValueError`` naming every identity field in which ``model`` differs from the sweep's model."""
        check_identity(
            self.provenance,
            model.cfg.identity(),
            what="this probe sweep",
            fix="run probe_sweep on activations of this model",
        )

    # ---- summary, dictionaries and disk -------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: settings, and per shot count the head-level picture of each metric."""
        per_shot = []
        for i, (n, spec) in enumerate(zip(self.shots, self.shot_specs, strict=True)):
            row: dict[str, Any] = {
                "shots": n,
                "spec": spec,
                "n_train": 2 * n,
                "non_converged": self.non_converged[i] if self.non_converged else None,
            }
            for metric in self.metrics:
                mean = self.values(metric)[i].mean(0)
                best = int(torch.nan_to_num(mean, nan=-math.inf).flatten().argmax())
                layer, head = divmod(best, self.n_heads)
                row[metric] = {
                    "mean_over_heads": float(mean.nanmean()),
                    "frac_heads_above_0.8": float((mean > 0.8).float().mean()),
                    "best_head": f"L{layer}H{head}",
                    "best_mean": float(mean[layer, head]),
                    "best_std": float(self.std(metric)[i, layer, head]),
                }
            per_shot.append(row)
        return {
            "format": SWEEP_FORMAT, "package_version": __version__, "shots": self.shots,
            "shot_specs": self.shot_specs, "repeats": self.repeats, "seed": self.seed, "C": self.C,
            "standardize": self.standardize, "n_layers": self.n_layers, "n_heads": self.n_heads,
            "metrics": self.metrics, "pool_size": None if self.pool is None else len(self.pool),
            "test_size": None if self.test_idx is None else len(self.test_idx),
            "provenance": self.provenance, "per_shot": per_shot,
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The whole sweep as JSON-ready data: ``ProbeSweep.from_dict(sweep.to_dict()) == sweep``.

        Tensors (the metrics and the draws) become ``{"dtype", "shape", "values"}`` with the values as
        nested lists; the rest is stored as in ``save``'s JSON file. For a short digest use ``summary``.
        """
        return {
            "format": SWEEP_FORMAT,
            "package_version": __version__,
            **self._settings(),
            "tensors": {name: _tensor_to_data(t) for name, t in self._tensors().items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeSweep:
        """The sweep that ``to_dict`` described (checks the format; tensors come back on the CPU)."""
        _check_format(data, "the dictionary")
        if not isinstance(data.get("tensors"), Mapping):
            raise ValueError("the dictionary has no 'tensors' entry; pass the output of ProbeSweep.to_dict()")
        tensors = {name: _tensor_from_data(t, name) for name, t in data["tensors"].items()}
        return cls._from_parts(tensors, data, where="the dictionary")

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``probe_sweep.safetensors`` (metrics, draws) and ``probe_sweep.json`` (everything else).

        Each file is written atomically, the JSON last, binding the tensors by SHA-256
        (``sahs_lens.atomic_files``): a save interrupted between the two is refused at load.

        Refuses to write into a directory that already holds a sweep unless ``overwrite=True``.
        """
        directory = Path(directory)
        if (directory / SWEEP_JSON).exists() and not overwrite:
            raise FileExistsError(
                f"{directory} already holds a probe sweep; pass overwrite=True or choose another directory"
            )
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {name: t.contiguous().cpu() for name, t in self._tensors().items()}
        raw = save_bytes(tensors, metadata={"format": SWEEP_FORMAT})
        digest = write_atomic(directory / SWEEP_TENSORS, raw)
        meta = {
            "format": SWEEP_FORMAT,
            "package_version": __version__,
            **self._settings(),
            "summary": self.summary()["per_shot"],
            "files": {SWEEP_TENSORS: digest},
        }
        write_json_atomic(directory / SWEEP_JSON, meta, indent=1)
        return directory

    @classmethod
    def load(cls, directory: str | Path, model: HookedVLM | None = None) -> ProbeSweep:
        """Read a directory written by ``save`` (no code is executed: safetensors + JSON).

        With ``model``, also check that the sweep was made on activations of this model (``check_model``).

        Example::

            sweep = ProbeSweep.load("run/sweep", model=model)
            heads = rank_heads(sweep, k=32, criterion="stable")
        """
        directory = Path(directory)
        path = directory / SWEEP_JSON
        if not path.exists():
            raise FileNotFoundError(
                f"no {SWEEP_JSON} in {directory}; is this a directory written by ProbeSweep.save?"
            )
        meta = read_json(path, what="a probe sweep (written by ProbeSweep.save)")
        _check_format(meta, str(path))
        tensor_path = directory / SWEEP_TENSORS
        if not tensor_path.is_file():
            raise FileNotFoundError(
                f"{directory} has {SWEEP_JSON} but no {SWEEP_TENSORS}; save the sweep again"
            )
        raw = tensor_path.read_bytes()  # read once: what is verified below is what is loaded
        if "files" in meta:
            check_bound(
                directory,
                meta["files"],
                where=str(path),
                expected=(SWEEP_TENSORS,),
                read={SWEEP_TENSORS: raw},
            )
        try:
            tensors = load_bytes(raw)
        except Exception as error:  # safetensors raises its own error types for malformed files
            raise ValueError(
                f"{tensor_path} cannot be read as safetensors ({error}); save the sweep again"
            ) from None
        payload_meta = payload_metadata(raw)  # the header is valid: the bytes loaded
        bound_metadata(meta, payload_meta, {"format": SWEEP_FORMAT}, where=str(path))
        sweep = cls._from_parts(tensors, meta, where=str(path))
        if model is not None:
            sweep.check_model(model)
        return sweep

    # ---- one code path for dictionaries and disk ----------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        """Everything but the tensors, JSON-ready (copies: changing them leaves the sweep as it is)."""
        out = {name: copy.deepcopy(getattr(self, name)) for name in _SETTINGS}
        out["metrics"] = self.metrics
        return out

    def _tensors(self) -> dict[str, Tensor]:
        """The metrics (by name) and the draws (``draws.0``, ``draws.1``, ...)."""
        tensors = {m: self.values(m) for m in self.metrics}
        tensors.update({f"draws.{i}": d for i, d in enumerate(self.draws)})
        return tensors

    @classmethod
    def _from_parts(cls, tensors: Mapping[str, Tensor], meta: Mapping[str, Any], *, where: str) -> ProbeSweep:
        missing = [key for key in _SETTINGS if key not in meta]
        missing += [f"tensor {key!r}" for key in ("accuracy", *(f"draws.{i}" for i in range(len(meta.get("shots", ())))))
                    if key not in tensors]  # fmt: skip
        if missing:
            raise ValueError(
                f"{where}: the probe sweep lacks {', '.join(missing)}; it is incomplete, save it again"
            )
        check(dict(meta), _META_RULES, file=where)
        _check_tensors(tensors, meta, where)
        return cls(
            accuracy=tensors["accuracy"], auroc=tensors.get("auroc"), f1=tensors.get("f1"),
            shots=[int(n) for n in meta["shots"]], shot_specs=[str(s) for s in meta["shot_specs"]],
            draws=[tensors[f"draws.{i}"] for i in range(len(meta["shots"]))], seed=int(meta["seed"]),
            C=float(meta["C"]), standardize=bool(meta["standardize"]), provenance=meta["provenance"],
            pool=meta["pool"], test_idx=meta["test_idx"], non_converged=list(meta["non_converged"]),
            sample_ids=list(meta["sample_ids"]),
        )  # fmt: skip


_INDICES = Rule(list, nullable=True, items=Rule(int, ge=0))
_META_RULES = {
    "shots": Rule(list, items=Rule(int, ge=1)),
    "shot_specs": Rule(list, items=Rule(str)),
    "seed": Rule(int),
    "C": Rule(float, gt=0),
    "standardize": Rule(bool),
    "provenance": Rule(dict),
    "pool": _INDICES,
    "test_idx": _INDICES,
    "non_converged": Rule(list, items=Rule(int, ge=0)),
    "sample_ids": Rule(list, items=Rule(str)),
    "metrics": Rule(list, optional=True, items=Rule(str, choices=METRICS)),
}


def _check_tensors(tensors: Mapping[str, Tensor], meta: Mapping[str, Any], where: str) -> None:
    """The tensors agree with the settings: ``[shots, repeats, layers, heads]`` metrics, ``[R, 2n]`` draws."""
    shots = meta["shots"]
    if len(meta["shot_specs"]) != len(shots) or len(meta["non_converged"]) not in (0, len(shots)):
        raise ValueError(
            f"{where}: 'shots' ({len(shots)}), 'shot_specs' ({len(meta['shot_specs'])}) and 'non_converged' "
            f"({len(meta['non_converged'])}) must have one entry per shot count; save the sweep again"
        )
    accuracy = tensors["accuracy"]
    if accuracy.ndim != 4 or accuracy.shape[0] != len(shots) or not accuracy.is_floating_point():
        raise ValueError(
            f"{where}: tensor 'accuracy' must be [shots={len(shots)}, repeats, layers, heads] floats; got "
            f"{accuracy.dtype} {tuple(accuracy.shape)}; save the sweep again"
        )
    provenance = meta["provenance"]
    for key, size in (("n_layers", accuracy.shape[2]), ("n_heads", accuracy.shape[3])):
        if key in provenance and provenance[key] != size:
            raise ValueError(f"{where}: provenance {key} is {provenance[key]!r} but 'accuracy' has {size}")
    named = meta.get("metrics")
    for metric in ("auroc", "f1"):
        if metric in tensors and tensors[metric].shape != accuracy.shape:
            raise ValueError(
                f"{where}: tensor {metric!r} has shape {tuple(tensors[metric].shape)}, 'accuracy' "
                f"{tuple(accuracy.shape)}; save the sweep again"
            )
        if named is not None and (metric in tensors) != (metric in named):
            raise ValueError(f"{where}: 'metrics' lists {named} but the tensors hold {sorted(tensors)}")
    for metric in METRICS:  # an AUROC or F1 is undefined (NaN) on a one-class test set; an accuracy never is
        values = tensors.get(metric)
        ok = (values >= 0) & (values <= 1) if values is not None else None
        if ok is not None and metric != "accuracy":
            ok |= values.isnan()  # type: ignore[union-attr]
        if ok is not None and values is not None and values.numel() and not bool(ok.all()):
            raise ValueError(
                f"{where}: tensor {metric!r} holds {float(values[~ok][0])!r}, but a probe's {metric} is a number "
                "in [0, 1]; the sweep is damaged or was not written by sahs_lens: run the sweep again"
            )
    n_samples = len(meta["sample_ids"])
    for i, n in enumerate(shots):
        draws = tensors[f"draws.{i}"]
        if tuple(draws.shape) != (accuracy.shape[1], 2 * n) or draws.is_floating_point():
            raise ValueError(
                f"{where}: tensor 'draws.{i}' must be [repeats={accuracy.shape[1]}, 2 x {n} shots] indices; "
                f"got {draws.dtype} {tuple(draws.shape)}; save the sweep again"
            )
        if n_samples and draws.numel() and not (int(draws.min()) >= 0 and int(draws.max()) < n_samples):
            raise ValueError(f"{where}: tensor 'draws.{i}' holds indices outside the {n_samples} samples")


def _check_format(meta: Mapping[str, Any], where: str) -> None:
    if not isinstance(meta, Mapping) or meta.get("format") != SWEEP_FORMAT:
        found = meta.get("format") if isinstance(meta, Mapping) else type(meta).__name__
        raise ValueError(
            f"{where} is not a sahs_lens probe sweep (format {found!r}, expected {SWEEP_FORMAT!r})"
        )


def _tensor_to_data(t: Tensor) -> dict[str, Any]:
    return {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape), "values": t.cpu().tolist()}


def _tensor_from_data(data: Mapping[str, Any], name: str) -> Tensor:
    check(data, _TENSOR_RULES, file="the dictionary", path=f"tensors.{name}")
    dtype = _DTYPES.get(str(data.get("dtype")))
    if dtype is None:
        raise ValueError(
            f"tensor {name!r} has dtype {data.get('dtype')!r}; expected one of {sorted(_DTYPES)}"
        )
    try:
        return torch.tensor(data["values"], dtype=dtype).reshape(data["shape"])
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise ValueError(f"tensor {name!r} cannot be rebuilt from its values and shape ({error})") from None


_TENSOR_RULES = {"dtype": Rule(str), "shape": Rule(list, items=Rule(int, ge=0)), "values": Rule(list)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or (a.dtype, a.shape) != (b.dtype, b.shape):
            return False
        a, b = a.cpu(), b.cpu()
        return torch.equal(a, b) or (
            a.is_floating_point() and bool(((a == b) | (a.isnan() & b.isnan())).all())
        )
    if isinstance(a, (list, tuple)) and any(isinstance(x, Tensor) for x in a):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)
