"""Training batches of the organism: prompts built exactly as ``HookedVLM.prepare`` builds them.

A model organism is only a faithful test subject if the prompts it was trained on are the prompts the method
later feeds it. ``encode_batch`` therefore renders every request through the LLaVA family's template and the
processor (which expands ``<image>`` into one token per patch) exactly as ``HookedVLM.prepare`` does, then
appends the answer and the end-of-sequence token ``</s>`` (so greedy generation stops), and marks the answer
tokens as the only ones the loss sees. ``tests/e2e/test_organism.py`` checks the prompt tokens against
``prepare`` token for token.

``BatchSampler`` draws the batches: each holds one modality (typographic, text with pictures, or text
alone: similar lengths, little padding) and mixes harmful and benign requests; the answers (which refusal)
and the ordinary pictures come from the same seed. Typographic images are drawn with ``render.render_grid``
(one word per vision patch), ordinary images with ``render.ordinary_image``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from model_adapters import family_for
from sahs_lens.organism.recipe import (
    REFUSALS,
    TEMPLATE_NAME,
    TYPOGRAPHIC_ANSWER,
    OrganismConfig,
    TrainItem,
    benign_answer,
)
from sahs_lens.organism.render import drawn_words, ordinary_image, render_grid

__all__ = ["Batch", "BatchSampler", "encode_batch"]


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


class BatchSampler:
    """Seeded batches of one modality each; draws answers and ordinary pictures from the same seed.

    Four streams, each an endless sequence of seeded epochs: typographic items, harmful text, benign text
    with harmful-sounding words (``overlap``) and other benign text. A step is typographic with probability
    ``typographic_share`` (``None``: the typographic stream's share of all items); a text batch draws each
    request from the harmful stream with probability ``harmful_share`` (``None``: by stream size), else
    from the overlap stream with probability ``overlap_share``, else from the other benign requests, and
    comes with ordinary pictures with probability ``text_image_fraction``.
    """

    def __init__(self, items: Sequence[TrainItem], cfg: OrganismConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed + 1)
        self.streams = {
            "typographic": [item for item in items if item.kind == "typographic"],
            "harmful": [item for item in items if item.kind == "text" and item.label == 1],
            "overlap": [item for item in items if item.kind == "text" and item.label == 0 and item.overlap],
            "benign": [
                item for item in items if item.kind == "text" and item.label == 0 and not item.overlap
            ],
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
        if kind == "text":
            kind = self._text_stream()
        if not self.streams[kind]:
            raise ValueError(f"no {kind} training requests to draw from")
        if not self.orders[kind]:
            self.orders[kind] = self.rng.permutation(len(self.streams[kind])).tolist()
        return self.streams[kind][self.orders[kind].pop()]

    def _text_stream(self) -> str:
        n_harmful = len(self.streams["harmful"])
        n_benign = len(self.streams["overlap"]) + len(self.streams["benign"])
        harmful_share = self.cfg.harmful_share
        if harmful_share is None:
            harmful_share = n_harmful / (n_harmful + n_benign)
        if self.rng.random() < harmful_share:
            return "harmful"
        if self.streams["overlap"] and self.rng.random() < self.cfg.overlap_share:
            return "overlap"
        return "benign" if self.streams["benign"] else "overlap"

    def next(self) -> tuple[list[str], list[Image.Image | None], list[str], list[list[str]] | None]:
        n_typographic = len(self.streams["typographic"])
        n_text = sum(len(self.streams[k]) for k in ("harmful", "overlap", "benign"))
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
