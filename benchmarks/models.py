"""The benchmark models: sizes, models built in memory, and the raw Hugging Face twin each one is compared to.

Sizes (``SIZES``):

* ``tiny``: the test checkpoint (``model_adapters.testing.build_tiny_checkpoint("llava")``): Python overhead
  dominates, so ratios there say how much *fixed* cost a code path adds.
* ``mid``: a LLaVA-shaped model built in memory (d_model 1024, 8 layers x 16 heads x d_head 64, 224 px images
  with 14 px patches -> 256 image tokens) where compute dominates on a CPU, as it does for real models.
* ``llava7b``: the real LLaVA-1.5-7B shapes (32 layers x 32 heads x d_head 128, d_mlp 11008, vocab 32064,
  CLIP ViT-L/14-336 -> 576 image tokens), random weights, built straight on a GPU from the config (nothing
  is downloaded, nothing is written to disk but a tokenizer). CPU runs refuse it.

Random weights are fine: the benchmarks measure cost, not quality. Two things are arranged so that costs are
comparable: the language-model head's row of the end-of-sequence token is zeroed (``suppress_eos``: a random
model would otherwise stop early at random, and A and B would decode different numbers of tokens), and every
model comes with a *raw twin* (``raw_twin``): a pristine Hugging Face model that shares every parameter with
the wrapped one (the TransformerLens bridge swaps the Hugging Face modules for its own in place, so the
wrapped ``hf_model`` is no longer plain Hugging Face). ``BenchModel`` holds both, and knows how to hand a
prepared batch to either side.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from measure import device_sync, release_freed_memory
from torch import nn

from model_adapters import HookedVLM, VLMInputs, load_vlm
from sahs_lens.data import Sample, load_bundled

SIZE_NAMES = ("tiny", "mid", "llava7b")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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
    # every backend built (``vlm`` is the first), each on its own twin of the same parameters
    vlms: dict[str, HookedVLM] = field(default_factory=dict, repr=False)

    def on(self, backend: str) -> HookedVLM:
        """The wrapped model of ``backend`` (``"hf"`` or ``"bridge"``), one of those built."""
        if backend not in self.vlms:
            raise KeyError(
                f"no {backend!r} backend was built; built: {', '.join(self.vlms) or self.vlm.backend}"
            )
        return self.vlms[backend]

    def sync(self) -> Callable[[], object] | None:
        """What timing must call to wait for the device (``torch.cuda.synchronize`` on a GPU)."""
        return device_sync(self.vlm.device)

    def prepare(self, samples: Sequence[Sample]) -> VLMInputs:
        """One left-padded batch of ``samples`` (prompts and images) for ``vlm``."""
        return self.vlm.prepare([s.prompt for s in samples], images=[s.image for s in samples])

    def batches(self, samples: Sequence[Sample], batch_size: int) -> Iterator[VLMInputs]:
        """``samples`` prepared ``batch_size`` at a time, in order."""
        for lo in range(0, len(samples), batch_size):
            yield self.prepare(samples[lo : lo + batch_size])

    @staticmethod
    def raw_inputs(batch: VLMInputs, *, position_ids: bool = False) -> dict[str, Any]:
        """The keyword arguments that give the raw Hugging Face model the same inputs as ``vlm``: ids, mask
        and pixel values (``batch.model_kwargs``), with the batch's ``position_ids`` when asked."""
        inputs: dict[str, Any] = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if position_ids:
            inputs["position_ids"] = batch.position_ids
        return {**inputs, **batch.model_kwargs}

    def raw_generate(self, inputs: dict[str, Any], new_tokens: int, **extra: Any) -> Any:
        """Greedy Hugging Face ``generate`` of ``new_tokens`` tokens on the raw twin (``extra``: more options)."""
        with torch.no_grad():
            return self.raw.generate(**inputs, do_sample=False, max_new_tokens=new_tokens, **extra)


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
    size: str,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    backends: Sequence[str] = ("hf",),
) -> BenchModel:
    """Build the benchmark model of ``size`` on ``device`` (see the module docstring).

    ``tiny`` loads the test checkpoint from its directory; ``mid`` and ``llava7b`` are built from a config in
    memory, directly on ``device`` (no weights are written or downloaded). ``backends``: see ``build_spec``.
    """
    spec = check_size(size, device)
    return build_spec(
        spec, device=device, dtype=dtype, seed=seed, checkpoint=size == "tiny", backends=backends
    )


def build_spec(
    spec: ModelSize,
    *,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    checkpoint: bool = False,
    backends: Sequence[str] = ("hf",),
) -> BenchModel:
    """Build a model of any shape, e.g. a variant ``dataclasses.replace(SIZES["mid"], n_layers=4)``.

    The model is built from a config in memory, as ``mid`` and ``llava7b`` are (so a ``tiny``-shaped variant
    is *not* the test checkpoint); ``checkpoint=True`` loads the test checkpoint instead (``tiny`` only).
    ``backends``: the ``load_vlm`` backends to wrap it in (``"hf"``, ``"bridge"``), each around its own
    pristine twin made before any wrapping (the bridge rewrites the modules it wraps), all sharing one set of
    parameters with the raw twin; ``vlm`` is the first, ``vlms`` holds them all.
    """
    check_device(spec, device)
    if not backends or len(set(backends)) != len(backends):
        raise SystemExit(f"backends must be distinct and at least one; got {list(backends)}")
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
    twins = [hf] + [raw_twin(hf) for _ in backends[1:]]  # all made before any backend wraps one
    vlms = {
        name: load_vlm(source, hf_model=twin, processor=processor, device=device, dtype=dtype, backend=name)
        for name, twin in zip(backends, twins, strict=True)
    }
    vlm = vlms[backends[0]]
    return BenchModel(vlm, raw, spec, time.perf_counter() - start, workdir, vlms)


class ModelCache:
    """The last model built, kept while consecutive measurements share its shape (in-process measurement)."""

    def __init__(self, *, device: str, dtype: torch.dtype, seed: int) -> None:
        self.device, self.dtype, self.seed = device, dtype, seed
        self.spec: ModelSize | None = None
        self.bm: BenchModel | None = None

    def get(self, spec: ModelSize) -> BenchModel:
        if self.bm is None or spec != self.spec:
            self.drop()
            self.bm = build_spec(spec, device=self.device, dtype=self.dtype, seed=self.seed)
            self.spec = spec
        return self.bm

    def drop(self) -> None:
        """Free the model (a 7B model per shape would otherwise pile up on the GPU)."""
        self.bm, self.spec = None, None
        release_freed_memory()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a ``--dtype`` name (``float32``, ``float16``, ``bfloat16``)."""
    return DTYPES[name]


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
        **_stack(spec.vision_d_model, spec.vision_d_mlp, spec.vision_layers, spec.vision_heads),
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=768,
    )
    text = LlamaConfig(
        **_stack(spec.d_model, spec.d_mlp, spec.n_layers, spec.n_heads),
        vocab_size=spec.vocab_size,
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


def _stack(d_model: int, d_mlp: int, n_layers: int, n_heads: int) -> dict[str, Any]:
    """A transformer stack's shape in the words Hugging Face configs use (CLIP and Llama alike)."""
    return {
        "hidden_size": d_model,
        "intermediate_size": d_mlp,
        "num_hidden_layers": n_layers,
        "num_attention_heads": n_heads,
    }


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
