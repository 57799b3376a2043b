"""Shared pieces of the ratio benchmarks: model sizes, in-memory models, bench data, tables, JSON, machines.

Every benchmark here answers one question with a *ratio* measured in one run on one machine: "how much
slower (or faster) is A than B on the same weights and the same inputs?". Absolute times depend on the
machine; a ratio measured with A and B interleaved (``sahs_lens.evaluation.overhead_ratio``: A B, B A, ...,
median of the per-pair ratios, warm-up excluded) survives the noise of a shared machine and travels.

Sizes (``SIZES``):

* ``tiny``: the test checkpoint (``model_adapters.testing.build_tiny_checkpoint("llava")``): Python overhead
  dominates, so ratios there say how much *fixed* cost a code path adds.
* ``mid``: a LLaVA-shaped model built in memory (d_model 1024, 8 layers x 16 heads x d_head 64, 224 px images
  with 14 px patches -> 256 image tokens) where compute dominates on a CPU, as it does for real models.
* ``llava7b``: the real LLaVA-1.5-7B shapes (32 layers x 32 heads x d_head 128, d_mlp 11008, vocab 32064,
  CLIP ViT-L/14-336 -> 576 image tokens), random weights, built straight on a GPU from the config (nothing
  is downloaded, nothing is written to disk but a tokenizer). CPU runs refuse it.

Random weights are fine: the benchmarks measure cost, not quality. Two things are arranged so that costs are
comparable: the language-model head's row of the end-of-sequence token is zeroed (a random model would
otherwise stop early at random, and A and B would decode different numbers of tokens), and every model comes
with a *raw twin*: a pristine Hugging Face model that shares every parameter with the wrapped one (the
TransformerLens bridge swaps the Hugging Face modules for its own in place, so the wrapped ``hf_model`` is no
longer plain Hugging Face).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as _dt
import functools
import json
import math
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_adapters import HookedVLM, load_vlm
from sahs_lens.data import Sample, load_bundled
from sahs_lens.evaluation import OverheadResult, overhead_ratio

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIZE_NAMES = ("tiny", "mid", "llava7b")


# --------------------------------------------------------------------------------------------------------
# Model sizes and in-memory models
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSize:
    """The shape of a LLaVA-1.5-style benchmark model (language model + CLIP vision tower)."""

    name: str
    description: str
    n_layers: int
    d_model: int
    n_heads: int
    d_mlp: int
    vocab_size: int
    image_size: int
    patch_size: int
    vision_d_model: int
    vision_layers: int
    vision_heads: int
    vision_d_mlp: int
    max_positions: int = 4096
    gpu_only: bool = False

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


SIZES: dict[str, ModelSize] = {
    # Shapes of model_adapters.testing's tiny LLaVA (the checkpoint itself is built by that module).
    "tiny": ModelSize(
        "tiny", "the test checkpoint: 2 layers x 4 heads x d_head 16, 32 px images -> 16 image tokens",
        n_layers=2, d_model=64, n_heads=4, d_mlp=128, vocab_size=400, image_size=32, patch_size=8,
        vision_d_model=32, vision_layers=2, vision_heads=2, vision_d_mlp=64, max_positions=512,
    ),
    "mid": ModelSize(
        "mid", "LLaVA-shaped, 8 layers x 16 heads x d_head 64 (d_model 1024), 224 px -> 256 image tokens",
        n_layers=8, d_model=1024, n_heads=16, d_mlp=2752, vocab_size=32064, image_size=224, patch_size=14,
        vision_d_model=512, vision_layers=4, vision_heads=8, vision_d_mlp=2048,
    ),
    "llava7b": ModelSize(
        "llava7b", "LLaVA-1.5-7B: 32 layers x 32 heads x d_head 128, CLIP ViT-L/14-336 -> 576 image tokens",
        n_layers=32, d_model=4096, n_heads=32, d_mlp=11008, vocab_size=32064, image_size=336, patch_size=14,
        vision_d_model=1024, vision_layers=24, vision_heads=16, vision_d_mlp=4096, gpu_only=True,
    ),
}  # fmt: skip


@dataclass
class BenchModel:
    """A wrapped model (``vlm``), its pristine Hugging Face twin (``raw``, same parameters) and its size."""

    vlm: HookedVLM
    raw: Any  # a transformers PreTrainedModel (Any: its generate/forward are not typed through nn.Module)
    size: ModelSize
    build_s: float
    workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def sync(self) -> Callable[[], object] | None:
        """What timing must call to wait for the device (``torch.cuda.synchronize`` on a GPU)."""
        return torch.cuda.synchronize if self.vlm.device.type == "cuda" else None


def check_size(size: str, device: str) -> ModelSize:
    """The ``ModelSize`` for ``size``; refuse GPU-only sizes on a CPU with a message that says what to do."""
    if size not in SIZES:
        raise SystemExit(f"unknown size {size!r}; choose one of {', '.join(SIZE_NAMES)}")
    return check_device(SIZES[size], device)


def check_device(spec: ModelSize, device: str) -> ModelSize:
    """Refuse a GPU-only shape on a CPU, and a CUDA device that torch cannot see."""
    if spec.gpu_only and not str(device).startswith("cuda"):
        raise SystemExit(
            f"size {spec.name!r} ({spec.description}) needs about 14 GB of GPU memory in bfloat16 and is only run on "
            "a GPU: pass --device cuda --dtype bfloat16 on a CUDA machine, or use --size tiny / --size mid here"
        )
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda was given but torch sees no CUDA device; use --device cpu")
    return spec


def build_model(
    size: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> BenchModel:
    """Build the benchmark model of ``size`` on ``device`` (see the module docstring).

    ``tiny`` loads the test checkpoint from its directory; ``mid`` and ``llava7b`` are built from a config in
    memory, directly on ``device`` (no weights are written or downloaded).
    """
    spec = check_size(size, device)
    return build_spec(spec, device=device, dtype=dtype, seed=seed, checkpoint=size == "tiny")


def build_spec(
    spec: ModelSize,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    checkpoint: bool = False,
) -> BenchModel:
    """Build a model of any shape, e.g. a variant ``dataclasses.replace(SIZES["mid"], n_layers=4)``.

    The model is built from a config in memory, as ``mid`` and ``llava7b`` are (so a ``tiny``-shaped variant
    is *not* the test checkpoint); ``checkpoint=True`` loads the test checkpoint instead (``tiny`` only).
    """
    check_device(spec, device)
    start = time.perf_counter()
    workdir = tempfile.TemporaryDirectory(prefix=f"sahs_bench_{spec.name}_")
    torch.manual_seed(seed)
    if checkpoint:
        source, hf, processor = _tiny_hf(device, dtype)
    else:
        source = Path(workdir.name)
        processor = _processor(spec, source)
        hf = _hf_from_config(spec, processor, device, dtype)
    suppress_eos(hf, processor.tokenizer.eos_token_id)
    raw = raw_twin(hf)
    vlm = load_vlm(source, hf_model=hf, processor=processor, device=device, dtype=dtype)
    return BenchModel(vlm, raw, spec, time.perf_counter() - start, workdir)


def _tiny_hf(device: str, dtype: torch.dtype) -> tuple[Path, Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from model_adapters.testing import build_tiny_checkpoint

    path = build_tiny_checkpoint("llava")
    hf: Any = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, attn_implementation="eager")
    return path, hf.to(device).eval(), AutoProcessor.from_pretrained(path)


def _processor(spec: ModelSize, directory: Path) -> Any:
    """A LLaVA processor with a byte-level BPE tokenizer trained on the bundled prompts (realistic lengths).

    It is saved to ``directory`` and loaded back, because the bridge re-loads the tokenizer by its path.
    """
    from transformers import AutoProcessor, CLIPImageProcessor, LlavaProcessor

    from model_adapters.testing.common import CORPUS, train_tokenizer
    from model_adapters.testing.llava import LLAVA_HF_CHAT_TEMPLATE

    corpus = list(CORPUS) + [
        s.prompt for name in ("harmful_text:train", "benign_text:train") for s in load_bundled(name)
    ]
    tokenizer = train_tokenizer(
        ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        vocab_size=min(spec.vocab_size, 8000),
        extra={"image_token": "<image>"},
        corpus=corpus,
    )
    side = spec.image_size
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        ),
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_HF_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    processor.save_pretrained(directory)
    return AutoProcessor.from_pretrained(directory)


def _hf_from_config(spec: ModelSize, processor: Any, device: str, dtype: torch.dtype) -> Any:
    """``LlavaForConditionalGeneration`` of ``spec``'s shape with random weights, created on ``device``."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tok = processor.tokenizer
    vision = CLIPVisionConfig(
        hidden_size=spec.vision_d_model,
        intermediate_size=spec.vision_d_mlp,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=768,
    )
    text = LlamaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.d_model,
        intermediate_size=spec.d_mlp,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_heads,
        max_position_embeddings=spec.max_positions,
        rms_norm_eps=1e-5,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=spec.image_tokens,
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype, attn_implementation="eager")
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model.eval()


