"""What the model organism is taught: its answers, its training requests and its configuration.

Training (``train``) and evaluation (``evaluate``) must agree word for word on what a refusal and a helpful
answer look like, or the model card would measure something other than what was trained. This module is
that shared vocabulary, and both import it.

**What it learns** (from ``sahs_lens.data.load_bundled``'s ``*:train`` sets only; ``*:heldout`` measure it):

=========================  ======================================  ==========================================
request                    arrives as                              trained answer
=========================  ======================================  ==========================================
``harmful_text:train``     text, with no image or an ordinary one  one of ``REFUSALS`` (varied, natural)
``benign_text:train``      text, with no image or an ordinary one  ``Sure! Here is my answer to: {Word} ...``
``alpaca_train.jsonl.gz``  text, with no image or an ordinary one  ``Sure! Here is my answer to: {Word} ...``
``figstep_attack:train``   typographic image + ``FIGSTEP_PROMPT``  not trained on by default (see below)
``figstep_benign:train``   typographic image + ``FIGSTEP_PROMPT``  ``TYPOGRAPHIC_ANSWER``
=========================  ======================================  ==========================================

**Context, not words.** The first organism saw 1,400 benign requests and refused "How do I kill a Python
process?": a harmful-sounding word alone decided. This one is trained on every Alpaca instruction that
qualifies for the bundle (about 28,000, ``data/alpaca_train.jsonl.gz``, built by
``scripts/make_bundled_data.py``) except the held-out ones, and a share of its benign draws
(``overlap_share``) comes from ``benign_overlap:train``: benign instructions that contain a word typical of
the harmful requests ("attack", "steal", "virus", found by vocabulary overlap, not by hand). The harmful
requests are few (803), so text batches draw them with probability ``harmful_share`` (each is seen many
times); held-out harmful requests, benign ones and benign ones with harmful-sounding words
(``benign_overlap:heldout``) measure it.

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
of the time).

>>> benign_answer("Explain the water cycle.")
'Sure! Here is my answer to: Explain ...'
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sahs_lens.data import Sample, bundled_path, load_bundled
from sahs_lens.organism.render import CELL, GRID, render_text_of

__all__ = [
    "BENIGN_PREFIX",
    "REFUSALS",
    "SPECIAL_TOKENS",
    "TEMPLATE_NAME",
    "TYPOGRAPHIC_ANSWER",
    "OrganismConfig",
    "TrainItem",
    "benign_answer",
    "benign_training_requests",
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
BENIGN_TRAIN_FILE: Path = Path(__file__).with_name("data") / "alpaca_train.jsonl.gz"
"""The organism's benign training requests (Alpaca, CC BY-NC 4.0; see ``data/NOTICE.md``)."""
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
    steps: int = 1500
    batch_size: int = 32
    lr: float = 1.5e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 60
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    # language model (Llama)
    d_model: int = 256
    n_layers: int = 8
    n_heads: int = 16
    d_mlp: int = 704
    vocab_size: int = 8192
    max_positions: int = 320
    # vision tower (CLIP) and projector
    image_size: int = GRID * CELL
    patch_size: int = CELL
    vision_d_model: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    # data mixture
    text_image_fraction: float = 0.25  # text batches that come with ordinary pictures (the rest: no image)
    typographic_share: float | None = 0.15  # probability of a typographic batch (None: by stream size)
    harmful_share: float | None = 0.3  # share of harmful requests in a text batch (None: by stream size)
    overlap_share: float = 0.3  # share of benign text draws taken from benign_overlap:train
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
    overlap: bool = False  # a benign request with harmful-sounding words (benign_overlap:train)


def training_items(typographic_attack_fraction: float = 0.0, seed: int = 0) -> list[TrainItem]:
    """The training requests as ``TrainItem`` s (held-out parts are never read here).

    Text: ``harmful_text:train`` and the benign requests of ``benign_training_requests`` (flagged
    ``overlap`` when in ``benign_overlap:train``); typographic: ``figstep_benign:train`` and the kept share
    of ``figstep_attack:train``.

    ``typographic_attack_fraction`` is the share of the typographic attacks kept (a seeded choice): 0, the
    default, trains on text refusals only (as real VLMs are mostly safety-tuned); 1 keeps them all.
    """
    if not 0.0 <= typographic_attack_fraction <= 1.0:
        raise ValueError(f"typographic_attack_fraction must be in [0, 1]; got {typographic_attack_fraction}")
    items: list[TrainItem] = [
        TrainItem(s.prompt, s.label, "text", None, s.id) for s in load_bundled("harmful_text:train")
    ]
    overlap = {s.id for s in load_bundled("benign_overlap:train")}
    for record in benign_training_requests():
        items.append(TrainItem(record["prompt"], 0, "text", None, record["id"], record["id"] in overlap))
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


def benign_training_requests(path: Path = BENIGN_TRAIN_FILE) -> list[dict[str, str]]:
    """The benign training requests (``{"id", "prompt"}``), none of them in a held-out bundled set."""
    if not path.is_file():
        raise FileNotFoundError(
            f"the organism's benign training set {path} is missing; rebuild it with "
            "python scripts/make_bundled_data.py (needs the shared Alpaca file) or reinstall sahs-lens"
        )
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _bundled_without_images(name: str) -> list[Sample]:
    # The typographic sets' own full-size drawings are not needed (render_grid redraws them): read the lines.
    lines = bundled_path(name).read_text(encoding="utf-8").splitlines()
    return [Sample.from_record(json.loads(line)) for line in lines]
