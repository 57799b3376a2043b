"""Reading a saved guard: ``guard.json`` and ``guard.safetensors`` are checked before a guard is built.

A guard decides which requests a model refuses, so its files are read as untrusted input
(``sahs_lens.schema``): every key of ``guard.json`` has a type and a range (``threshold`` strictly inside
(0, 1), ``d_head`` a positive int, ``provenance`` and ``training`` objects, ``nonfinite`` one of the
policies), the weight must have ``len(heads) x d_head`` finite entries and the bias must be finite. A
``provenance`` that lacks identity fields still loads, but fits no model (``check_model`` counts a
missing field as a mismatch).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from safetensors.torch import load as load_bytes
from torch import Tensor

from sahs_lens.atomic_files import bound_metadata, check_bound, payload_metadata
from sahs_lens.schema import Rule, check, read_json

__all__ = ["MAX_WEIGHT", "check_guard", "check_weights", "payload_binding", "read_guard"]

_HEAD = re.compile(r"\s*L\d+H\d+\s*", re.IGNORECASE)


def _rules(fmt: str, nonfinite: tuple[str, ...]) -> dict[str, Rule]:
    return {
        "format": Rule(str, choices=(fmt,)),
        "package_version": Rule(str, optional=True),
        "heads": Rule(list, items=Rule(str, pattern=_HEAD)),
        "d_head": Rule(int, gt=0),
        "threshold": Rule(float, gt=0, lt=1),
        "provenance": Rule(dict),
        "training": Rule(dict),
        "nonfinite": Rule(str, optional=True, choices=nonfinite),
        "files": Rule(dict, optional=True),
    }


def payload_binding(fmt: str, heads: list[str]) -> dict[str, str]:
    """What ``guard.safetensors`` records of its JSON: the format and the heads, in order."""
    return {"format": fmt, "heads": ",".join(h.strip().upper() for h in heads)}


def read_guard(
    directory: Path, *, json_name: str, tensors_name: str, fmt: str
) -> tuple[dict[str, Any], Tensor, float]:
    """``(meta, weight, bias)`` read from a guard directory; a clear error naming the file otherwise.

    The two files must belong together (``sahs_lens.atomic_files``): ``guard.json``'s ``files`` entry
    holds the SHA-256 of ``guard.safetensors``, whose metadata holds the JSON's format and heads.
    """
    path = directory / json_name
    if not path.exists():
        raise FileNotFoundError(f"no {json_name} in {directory}; is this a directory written by guard.save?")
    meta = read_json(path, what="a sahs_lens guard (written by guard.save)")
    tensor_path = directory / tensors_name
    if not tensor_path.is_file():
        raise FileNotFoundError(f"{directory} has {json_name} but no {tensors_name}; save the guard again")
    raw = tensor_path.read_bytes()  # read once: what is verified below is what is loaded
    if isinstance(meta, dict) and "files" in meta:
        check_bound(
            directory, meta["files"], where=str(path), expected=(tensors_name,), read={tensors_name: raw}
        )
    try:
        tensors = load_bytes(raw)
    except Exception as error:  # safetensors raises its own error types for malformed files
        raise ValueError(
            f"{tensor_path} cannot be read as safetensors ({error}); save the guard again"
        ) from None
    payload_meta = payload_metadata(raw)  # the header is valid: the bytes loaded
    if (
        isinstance(meta, dict)
        and isinstance(meta.get("heads"), list)
        and all(isinstance(h, str) for h in meta["heads"])
    ):
        bound_metadata(meta, payload_meta, payload_binding(fmt, meta["heads"]), where=str(path))
    weight, bias = tensors.get("weight"), tensors.get("bias")
    if weight is None or bias is None or bias.numel() != 1:
        raise ValueError(
            f"{tensor_path} must hold 'weight' [features] and a one-element 'bias'; save the guard again"
        )
    return meta, weight, float(bias.item())


MAX_WEIGHT = 1e6
"""The largest absolute weight or bias a guard may hold. A logistic probe on head outputs (L2, C = 1) has
weights of order 1-100; weights near float32's limit make the dot product overflow, which would decide a
row by a weight's sign. A guard beyond this bound is refused at fit and at load."""


def check_weights(weight: Tensor, bias: float, *, where: str) -> None:
    """Raise ``ValueError`` unless every weight and the bias are finite and within ``MAX_WEIGHT``."""
    if not bool(weight.isfinite().all()) or not math.isfinite(bias):
        raise ValueError(f"{where}: the weight or bias holds NaN or inf; fit the guard again")
    largest = max(float(weight.abs().max()) if weight.numel() else 0.0, abs(bias))
    if largest > MAX_WEIGHT:
        raise ValueError(
            f"{where}: a weight or the bias is {largest:.3g}, beyond the bound {MAX_WEIGHT:.0e} that any fitted "
            "guard stays within (such values overflow the guard's dot product); the file is damaged or was not "
            "written by sahs_lens: fit the guard again"
        )


def check_guard(
    meta: Any, weight: Tensor, bias: float, *, where: str, fmt: str, nonfinite: tuple[str, ...]
) -> None:
    """Raise ``ValueError`` naming ``where`` unless ``meta``, ``weight`` and ``bias`` make a valid guard."""
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{where} is not a sahs_lens guard (format {found!r}, expected {fmt!r})")
    check(meta, _rules(fmt, nonfinite), file=where)
    heads, d_head = meta["heads"], meta["d_head"]
    expected = len(heads) * d_head
    if weight.ndim != 1 or weight.numel() != expected or not weight.is_floating_point():
        raise ValueError(
            f"{where}: the weight must be {len(heads)} heads x d_head {d_head} = {expected} floats; got "
            f"{weight.dtype} {tuple(weight.shape)}; the guard's files do not belong together: save it again"
        )
    check_weights(weight, bias, where=where)
    provenance = meta["provenance"]
    if "d_head" in provenance and provenance["d_head"] != d_head:
        raise ValueError(f"{where}: 'd_head' is {d_head} but provenance.d_head is {provenance['d_head']!r}")
    layers, per_layer = provenance.get("n_layers"), provenance.get("n_heads")
    for text in heads:
        layer, head = (int(x) for x in re.findall(r"\d+", text))
        if (isinstance(layers, int) and layer >= layers) or (
            isinstance(per_layer, int) and head >= per_layer
        ):
            raise ValueError(
                f"{where}: head {text.strip()} does not exist in the guard's own model "
                f"({layers} layers x {per_layer} heads); the file is damaged"
            )