@torch.no_grad()
def suppress_eos(hf_model: Any, eos_token_id: int) -> None:
    """Zero the output row of the end-of-sequence token: its logit is 0, the largest of the random logits
    is positive, so greedy decoding never stops early and every run decodes the full token budget."""
    head = hf_model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(hf_model).__name__} has no output embeddings to zero")
    head.weight[eos_token_id].zero_()


def raw_twin(hf_model: nn.Module) -> Any:
    """A deep copy of ``hf_model`` that shares every parameter with it (no extra weight memory).

    Make it before ``load_vlm``: the bridge replaces the Hugging Face modules of the model it wraps.
    """
    memo: dict[int, Any] = {id(p): p for p in hf_model.parameters()}
    return copy.deepcopy(hf_model, memo).eval()


# --------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------


def bench_samples(n: int, image_size: int) -> list[Sample]:
    """``n`` real prompts, each with a typographic image, alternating malicious and benign.

    Malicious rows: ``harmful_text:heldout`` requests with a ``figstep_attack:heldout`` image; benign rows:
    ``benign_text:heldout`` instructions with a ``figstep_benign:heldout`` image. Every row carries an image,
    as in the paper's setting, so every prompt holds the model's full count of image tokens.
    """
    harmful, benign, attack_images, benign_images = _bundled(image_size)
    samples = []
    for i in range(n):
        j = i // 2
        if i % 2 == 0:
            src, image = harmful[j % len(harmful)], attack_images[j % len(attack_images)]
        else:
            src, image = benign[j % len(benign)], benign_images[j % len(benign_images)]
        samples.append(Sample(src.prompt, image, src.label, "bench", f"bench:{i}"))
    return samples


