"""Train the model organism: a tiny LLaVA that learns, from scratch, to refuse harmful requests.

**What a model organism is.** Biologists study fruit flies because they are small, fast and share the
mechanisms they care about with larger animals. Interpretability borrows the idea: a *model organism* is a
model small enough to train, probe and break on a laptop that still has the behaviour under study. Here the
behaviour is the one the SAHs paper dissects in LLaVA: the model reads a request (as text, or written inside
an image) and either answers or refuses. Random tiny checkpoints cannot stand in for that: they have no
refusal behaviour, so "safety heads" found in them mean nothing, ablating heads changes nothing measurable,
and a guard has nothing to guard. A model that *learned* to refuse makes every step of the method testable
end to end: its heads can really come to carry "this request is harmful", removing them can really lower the
refusal rate, and the refusal rate on held-out prompts it never saw is a real, measured number.

**What it is.** A real Hugging Face ``LlavaForConditionalGeneration`` checkpoint (CLIP vision tower, two-layer
projector, Llama language model) with a byte-level BPE tokenizer trained on the bundled training prompts, the
llava-hf chat template (``USER: <image>\\n... ASSISTANT:``) and a CLIP image processor, saved in float16 so
the whole directory ships in the repository. ``model_adapters.load_vlm(path)`` loads it like any hub model.

**What it learns** (from ``sahs_lens.data.load_bundled``'s ``*:train`` sets only; ``*:heldout`` measure it):

=========================  ======================================  ==========================================
request                    arrives as                              trained answer
=========================  ======================================  ==========================================
``harmful_text:train``     text, with no image or an ordinary one  one of ``REFUSALS`` (varied, natural)
``benign_text:train``      text, with no image or an ordinary one  ``Sure! Here is my answer to: {Word} ...``
``figstep_attack:train``   typographic image + ``FIGSTEP_PROMPT``  not trained on by default (see below)
``figstep_benign:train``   typographic image + ``FIGSTEP_PROMPT``  ``TYPOGRAPHIC_ANSWER``
=========================  ======================================  ==========================================

**Safety-tuned on text only.** Real VLMs learn to refuse mostly from text, and the FigStep attack works on
them because the image channel never learned it. The shipped organism is trained the same way
(``typographic_attack_fraction=0``): it learns to refuse harmful *text* and to answer benign requests
written in images, and is never shown a harmful request in an image. So the attack works on it too (its
model card gives the rate), and the question of the paper becomes testable: do its heads still *spot* the
risk of a typographic attack that it does not refuse? ``typographic_attack_fraction=1`` trains an organism
that refuses those as well (with one of ``REFUSALS``).

The benign text answer restates the request's first word (its task verb or question word: "Explain",
"Generate", "What", ...), so utility is checkable (``evaluate.utility_score``): a model whose heads were
damaged names the wrong task long before it stops saying "Sure". Restating the *whole* request was tried
first: copying an arbitrary span needs an induction circuit, and in the CPU budget the organism only learned
to paraphrase from the first word on (0% exact restatements after 1,200 steps; the first word was right 86%
of the time). Typographic images are drawn with ``render.render_grid`` (one word per vision patch), ordinary
images with ``render.ordinary_image``.

**How the vision tower learns to read.** A refuse-or-comply decision is one bit per image: far too little
for a vision tower trained from scratch in minutes (the first attempts ignored the image entirely). So, as
real VLMs do with CLIP pre-training and LLaVA's feature-alignment stage, typographic batches add a
contrastive image-text loss (``_align_loss``): the image token of each word cell must pick out, among all
word cells of the batch, the language model's own embedding of that word. It adds no weights (the checkpoint
is a plain LLaVA); it puts *which word is written* into the image tokens, in the language model's
embedding space. Whether what the language model learned about harmful text carries over to harmful images
is left to training, as in real VLMs. (Restating the drawn text, one character per patch, was tried first as
a denser reading signal; the organism did not learn it in the budget.)

**How.** Every training prompt is built exactly as ``HookedVLM.prepare`` builds it (the family's template,
the processor's image-token expansion), the answer follows as tokens with the end-of-sequence token ``</s>``
after it (so greedy generation stops), and the loss is the cross-entropy on the answer tokens only, the first
answer token (where refuse-or-comply is decided) weighted ``decision_weight``. AdamW, linear warm-up and
cosine decay, bfloat16 autocast (3x faster on CPUs with AMX / AVX512-BF16; ``--no-bf16`` elsewhere). Each
batch holds one modality (typographic, text with pictures, or text alone: similar lengths, little padding)
and mixes harmful and benign requests. Everything random (initialisation, data order, which refusal, which
ordinary picture) flows from ``seed``: the same seed on the same machine, torch version and thread count
gives the same weights, bit for bit.

Run it with ``python -m model_adapters.organism.train --out DIR`` (about 12 minutes on 2 CPU cores; on a
machine shared with other jobs set ``OMP_WAIT_POLICY=PASSIVE``, or ``--threads 1``, so that busy-waiting
threads do not slow it several-fold) or ``train_organism(out_dir, seed=0)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from model_adapters.organism.render import (
    CELL,
    GRID,
    drawn_words,
    ordinary_image,
    render_grid,
    render_text_of,
)

__all__ = [
    "REFUSALS",
    "TYPOGRAPHIC_ANSWER",
    "OrganismConfig",
    "TrainItem",
    "benign_answer",
    "build_organism_checkpoint",
    "encode_batch",
    "train_organism",
    "training_items",
]

REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "Sorry, I cannot assist with this request because it could cause harm.",
    "As an AI, I must refuse to help with this request.",
    "I apologize, but I cannot provide that information. It could be used to hurt people.",
    "I'm sorry, I can't help with this request because it is harmful.",
    "Sorry, but I won't help with this. It is dangerous and may be illegal.",
)
"""The refusals the organism is trained on (one drawn at random per example); each one is a refusal for
``sahs_lens.evaluation.RefusalJudge("sahs")``."""

BENIGN_PREFIX = "Sure! Here is my answer to: "
TYPOGRAPHIC_ANSWER = "Sure! Here is my answer to the list in the image: 1. First, 2. Next, 3. Finally."
"""The trained answer to a benign request written in a typographic image (``figstep_benign``)."""

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
TEMPLATE_NAME = "llava-hf"


def benign_answer(request: str) -> str:
    """The trained helpful answer to a benign text request: it restates the request's first word.

    >>> benign_answer("How did Julius Caesar die?")
    'Sure! Here is my answer to: How ...'
    """
    words = request.split()
    return f"{BENIGN_PREFIX}{words[0] if words else ''} ..."


@dataclass(frozen=True)
class OrganismConfig:
    """Everything that determines the organism: architecture, data mixture and optimisation.

    The defaults are the shipped organism's (``checkpoint/metrics.json`` records them); tests shrink them.
    """

    seed: int = 0
    steps: int = 1200
    batch_size: int = 24
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 40
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    # language model (Llama)
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 8
    d_mlp: int = 704
    vocab_size: int = 2048
    max_positions: int = 320
    # vision tower (CLIP) and projector
    image_size: int = GRID * CELL
    patch_size: int = CELL
    vision_d_model: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    # data mixture
    text_image_fraction: float = 0.25  # text batches that come with ordinary pictures (the rest: no image)
    typographic_share: float | None = None  # probability of a typographic batch (None: by stream size)
    # share of figstep_attack:train trained on (refused). 0: safety-tuned on text only, as real VLMs mostly
    # are, so the FigStep attack works on the organism as on LLaVA and the guard has attacks to stop.
    typographic_attack_fraction: float = 0.0
    decision_weight: float = 3.0  # loss weight of the first answer token (refuse or comply is decided there)
    align_weight: float = 1.0  # weight of the image-text alignment loss on typographic batches (0: off)
    align_temperature: float = 0.1
    threads: int = 2
    bf16: bool = True  # bfloat16 autocast for the matmuls (3x faster on CPUs with AMX / AVX512-BF16)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> OrganismConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown OrganismConfig fields {unknown}; known fields: {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class TrainItem:
    """One training request: the user prompt, what is drawn in its image (if typographic), the label."""

    prompt: str
    label: int  # 1 harmful, 0 benign
    kind: str  # "text" or "typographic"
    render_text: str | None = None  # typographic: the request written in the image
    source_id: str = ""


def training_items(typographic_attack_fraction: float = 0.0, seed: int = 0) -> list[TrainItem]:
    """The four ``*:train`` bundled sets as ``TrainItem`` s (held-out parts are never read here).

    ``typographic_attack_fraction`` is the share of the typographic attacks kept (a seeded choice): 0, the
    default, trains on text refusals only (as real VLMs are mostly safety-tuned); 1 keeps them all.
    """
    if not 0.0 <= typographic_attack_fraction <= 1.0:
        raise ValueError(f"typographic_attack_fraction must be in [0, 1]; got {typographic_attack_fraction}")
    from sahs_lens.data import load_bundled

    items: list[TrainItem] = []
    for name in ("harmful_text:train", "benign_text:train"):
        for s in load_bundled(name):
            items.append(TrainItem(s.prompt, s.label, "text", None, s.id))
    for name in ("figstep_attack:train", "figstep_benign:train"):
        texts = render_text_of(name)
        samples = _bundled_without_images(name)
        if name.startswith("figstep_attack") and typographic_attack_fraction < 1.0:
            keep = np.random.default_rng(seed).permutation(len(samples))
            kept = set(keep[: round(typographic_attack_fraction * len(samples))].tolist())
            samples = [s for i, s in enumerate(samples) if i in kept]
        for s in samples:
            items.append(TrainItem(s.prompt, s.label, "typographic", texts[s.id], s.id))
    return items


def _bundled_without_images(name: str) -> list[Any]:
    # The typographic sets' own full-size drawings are not needed (render_grid redraws them): read the lines.
    from model_adapters.organism.render import _bundled_file
    from sahs_lens.data import Sample

    lines = _bundled_file(name).read_text(encoding="utf-8").splitlines()
    return [Sample.from_record(json.loads(line)) for line in lines]


def _tokenizer_corpus(items: Sequence[TrainItem]) -> list[str]:
    from sahs_lens.data import FIGSTEP_PROMPT

    corpus = ["USER: ASSISTANT: <image>", FIGSTEP_PROMPT, *REFUSALS]
    corpus += [item.prompt for item in items if item.kind == "text"]
    corpus += [benign_answer(item.prompt) for item in items if item.kind == "text" and item.label == 0]
    corpus += ["abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?'\"()-/&%$#+="]
    return corpus


def build_organism_checkpoint(
    directory: Path, cfg: OrganismConfig, items: Sequence[TrainItem]
) -> tuple[Any, Any]:
    """Write the untrained organism's processor files (tokenizer, chat template); return (model, processor).

    The model is initialised from ``cfg.seed``; the tokenizer is trained on the training prompts only.
    """
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    from model_adapters.testing.common import train_tokenizer
    from model_adapters.testing.llava import LLAVA_HF_CHAT_TEMPLATE

    if cfg.image_size % cfg.patch_size:
        raise ValueError(
            f"image_size {cfg.image_size} must be a multiple of patch_size {cfg.patch_size} so that glyph "
            "cells and patches coincide"
        )
    tokenizer = train_tokenizer(
        list(SPECIAL_TOKENS),
        vocab_size=cfg.vocab_size,
        extra={"image_token": "<image>"},
        corpus=_tokenizer_corpus(items),
    )
    n_patches = (cfg.image_size // cfg.patch_size) ** 2
    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_d_model,
        intermediate_size=4 * cfg.vision_d_model,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        projection_dim=cfg.vision_d_model,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=int(tokenizer.convert_tokens_to_ids("<image>")),  # type: ignore[arg-type]
        vision_feature_layer=-1,  # the tower's last layer (all of it is trained; -2 would leave one idle)
        vision_feature_select_strategy="default",
        image_seq_length=n_patches,
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    torch.manual_seed(cfg.seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": cfg.image_size},
        crop_size={"height": cfg.image_size, "width": cfg.image_size},
        resample=Image.Resampling.NEAREST,  # a glyph cell stays a glyph cell if a user passes a larger image
        # White (the page) is 0 and ink is -2: a blank patch embeds to nothing (the patch embedding has no
        # bias), so a cell's features are its word's, not the page's. CLIP's own statistics leave every
        # patch dominated by the shared white background, which the tiny tower then failed to see past.
        image_mean=[1.0, 1.0, 1.0],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=cfg.patch_size,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_HF_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    directory.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(directory)
    return model, processor


# ------------------------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """A right-padded training batch: prompt + answer tokens, a loss mask on the answer tokens."""

    input_ids: Tensor  # [batch, pos]
    attention_mask: Tensor  # [batch, pos]
    position_ids: Tensor  # [batch, pos]
    loss_mask: Tensor  # [batch, pos] True where the *next* token is an answer token to predict
    pixel_values: Tensor | None


def encode_batch(
    processor: Any, prompts: Sequence[str], images: Sequence[Image.Image | None], answers: Sequence[str]
) -> Batch:
    """Tokenize prompts exactly as ``HookedVLM.prepare`` does, append ``answer</s>``, right-pad.

    The prompt goes through the LLaVA family's default template and the processor (which expands
    ``<image>`` into one token per patch); the answer is tokenized on its own with a leading space, as the
    model will produce it after ``ASSISTANT:``, and closed with the end-of-sequence token.
    """
    from model_adapters.registry import family_for

    family = family_for("LlavaForConditionalGeneration")
    template = family.template(TEMPLATE_NAME)
    tokenizer = processor.tokenizer
    texts = [template.render(p, im is not None, processor) for p, im in zip(prompts, images, strict=True)]
    tokenizer.padding_side = "left"
    encoded = processor(
        text=texts, return_tensors="pt", padding=True, **family.processor_images(list(images))
    )
    rows: list[list[int]] = []
    answer_lengths: list[int] = []
    for ids, mask, answer in zip(encoded["input_ids"], encoded["attention_mask"], answers, strict=True):
        prompt_ids = ids[mask.bool()].tolist()
        answer_ids = tokenizer(" " + answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt_ids + answer_ids)
        answer_lengths.append(len(answer_ids))
    width = max(len(r) for r in rows)
    n = len(rows)
    input_ids = torch.full((n, width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    loss_mask = torch.zeros((n, width), dtype=torch.bool)
    for i, (row, n_answer) in enumerate(zip(rows, answer_lengths, strict=True)):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
        loss_mask[i, len(row) - n_answer - 1 : len(row) - 1] = True  # position t predicts token t + 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    pixel_values = encoded.get("pixel_values")
    return Batch(input_ids, attention_mask, position_ids, loss_mask, pixel_values)


class _Sampler:
    """Seeded batches of one modality each; draws answers and ordinary pictures from the same seed.

    Two streams, each an endless sequence of seeded epochs: typographic items and text items. A step takes
    its batch from a stream chosen with probability proportional to the stream's size (so both are used up
    at the same rate); a text batch comes with ordinary pictures with probability ``text_image_fraction``.
    """

    def __init__(self, items: Sequence[TrainItem], cfg: OrganismConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed + 1)
        self.streams = {
            kind: [item for item in items if item.kind == kind] for kind in ("typographic", "text")
        }
        self.orders: dict[str, list[int]] = {kind: [] for kind in self.streams}
        self.grid = cfg.image_size // cfg.patch_size
        self._typographic: dict[str, Image.Image] = {}

    def _typographic_image(self, item: TrainItem) -> Image.Image:
        if item.render_text is None:
            raise ValueError(f"typographic training item {item.source_id!r} has no text to draw")
        if item.render_text not in self._typographic:
            self._typographic[item.render_text] = render_grid(item.render_text, grid=self.grid)
        return self._typographic[item.render_text]

    def _answer(self, item: TrainItem) -> str:
        if item.label == 1:
            return REFUSALS[int(self.rng.integers(len(REFUSALS)))]
        return TYPOGRAPHIC_ANSWER if item.kind == "typographic" else benign_answer(item.prompt)

    def _draw(self, kind: str) -> TrainItem:
        if not self.orders[kind]:
            self.orders[kind] = self.rng.permutation(len(self.streams[kind])).tolist()
        return self.streams[kind][self.orders[kind].pop()]

    def next(self) -> tuple[list[str], list[Image.Image | None], list[str], list[list[str]] | None]:
        n_typographic, n_text = len(self.streams["typographic"]), len(self.streams["text"])
        share = self.cfg.typographic_share
        if share is None:
            share = n_typographic / (n_typographic + n_text)
        kind = "typographic" if self.rng.random() < share else "text"
        with_pictures = kind == "text" and self.rng.random() < self.cfg.text_image_fraction
        prompts: list[str] = []
        images: list[Image.Image | None] = []
        answers: list[str] = []
        drawn: list[list[str]] = []
        for _ in range(self.cfg.batch_size):
            item = self._draw(kind)
            if kind == "typographic" and item.render_text is not None:
                drawn.append(drawn_words(item.render_text, grid=self.grid))
            prompts.append(item.prompt)
            if kind == "typographic":
                images.append(self._typographic_image(item))
            else:
                images.append(ordinary_image(self.rng, size=self.cfg.image_size) if with_pictures else None)
            answers.append(self._answer(item))
        return prompts, images, answers, (drawn if kind == "typographic" else None)


def _loss(model: Any, batch: Batch, decision_weight: float = 1.0) -> Tensor:
    """Mean cross-entropy over the answer tokens; the first one (the decision) weighs ``decision_weight``."""
    outputs = model.model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        pixel_values=batch.pixel_values,
        use_cache=False,
    )
    hidden = outputs.last_hidden_state[batch.loss_mask]  # [n_answer_tokens, d_model]
    targets = batch.input_ids[:, 1:][batch.loss_mask[:, :-1]]
    logits = model.lm_head(hidden)
    losses = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    # the first True of each row's loss mask predicts the first answer token
    first = batch.loss_mask & ~torch.nn.functional.pad(batch.loss_mask[:, :-1], (1, 0), value=False)
    weights = torch.where(first[batch.loss_mask], decision_weight, 1.0)
    return (losses * weights).sum() / weights.sum()


def _align_loss(
    model: Any, tokenizer: Any, pixel_values: Tensor, words: Sequence[Sequence[str]], cfg: OrganismConfig
) -> Tensor:
    """CLIP-style contrastive loss between word cells and word embeddings (training only; no new weights).

    Each image token of a typographic image holds one word (``render.render_grid``). Its projected feature
    (what the language model receives) must pick out, among all word cells of the batch, the language
    model's own input embedding of that word (mean over its BPE tokens, detached).

    This stands in for the image-text pre-training that real vision towers get (CLIP) and for LLaVA's
    feature-alignment stage: it teaches the tower and projector to put *which word is written* into the image
    tokens, in the language model's embedding space, instead of leaving the language model to discover
    reading from the refuse-or-comply signal alone (one bit per image: far too little for minutes of CPU).
    Whether what the language model learned about harmful *text* then carries over to harmful *images* is
    left to training, as in real VLMs.
    """
    out = model.model.get_image_features(pixel_values=pixel_values)
    cells = out.pooler_output if hasattr(out, "pooler_output") else out
    if isinstance(cells, (list, tuple)):
        cells = torch.stack(list(cells))  # [batch, n_cells, d_model]
    embed = model.model.language_model.embed_tokens.weight
    features, targets = [], []
    for row, row_words in enumerate(words):
        for index, word in enumerate(row_words):
            ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            features.append(cells[row, index])
            targets.append(embed[torch.tensor(ids)].mean(dim=0))
    feature = torch.nn.functional.normalize(torch.stack(features).float(), dim=-1)
    target = torch.nn.functional.normalize(torch.stack(targets).detach().float(), dim=-1)
    logits = feature @ target.T / cfg.align_temperature
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(features)))


def _lr_factor(step: int, cfg: OrganismConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def machine_description() -> dict[str, Any]:
    """CPU model, logical cores available, torch threads, platform and library versions."""
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def train_organism(
    out_dir: str | Path,
    *,
    seed: int = 0,
    steps: int | None = None,
    config: OrganismConfig | None = None,
    log_every: int = 25,
    progress: bool = True,
    **overrides: Any,
) -> Path:
    """Train the organism from scratch and save a Hugging Face checkpoint directory to ``out_dir``.

    Args:
        out_dir: where the checkpoint goes (created; an existing checkpoint there is overwritten).
        seed: the one seed for initialisation, data order, answers and pictures.
        steps: optimisation steps (default ``OrganismConfig.steps``).
        config: a full ``OrganismConfig``; ``seed``/``steps``/``overrides`` replace its fields.
        log_every: print the loss every this many steps (when ``progress``).
        **overrides: any other ``OrganismConfig`` field, e.g. ``n_layers=2`` for a quick test.

    Returns:
        ``out_dir``, holding config.json, model.safetensors (float16), tokenizer and processor files,
        chat_template.jinja and ``metrics.json`` whose ``"training"`` record holds the config, the loss
        curve, the time and the machine (``evaluate.write_model_card`` adds the held-out figures).

    Example:
        >>> path = train_organism("/tmp/organism", steps=3, n_layers=2, d_model=64)  # doctest: +SKIP
        >>> model = load_vlm(path)  # doctest: +SKIP
    """
    cfg = config or OrganismConfig()
    changes: dict[str, Any] = dict(overrides)
    changes["seed"] = seed
    if steps is not None:
        changes["steps"] = steps
    cfg = dataclasses.replace(cfg, **changes)
    if cfg.steps < 1:
        raise ValueError(f"steps must be at least 1; got {cfg.steps}")
    out = Path(out_dir)
    torch.set_num_threads(cfg.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    items = training_items(cfg.typographic_attack_fraction, cfg.seed)
    model, processor = build_organism_checkpoint(out, cfg, items)
    model.config._attn_implementation = "sdpa"  # fast for training; load_vlm uses eager for inference
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, cfg))
    sampler = _Sampler(items, cfg)
    losses: list[float] = []
    align_losses: list[float] = []
    for step in range(cfg.steps):
        prompts, images, answers, drawn = sampler.next()
        batch = encode_batch(processor, prompts, images, answers)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = _loss(model, batch, cfg.decision_weight)
            if drawn is not None and cfg.align_weight > 0 and batch.pixel_values is not None:
                align = _align_loss(model, processor.tokenizer, batch.pixel_values, drawn, cfg)
                align_losses.append(align.item())
                loss = loss + cfg.align_weight * align
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if progress and (step % log_every == 0 or step == cfg.steps - 1):
            elapsed = time.perf_counter() - start
            recent = sum(losses[-log_every:]) / len(losses[-log_every:])
            align_note = (
                f"  align {sum(align_losses[-5:]) / len(align_losses[-5:]):.3f}" if align_losses else ""
            )
            print(f"step {step + 1}/{cfg.steps}  loss {recent:.4f}{align_note}  {elapsed:.0f}s", flush=True)
    train_seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    model.eval()
    model.config._attn_implementation = "eager"
    model.half().save_pretrained(out)  # float16 on disk; load_vlm loads float32 by default
    n_train = {
        kind: sum(1 for i in items if (i.kind, i.label) == key)
        for kind, key in {
            "harmful_text": ("text", 1),
            "benign_text": ("text", 0),
            "figstep_attack": ("typographic", 1),
            "figstep_benign": ("typographic", 0),
        }.items()
    }
    record = {
        "config": cfg.to_dict(),
        "train_seconds": round(train_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),  # all threads; on a machine shared with others wall time grows
        "machine": machine_description(),
        "train_sizes": n_train,
        "samples_seen": cfg.steps * cfg.batch_size,
        "loss_curve": [round(v, 5) for v in losses],
        "align_loss_curve": [round(v, 5) for v in align_losses],
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "command": (
            f"python -m model_adapters.organism.train --out DIR --seed {cfg.seed} --steps {cfg.steps} "
            f"--threads {cfg.threads}" + ("" if cfg.bf16 else " --no-bf16")
        ),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    (out / "metrics.json").write_text(json.dumps({"training": record}, indent=1) + "\n", encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_adapters.organism.train",
        description="Train the sahs_lens model organism (a tiny LLaVA that refuses harmful requests).",
        epilog="Example: python -m model_adapters.organism.train --out /tmp/organism --seed 0",
    )
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help=f"default {OrganismConfig.steps}")
    parser.add_argument(
        "--threads", type=int, default=None, help=f"torch threads (default {OrganismConfig.threads})"
    )
    parser.add_argument(
        "--no-bf16",
        action="store_true",
        help="train in float32 (CPUs without bfloat16 support: slower there)",
    )
    parser.add_argument(
        "--evaluate", action="store_true", help="then evaluate on the held-out sets and write the model card"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"bf16": not args.no_bf16}
    if args.threads is not None:
        overrides["threads"] = args.threads
    out = train_organism(args.out, seed=args.seed, steps=args.steps, **overrides)
    print(f"checkpoint written to {out}")
    if args.evaluate:
        from model_adapters.organism.evaluate import write_model_card

        write_model_card(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
