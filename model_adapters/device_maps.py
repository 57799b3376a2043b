"""Models larger than one device: accelerate's device maps, checked before anything is loaded.

``load_vlm(..., device_map=...)`` hands the map to Hugging Face's ``from_pretrained``, which places each
module with accelerate (``"auto"`` fills the GPUs in order, then CPU memory, then disk) and attaches hooks
that move a module's inputs to its device. Nothing else changes: the ``hf`` backend's hook points sit on
the modules wherever they are, the decision reader copies what it keeps to the CPU, and generation is
Hugging Face's own, which runs dispatched models. The bridge backend takes the dispatched model as it is
(TransformerLens 4.x keeps a pre-loaded model's placement and supports all-GPU and all-CPU/disk maps).

Weights mapped to ``"disk"`` live in ``offload_folder`` and their parameters are on the ``meta`` device
until a forward needs them; ``parameters_for_reading`` brings them back one module at a time, so the
checkpoint fingerprint of an offloaded model is the one of the same model on one device. ``"meta"`` itself
is refused as a target: it holds no weights.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "STRATEGIES",
    "check_bridge_map",
    "check_device_map",
    "check_map_modules",
    "check_placement",
    "parameters_for_reading",
    "parse_device_map",
    "parse_max_memory",
]

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
_FORMS = (
    f"one of {', '.join(repr(s) for s in STRATEGIES)}, or a dict from module name to a device "
    "(0, 'cuda:1', 'cpu', 'disk')"
)


def check_device_map(
    device_map: str | Mapping[str, int | str] | None,
    max_memory: Mapping[int | str, int | str] | None,
    offload_folder: str | Path | None,
    *,
    device: torch.device,
    hf_model: nn.Module | None,
) -> dict[str, Any] | None:
    """The ``from_pretrained`` keyword arguments of a device map, or None without one; a clear error on
    anything accelerate would reject later (or worse, accept and run wrongly)."""
    if device_map is None:
        if max_memory is not None or offload_folder is not None:
            raise ValueError(
                "max_memory and offload_folder only apply with a device_map; pass device_map='auto' (or a "
                "dict) too"
            )
        return None
    if hf_model is not None:
        raise ValueError(
            "device_map places the model load_vlm loads; with hf_model= place it yourself "
            "(AutoModelForImageTextToText.from_pretrained(..., device_map=...)) and pass it without one"
        )
    if device.type != "cpu":
        raise ValueError(
            f"give either device ({device}) or device_map ({device_map!r}), not both: the map says where "
            "every module goes"
        )
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise ImportError(
            "device_map needs the accelerate package (pip install accelerate); it is what places the modules"
        ) from None
    kwargs: dict[str, Any] = {"device_map": _check_map(device_map, offload_folder)}
    if max_memory is not None:
        kwargs["max_memory"] = _check_memory(max_memory)
    if offload_folder is not None:
        if Path(offload_folder).exists() and not Path(offload_folder).is_dir():
            raise ValueError(
                f"offload_folder {str(offload_folder)!r} is a file; give a directory (it is created if missing), "
                "where the weights mapped to 'disk' are kept"
            )
        kwargs["offload_folder"] = str(offload_folder)
    return kwargs


def _check_map(device_map: Any, offload_folder: str | Path | None) -> str | dict[str, int | str]:
    if isinstance(device_map, str):
        if device_map not in STRATEGIES:
            raise ValueError(f"device_map {device_map!r} is not a placement; give {_FORMS}")
        return device_map
    if not isinstance(device_map, Mapping) or not device_map:
        raise ValueError(f"device_map must be {_FORMS}; got {type(device_map).__name__} {device_map!r}")
    checked: dict[str, int | str] = {}
    for module, target in device_map.items():
        if not isinstance(module, str):
            raise ValueError(f"device_map keys are module names (str); got {module!r}")
        checked[module] = _check_target(module, target)
        if checked[module] == "disk" and offload_folder is None:
            raise ValueError(
                f"device_map sends {module!r} to 'disk'; give offload_folder= (--offload-folder), the directory "
                "its weights are kept in"
            )
    return checked


def _check_target(module: str, target: Any) -> int | str:
    where = f"device_map[{module!r}] = {target!r}"
    if target == "meta":
        raise ValueError(f"{where}: 'meta' holds no weights; map the module to 'disk' (with offload_folder)")
    if isinstance(target, bool) or not isinstance(target, int | str):
        raise ValueError(f"{where}: a target is a GPU index, 'cuda:N', 'cpu', 'mps' or 'disk'")
    if target in ("cpu", "disk"):
        return target
    if target == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"{where}: this machine has no Apple MPS device; use 'cpu'")
        return target
    index = target if isinstance(target, int) else _cuda_index(where, target)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not 0 <= index < count:
        have = f"CUDA devices 0 to {count - 1}" if count else "no CUDA device"
        raise ValueError(f"{where}: this machine has {have}; map the module to one of them or to 'cpu'")
    return index


def _cuda_index(where: str, target: str) -> int:
    kind, _, index = target.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"{where}: a target is a GPU index, 'cuda:N', 'cpu', 'mps' or 'disk'")
    return int(index or 0)


def _check_memory(max_memory: Mapping[int | str, int | str]) -> dict[int | str, int | str]:
    if not isinstance(max_memory, Mapping) or not max_memory:
        raise ValueError(f"max_memory must be a dict like {{0: '20GiB', 'cpu': '60GiB'}}; got {max_memory!r}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for key, value in max_memory.items():
        if not (isinstance(key, int) or key in ("cpu", "disk", "mps")) or isinstance(key, bool):
            raise ValueError(f"max_memory key {key!r}: a GPU index, 'cpu', 'mps' or 'disk'")
        if isinstance(key, int) and not 0 <= key < count:
            have = f"CUDA devices 0 to {count - 1}" if count else "no CUDA device"
            raise ValueError(f"max_memory key {key}: this machine has {have}; budget those (or 'cpu') only")
        if isinstance(value, bool) or not (isinstance(value, int | str) and _bytes(value) > 0):
            raise ValueError(
                f"max_memory[{key!r}] = {value!r}: a byte count or a size like '20GiB', '512MB' or '1.5GB'"
            )
    return dict(max_memory)


def _bytes(size: int | str) -> int:
    """``size`` in bytes as accelerate reads it (``'20GiB'``, ``'1.5GB'``), or -1 if it cannot."""
    from accelerate.utils.modeling import convert_file_size_to_int

    try:
        return int(convert_file_size_to_int(size))
    except (ValueError, TypeError, AttributeError):
        return -1


def check_bridge_map(mapped: dict[str, Any] | None) -> None:
    """The bridge backend (TransformerLens 4.x) runs all-GPU or all-CPU/disk maps, not a mix: refuse a
    dict map that mixes them before loading (for ``"auto"``, TransformerLens checks the placement made)."""
    targets = (mapped or {}).get("device_map")
    if not isinstance(targets, dict):
        return
    offload = sorted({str(v) for v in targets.values() if v in ("cpu", "disk")})
    gpus = sorted({str(v) for v in targets.values() if v not in ("cpu", "disk", "mps")})
    if offload and gpus:
        raise ValueError(
            f"the bridge backend runs a model spread over GPUs only, or over CPU and disk only "
            f"(TransformerLens' rule); this device_map mixes GPU {', '.join(gpus)} with {', '.join(offload)}. "
            "Use backend='hf', which runs any accelerate device map, or map every module to a GPU"
        )


def check_map_modules(device_map: Mapping[str, Any], skeleton: nn.Module) -> None:
    """Refuse a dict map that names a module the model does not have, or leaves parameters unplaced.

    ``skeleton`` is the model built on the ``meta`` device from its config (no weights, no memory), so the
    check runs before anything is loaded. Without it accelerate ignores an unknown key silently, and a
    partial map loads with some modules wherever accelerate puts them.
    """
    modules = dict(skeleton.named_modules())
    unknown = [key for key in device_map if key not in modules]
    if unknown:
        top = ", ".join(repr(name) for name, _ in skeleton.named_children())
        raise ValueError(
            f"device_map names {', '.join(repr(k) for k in unknown[:3])}, which "
            f"{'is not a module' if len(unknown) == 1 else 'are not modules'} of this model; keys are module "
            f"names as model.named_modules() gives them (its top-level modules: {top}), or '' for the whole model"
        )
    keys = list(device_map)
    unplaced = [
        name for name, _ in skeleton.named_parameters()
        if not any(key == "" or name == key or name.startswith(key + ".") for key in keys)
    ]  # fmt: skip
    if unplaced:
        raise ValueError(
            f"device_map places {len(keys)} module(s) but leaves {len(unplaced)} parameters without a device "
            f"(e.g. {', '.join(unplaced[:3])}); map their modules too (a parent module covers its children, '' "
            "covers the rest), or use device_map='auto'"
        )


def check_placement(hf_model: nn.Module) -> None:
    """Refuse a placement whose first module is offloaded: inputs are sent where the first weight is."""
    name, param = next(iter(hf_model.named_parameters()))
    if param.device.type == "meta":
        raise ValueError(
            f"the device map offloads the model's first module ({name}) to disk, but its inputs are placed "
            "on the first module's device: map that module (for a vision-language model, the vision tower too) to "
            "a GPU or 'cpu' in a dict map, or, with device_map='auto', give max_memory room for it on a GPU or "
            "the CPU"
        )


def parameters_for_reading(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``model.named_parameters()``, with disk-offloaded parameters read back one module at a time (to
    the CPU, and gone again after the module is left). The same names, order and values as on one device."""
    try:
        from accelerate.utils import align_module_device, has_offloaded_params
    except ImportError:
        yield from model.named_parameters()
        return
    seen: set[int] = set()
    for prefix, module in model.named_modules():
        direct = [(n, p) for n, p in module._parameters.items() if p is not None and id(p) not in seen]
        if not direct:
            continue
        seen.update(id(p) for _, p in direct)
        offloaded = has_offloaded_params(module)
        context = align_module_device(module, torch.device("cpu")) if offloaded else contextlib.nullcontext()
        with context:
            for name, _ in direct:
                value = module._parameters[name]
                assert value is not None
                yield (f"{prefix}.{name}" if prefix else name), value


def parse_device_map(text: str) -> str | dict[str, int | str]:
    """``--device-map``: a strategy name, a JSON file, or inline JSON (``'{"model.vision_tower": 0}'``)."""
    if text in STRATEGIES:
        return text
    path = Path(text).expanduser()
    try:
        raw = path.read_text() if path.is_file() else text
        value = json.loads(raw)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"--device-map {text!r} is not {_FORMS} (as a JSON file or inline JSON): {error}"
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"--device-map {text!r} must hold a JSON object (module -> device)")
    return value


def parse_max_memory(text: str) -> dict[int | str, int | str]:
    """``--max-memory 0=20GiB,1=20GiB,cpu=60GiB`` as ``{0: "20GiB", 1: "20GiB", "cpu": "60GiB"}``."""
    budget: dict[int | str, int | str] = {}
    for part in text.split(","):
        key, sep, size = part.strip().partition("=")
        if not sep or not key or not size:
            raise ValueError(
                f"--max-memory {text!r}: write DEVICE=SIZE pairs separated by commas, e.g. 0=20GiB,cpu=60GiB"
            )
        budget[int(key) if key.isdigit() else key] = size
    return budget