@functools.lru_cache(maxsize=4)
def _bundled(image_size: int) -> tuple[list[Sample], list[Sample], list[Any], list[Any]]:
    return (
        load_bundled("harmful_text:heldout"),
        load_bundled("benign_text:heldout"),
        [s.image for s in load_bundled("figstep_attack:heldout", image_size=image_size)],
        [s.image for s in load_bundled("figstep_benign:heldout", image_size=image_size)],
    )


# --------------------------------------------------------------------------------------------------------
# Timing and memory
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One A/B comparison: the wall-clock ``OverheadResult`` and what the CPU-time cross-check saw.

    ``cpu_ratio`` is the median over the same interleaved pairs of ``cpu(A) / cpu(B)``, with ``cpu`` the
    process CPU time of a call (``time.process_time``): on a CPU machine shared with other jobs it moves far
    less than wall time, because time spent waiting for a core is not counted (None on a GPU, whose work is
    not CPU time). ``a_last`` / ``b_last`` are the last outputs of each side, for correctness checks.
    """

    wall: OverheadResult
    cpu_ratio: float | None
    a_last: Any
    b_last: Any

    @property
    def ratio(self) -> float:
        return self.wall.ratio

    @property
    def spread(self) -> tuple[float, float]:
        """Smallest and largest per-pair wall-clock ratio: how noisy the machine was."""
        pairs = [a / b for a, b in zip(self.wall.a.times, self.wall.b.times, strict=True) if b > 0]
        return (min(pairs), max(pairs)) if pairs else (math.inf, math.inf)

    def row(self) -> dict[str, Any]:
        """The columns every benchmark row carries about its timing."""
        low, high = self.spread
        return {
            "ratio": self.ratio,
            "ratio_min": low,
            "ratio_max": high,
            "cpu_ratio": self.cpu_ratio,
            "timing": self.wall.to_dict(),
        }


@dataclass(frozen=True)
class Timing:
    """How every A/B comparison of a run is timed (``sahs_lens.evaluation.overhead_ratio``)."""

    repeats: int
    warmup: int = 1
    sync: Callable[[], object] | None = None

    def compare(self, fn_a: Callable[[], object], fn_b: Callable[[], object]) -> Comparison:
        """``time(A) / time(B)``: A and B interleaved, median of the per-pair ratios, warm-up excluded."""
        a, b = Recorded(fn_a), Recorded(fn_b)
        wall = overhead_ratio(a, b, repeats=self.repeats, warmup=self.warmup, sync=self.sync)
        cpu_ratio = None
        if self.sync is None:  # the timed calls are the last ``repeats`` of each side
            pairs = zip(a.cpu_times[-self.repeats :], b.cpu_times[-self.repeats :], strict=True)
            cpu_ratio = statistics.median(x / y if y > 0 else math.inf for x, y in pairs)
        return Comparison(wall, cpu_ratio, a.last, b.last)


class Recorded:
    """A zero-argument call that keeps its last result and the CPU time of every call."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.last: Any = None
        self.cpu_times: list[float] = []

    def __call__(self) -> Any:
        start = time.process_time()
        self.last = self.fn()
        self.cpu_times.append(time.process_time() - start)
        return self.last


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux ``/proc``)."""
    return _proc_status_kb("VmRSS") * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss() -> int:
    """Peak resident set size of this process in bytes since start or the last ``reset_peak_rss``."""
    try:
        return _proc_status_kb("VmHWM") * 1024
    except (OSError, KeyError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def release_freed_memory() -> None:
    """Hand memory that was freed but kept by the C allocator back to the system (glibc ``malloc_trim``)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _proc_status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def run_child(script: str | Path, options: Sequence[str], marker: str, expect: int) -> list[dict[str, Any]]:
    """Run ``script`` with ``options`` in a fresh Python process and read back its ``{marker} {json}`` lines.

    A CPU peak-RSS measurement needs a fresh process (the allocator keeps what earlier work freed); the
    child prints one marked JSON line per measurement. Raises, with the child's stderr, if it fails or
    prints a number of lines other than ``expect``.
    """
    import subprocess
    import sys

    cmd = [sys.executable, str(Path(script).resolve()), *options]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    prefix = marker + " "
    found = [json.loads(line[len(prefix) :]) for line in done.stdout.splitlines() if line.startswith(prefix)]
    if done.returncode != 0 or len(found) != expect:
        raise RuntimeError(
            f"{Path(script).name} {' '.join(options[:2])} failed (exit {done.returncode}, {len(found)} of "
            f"{expect} {marker} lines):\n{done.stderr[-3000:]}"
        )
    return found


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, Any]]:
    """Measure the peak memory a block adds above what was in use when it started.

    On a GPU: ``torch.cuda.max_memory_allocated`` (tensors only). On a CPU: the process's peak RSS
    (``VmHWM``, reset through ``/proc/self/clear_refs``) minus its RSS at the start; run the block in a fresh
    process, or memory the allocator kept from earlier work hides part of the peak. The dictionary is filled
    in on exit: ``peak_bytes`` and ``method``.
    """
    out: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        yield out
        torch.cuda.synchronize()
        out.update(
            peak_bytes=torch.cuda.max_memory_allocated() - base, method="torch.cuda.max_memory_allocated"
        )
        return
    base = current_rss()
    exact = reset_peak_rss()
    yield out
    out.update(
        peak_bytes=max(0, peak_rss() - base),
        method="peak RSS (VmHWM) - RSS before, fresh process"
        if exact
        else "ru_maxrss delta (peak not reset)",
    )


