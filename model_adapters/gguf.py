"""GGUF checkpoints: dequantised once, cached as an ordinary Hugging Face checkpoint, loaded from there.

A GGUF file (llama.cpp's format) holds a model's config, tokenizer and weights, usually quantised (Q4_1:
4-bit blocks with a scale and an offset). Hugging Face transformers reads it with ``from_pretrained(dir,
gguf_file=...)`` and *dequantises* every tensor to ``dtype``: the model sahs_lens hooks is then an ordinary
float model whose numbers are the quantised weights' exact values. That takes 10-50 s on a laptop CPU, and
transformers refuses to ``save_pretrained`` the result ("quantized with gguf and is not serializable").

``materialise_gguf`` therefore does it once: it hashes the file (SHA-256, which the model's identity then
records), dequantises it, rebuilds a plain model of the same class from its config and state dict (logits
identical to the GGUF-loaded model), and saves it with its tokenizer as safetensors in a cache folder keyed
by the hash and the dtype. Every later load is an ordinary checkpoint directory and takes about a second.
The cache folder is written under a temporary name and renamed when complete, so an interrupted first load
leaves nothing half-written behind; safetensors executes no code.

The cache lives in ``$SAHS_LENS_CACHE`` (default ``$XDG_CACHE_HOME/sahs_lens`` or ``~/.cache/sahs_lens``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["GGUF_CACHE_FORMAT", "cache_root", "file_sha256", "materialise_gguf"]

GGUF_CACHE_FORMAT = "sahs_lens.gguf_cache/1"
_DONE = "sahs_lens_gguf.json"


def cache_root() -> Path:
    """Where dequantised checkpoints are kept (see the module docstring)."""
    explicit = os.environ.get("SAHS_LENS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "sahs_lens"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file as lower-case hex (about 0.3 s for 100 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _require_gguf_package(path: Path) -> None:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ImportError(
            f"reading the GGUF file {path} needs the pure-Python 'gguf' package, which is not installed; "
            "install it with: pip install 'sahs-lens[gguf]' (or pip install gguf)"
        ) from None


def materialise_gguf(
    path: str | Path, *, dtype: torch.dtype = torch.float32, sha256: str | None = None
) -> tuple[Path, str]:
    """A plain checkpoint directory with the dequantised weights of the GGUF file ``path``, and its SHA-256.

    Args:
        path: the ``.gguf`` file.
        dtype: what the weights are dequantised to (``torch.float32``, ``torch.bfloat16``, ...).
        sha256: the file's SHA-256 when already known (it is then not recomputed).

    The first call dequantises (10-50 s on 2 CPU cores) and caches; later calls return the cached folder.

    Example:
        >>> directory, digest = materialise_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} does not exist; pass the path of a .gguf file")
    digest = sha256 or file_sha256(path)
    dtype_name = str(dtype).replace("torch.", "")
    target = cache_root() / "gguf" / f"{digest[:32]}-{dtype_name}"
    if _complete(target, digest, dtype_name):
        return target, digest
    _require_gguf_package(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        started = time.perf_counter()
        _dequantise(path, staging, dtype)
        record = {
            "format": GGUF_CACHE_FORMAT,
            "gguf_file": path.name,
            "sha256": digest,
            "dtype": dtype_name,
            "dequantise_seconds": round(time.perf_counter() - started, 1),
        }
        (staging / _DONE).write_text(json.dumps(record, indent=1))
        if target.exists():  # an incomplete folder of an older version, or another process won the race
            if _complete(target, digest, dtype_name):
                return target, digest
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target, digest


def _complete(target: Path, digest: str, dtype_name: str) -> bool:
    done = target / _DONE
    if not done.is_file():
        return False
    try:
        record = json.loads(done.read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("format") == GGUF_CACHE_FORMAT
        and record.get("sha256") == digest
        and record.get("dtype") == dtype_name
        and (target / "model.safetensors").is_file()
        and (target / "config.json").is_file()
    )


def _dequantise(path: Path, out: Path, dtype: torch.dtype) -> None:
    """Dequantise with transformers, rebuild a plain model of the same class, save it and the tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    try:
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(
            f"transformers cannot read the GGUF file {path} ({type(exc).__name__}: {exc}); it reads GGUF "
            "language models of the architectures its GGUF loader knows (llama, qwen2/3, gemma2/3, mistral, "
            "phi3, ...)"
        ) from exc
    config: Any = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model_class = type(loaded)
    config.architectures = [model_class.__name__]
    plain: Any = model_class(config)
    plain.to(dtype)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
