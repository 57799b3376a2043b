"""``load_vlm``: from a hub id, a local checkpoint directory or an in-memory model to a ``HookedVLM``.

Loading goes through TransformerLens' ``TransformerBridge.boot_transformers`` with the Hugging Face model
loaded by us first (eager attention, the requested dtype and device), so no weight is converted, folded or
centred: logits are Hugging Face's to the last bit. Two traps of the bridge are closed here:

* when it cannot load a processor it runs ``pip install torchvision`` in a subprocess; sahs_lens disables
  that step for the duration of the boot (and always hands the bridge our own processor);
* it mutates the Hugging Face model it is given (attention implementation): pass a copy if you need a
  pristine one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_adapters.backends import BACKENDS, Backend, choose_backend
from model_adapters.backends.bridge import BridgeBackend
from model_adapters.backends.hf import HFBackend
from model_adapters.base import HookedVLM, VLMConfig
from model_adapters.device_maps import (
    check_bridge_map,
    check_device_map,
    check_placement,
    parameters_for_reading,
)
from model_adapters.families import family_for
from model_adapters.structure import find_language_model


@contextlib.contextmanager
def no_runtime_installs() -> Iterator[None]:
    """Stop the bridge from running ``pip install torchvision`` while it boots."""
    from transformer_lens.model_bridge.sources.transformers import helpers

    original = helpers._ensure_torchvision
    helpers._ensure_torchvision = lambda: False
    try:
        yield
    finally:
        helpers._ensure_torchvision = original


def checkpoint_fingerprint(model: nn.Module) -> str:
    """A short hash of every parameter's name, shape, dtype and a strided sample of its values.

    Cheap even for a 7B model (a few hundred values per tensor leave the device), and different for any two
    checkpoints that differ in more than a handful of weights. The same for a pristine Hugging Face model
    and for the model a ``HookedVLM`` wraps (the bridge's wrapper names are ignored), so a guard's
    provenance can be checked against either.
    """
    digest = hashlib.sha256()
    for raw_name, param in parameters_for_reading(model):
        # the bridge wraps modules in place; name a parameter as the pristine Hugging Face model does
        name = raw_name.replace("._original_component", "").replace("_original_component.", "")
        flat = param.detach().reshape(-1)
        stride = max(1, flat.numel() // 64)
        sample = flat[::stride][:64].float().cpu().numpy().tobytes()
        digest.update(f"{name}:{tuple(param.shape)}:{param.dtype}".encode())
        digest.update(sample)
    return "sha256:" + digest.hexdigest()[:16]


def hf_identity(hf_model: nn.Module) -> dict[str, Any]:
    """The identity (``model_adapters.identity``) of a plain Hugging Face model, as ``VLMConfig.identity``
    gives it for a loaded ``HookedVLM``: family, shape of the language model's heads, weight fingerprint.

    The template is a property of how prompts are written, not of the weights, so it is absent here.
    """
    config = hf_model.config  # type: ignore[union-attr]
    architectures = list(getattr(config, "architectures", None) or [])
    family = family_for(architectures[0] if architectures else type(hf_model).__name__)
    text = config.get_text_config()  # type: ignore[union-attr,operator]
    n_heads = int(text.num_attention_heads)
    d_head = int(getattr(text, "head_dim", None) or text.hidden_size // n_heads)
    return {
        "family": family.name,
        "checkpoint": checkpoint_fingerprint(hf_model),
        "n_layers": int(text.num_hidden_layers),
        "n_heads": n_heads,
        "d_head": d_head,
    }


def load_vlm(
    source: str | Path,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    template: str | None = None,
    hf_model: nn.Module | None = None,
    processor: Any = None,
    backend: str = "auto",
    full_hooks: bool = False,
    device_map: str | dict[str, int | str] | None = None,
    max_memory: dict[int | str, int | str] | None = None,
    offload_folder: str | Path | None = None,
) -> HookedVLM:
    """Load a vision-language model and wrap it as a ``HookedVLM``.

    Args:
        source: a Hugging Face hub id (``"llava-hf/llava-1.5-7b-hf"``: any string that is not an existing
            path) or a local checkpoint directory. With ``hf_model=`` it is only the name recorded in
            provenance (and where a processor is loaded from when ``processor=`` is not given).
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
        dtype: parameter dtype; default ``torch.float32`` (use ``torch.float16``/``bfloat16`` on GPUs).
        template: prompt template name (see ``model.family.templates``); default: the family's.
        hf_model: an already loaded Hugging Face model to wrap (the bridge backend modifies it in place).
        processor: the matching processor, when ``hf_model`` is given and ``source`` holds none.
        backend: ``"hf"`` (the Hugging Face model with hook points; every family), ``"bridge"``
            (TransformerLens' TransformerBridge; the families it supports) or ``"auto"``: the bridge when
            ``full_hooks=True`` and it supports the family, ``"hf"`` otherwise (``model_adapters.backends``).
        full_hooks: ask for TransformerLens' full hook vocabulary (``hook_q``, ``hook_resid_pre``, ...).
        device_map: spread the model over several devices with accelerate (``model_adapters.device_maps``):
            ``"auto"``, ``"balanced"``, ``"balanced_low_0"``, ``"sequential"`` or a dict from module name
            to a device (``0``, ``"cuda:1"``, ``"cpu"``, ``"disk"``). Replaces ``device``. Both backends run
            such a model (the bridge: all-GPU or all-CPU/disk maps, TransformerLens' own rule).
        max_memory: per-device budget for the placement, e.g. ``{0: "20GiB", 1: "20GiB", "cpu": "60GiB"}``.
        offload_folder: where weights mapped to ``"disk"`` are kept.

    Example:
        >>> model = load_vlm("llava-hf/llava-1.5-7b-hf", device="cuda", dtype=torch.float16)
    """
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    target = check_device(device)
    mapped = check_device_map(device_map, max_memory, offload_folder, device=target, hf_model=hf_model)
    name, local = _resolve_source(source)
    dtype = torch.float32 if dtype is None else dtype
    if hf_model is not None:
        config = hf_model.config
    else:
        try:
            config = AutoConfig.from_pretrained(name)
        except (OSError, ValueError) as exc:
            raise ValueError(_not_found(name, local, exc)) from exc
    architectures = list(getattr(config, "architectures", None) or [])
    if not architectures:
        raise ValueError(
            f"the config of {name!r} names no architecture (config.architectures is empty); set it, e.g. "
            "config.architectures = ['LlavaForConditionalGeneration']"
        )
    family = family_for(architectures[0])
    tpl = family.template(template)
    chosen = choose_backend(backend, family, full_hooks=full_hooks)
    if chosen == "bridge":
        check_bridge_map(mapped)
    if processor is None:
        try:
            processor = AutoProcessor.from_pretrained(name)
        except ImportError as exc:  # a video processor that needs torchvision, which CPU installs lack
            if family.image_only_processor is None:
                raise ValueError(
                    f"the processor of {name!r} needs a package that is not installed "
                    f"({(str(exc).strip().splitlines() or [''])[0]}); install it, or "
                    "pass processor= with a processor for images"
                ) from exc
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            warnings.warn(
                f"the {family.name} processor of {name!r} needs torchvision ({reason}); using the family's "
                "image-only processor instead (same ids and pixel values for images)",
                stacklevel=2,
            )
            processor = family.image_only_processor(name)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"cannot load a processor from {name!r} ({exc}); pass processor= with the model's processor"
            ) from exc
    if hf_model is None:
        if mapped is None:
            loaded = AutoModelForImageTextToText.from_pretrained(
                name, dtype=dtype, attn_implementation="eager"
            )
            hf_model = loaded.to(target)  # type: ignore[arg-type]
        else:
            hf_model = AutoModelForImageTextToText.from_pretrained(
                name, dtype=dtype, attn_implementation="eager", **mapped
            )
            check_placement(hf_model)
    hf_model.eval()
    checkpoint = checkpoint_fingerprint(hf_model)
    language_model = find_language_model(hf_model)
    text_config = hf_model.config.get_text_config()  # type: ignore[union-attr,operator]
    if chosen == "bridge":
        from transformer_lens.model_bridge import TransformerBridge

        with no_runtime_installs():  # a dispatched model (hf_device_map) keeps its placement in the bridge
            bridge = TransformerBridge.boot_transformers(
                name,
                hf_model=hf_model,
                tokenizer=processor.tokenizer,
                device=None if mapped else str(target),
                dtype=dtype,
            )
        bridge.processor = processor
        wrapped: Backend = BridgeBackend(bridge)
        n_layers, n_heads, d_head = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads), int(bridge.cfg.d_head)
        d_model, d_vocab = int(bridge.cfg.d_model), int(bridge.cfg.d_vocab)
    else:
        wrapped = HFBackend(hf_model, language_model)
        n_layers, n_heads, d_head = len(language_model.layers), language_model.n_heads, language_model.d_head
        d_model = int(text_config.hidden_size)
        d_vocab = int(hf_model.get_output_embeddings().weight.shape[0])  # type: ignore[operator,union-attr]
    cfg = VLMConfig(
        model_name=name,
        family=family.name,
        template=tpl.name,
        n_layers=n_layers,
        n_heads=n_heads,
        d_head=d_head,
        d_model=d_model,
        n_key_value_heads=int(getattr(text_config, "num_key_value_heads", None) or n_heads),
        d_vocab=d_vocab,
        n_ctx=int(getattr(text_config, "max_position_embeddings", 0) or 10**9),
        dtype=str(next(hf_model.parameters()).dtype).replace("torch.", ""),
        device=str(next(hf_model.parameters()).device),
        checkpoint=checkpoint,
        backend=chosen,
    )
    return HookedVLM(wrapped, processor, family, tpl, cfg)


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, or a clear ``ValueError`` if this machine does not have it."""
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{device!r} is not a device name; use 'cpu', 'cuda', 'cuda:1' or 'mps'") from exc
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} asks for CUDA, but this torch has no CUDA device available "
                f"(torch {torch.__version__}, built with CUDA: {torch.version.cuda or 'no'}); use device='cpu', "
                "or install a CUDA build of torch on a machine with a GPU"
            )
        if target.index is not None and target.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
    elif target.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(
            f"device {str(device)!r} asks for Apple MPS, which this machine does not have; use 'cpu'"
        )
    elif target.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device type {target.type!r} is not supported; use 'cpu', 'cuda' or 'mps'")
    return target


def _resolve_source(source: str | Path) -> tuple[str, Path | None]:
    """``(name, local path or None)``: an existing directory is local; a string that looks like a path
    (``./x``, ``/x``, ``~/x``, or a Path object) but does not exist is an error; anything else is a hub id."""
    if isinstance(source, Path):
        if not source.expanduser().is_dir():
            raise ValueError(
                f"checkpoint directory {source} does not exist; pass a local directory or a hub id"
            )
        return str(source.expanduser()), source.expanduser()
    name = str(source)
    local = Path(name).expanduser()
    if local.is_dir():
        return str(local), local
    if name.startswith((".", "/", "~")):
        raise ValueError(f"checkpoint directory {local} does not exist; pass a local directory or a hub id")
    return name, None


def _not_found(name: str, local: Path | None, exc: Exception) -> str:
    if local is not None:
        return f"cannot load a model config from the directory {name!r}: {exc}"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = (
        "HF_HUB_OFFLINE is set, so nothing is downloaded"
        if offline
        else "the download failed or the hub could not be reached"
    )
    return (
        f"{name!r} is read as a Hugging Face hub id, and it is not in the local Hugging Face cache ({why}: "
        f"{type(exc).__name__}). Download it once with network access (huggingface-cli download {name}), "
        "or pass the path of a local checkpoint directory (e.g. load_vlm('/models/llava-1.5-7b-hf'))"
    )