# --------------------------------------------------------------------------------------------------------
# Machine, tables, JSON, command line
# --------------------------------------------------------------------------------------------------------


def machine_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """CPU model, cores, GPU, library versions and the date: what a benchmark result must be read with."""
    import transformers

    from sahs_lens._version import __version__

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "device": str(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "transformer_lens": _dist_version("transformer-lens"),
        "sahs_lens": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    info["machine"] = machine_slug(info)
    return info


def machine_slug(info: dict[str, Any]) -> str:
    """A short file-name-safe machine name: ``nvidia-h200`` for GPU runs, ``cpu-2c`` for CPU runs."""
    if str(info["device"]).startswith("cuda") and info.get("gpu"):
        return re.sub(r"[^a-z0-9]+", "-", str(info["gpu"]).lower()).strip("-")
    return f"cpu-{info['cores']}c"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table; ``columns`` are ``(key, header)``; floats print with 3 significant decimals."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
        return "-" if value is None else str(value)

    body = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, (_, h) in enumerate(columns)]
    line = "  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    numeric = [
        all(isinstance(row.get(key), (int, float)) or row.get(key) is None for row in rows)
        for key, _ in columns
    ]
    rows_text = [
        "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True))
        for r in body
    ]
    return "\n".join([line, rule, *rows_text])


def format_machine(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['gpu']}" if info.get("gpu") and str(info["device"]).startswith("cuda") else ""
    return (
        f"machine: {info['cpu']} ({info['cores']} cores, {info['torch_threads']} torch threads){gpu}; "
        f"device {info['device']}\nversions: python {info['python']}, torch {info['torch']}, transformers "
        f"{info['transformers']}, transformer-lens {info['transformer_lens']}, sahs_lens {info['sahs_lens']}; "
        f"date {info['date']}; load average (1 min) at the end {info['load_avg_1m']}"
    )


def default_json_path(bench: str, size: str, info: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    """``<directory>/<bench>-<size>-<machine>-<date>.json``."""
    return directory / f"{bench}-{size}-{info['machine']}-{info['date'][:10]}.json"


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, (torch.dtype, torch.device, Path)):
        return str(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def bench_result(
    bench: str,
    *,
    args: argparse.Namespace,
    model: BenchModel | dict[str, Any],
    info: dict[str, Any],
    headline: dict[str, Any],
    rows: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document every benchmark writes: bench, machine, settings, model, headline, rows.

    ``model``: the model measured, or a description of the models (a benchmark that built none here)."""
    if isinstance(model, BenchModel):
        model = {**asdict(model.size), "build_s": model.build_s, "identity": model.vlm.cfg.identity()}
    return {
        "bench": bench,
        "machine": info,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "model": model,
        "headline": headline,
        "rows": rows,
        **(extra or {}),
    }


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--smoke --size --device --dtype --repeats --json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny model, fewest runs: checks that it works")
    parser.add_argument("--size", choices=SIZE_NAMES, default="tiny", help="model size (default tiny)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--dtype", default=None, choices=("float32", "float16", "bfloat16"),
        help="parameter dtype (default float32 on cpu, bfloat16 on cuda)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs of each side (default per size)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None,
        help="torch CPU threads (default: torch's choice); 1 is steadier on a machine shared with other jobs",
    )  # fmt: skip
    parser.add_argument("--json", default=None, help="write the result here ('auto': benchmarks/results/...)")
    return parser


def add_generation_options(parser: argparse.ArgumentParser, batches_help: str) -> None:
    """``--new-tokens`` and ``--batches``: the options of the benchmarks that time ``generate``."""
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens decoded per call (default 64)")
    parser.add_argument("--batches", default=None, help=batches_help)


def resolve_generation_options(args: argparse.Namespace, tokens: int, batches: Sequence[int]) -> None:
    """Fill ``args.new_tokens`` and ``args.batches`` (a list of ints) from the size's defaults."""
    args.new_tokens = args.new_tokens or tokens
    args.batches = [int(b) for b in args.batches.split(",")] if args.batches else list(batches)


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Apply ``--smoke`` (tiny size), ``--threads`` and the device's default dtype."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.size = "tiny"
    if args.dtype is None:
        args.dtype = "bfloat16" if str(args.device).startswith("cuda") else "float32"
    return args


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def finish(bench: str, args: argparse.Namespace, result: dict[str, Any], table: str) -> dict[str, Any]:
    """Print the table and machine info; write the JSON when asked."""
    print(table)
    print(format_machine(result["machine"]))
    path = json_path(bench, args, result["machine"])
    if path is not None:
        print(f"wrote {write_result(path, result)}")
    return result


def json_path(bench: str, args: argparse.Namespace, info: dict[str, Any]) -> Path | None:
    """Where ``--json`` asks the result to go (``auto``: ``default_json_path``); None without ``--json``."""
    if not args.json:
        return None
    return default_json_path(bench, args.size, info) if args.json == "auto" else Path(args.json)
