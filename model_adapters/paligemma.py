"""PaliGemma (``PaliGemmaForConditionalGeneration``): SigLIP tower, one linear projector, Gemma LM, prefix-LM.

The parts (``hf_model.model.*``):

* ``vision_tower`` — a SigLIP So400m ViT (224, 448 or 896 px images, 14 px patches: 256, 1,024 or 4,096
  patch features) with no pooling head;
* ``multi_modal_projector`` — one linear map into the language model's width (the features are then scaled
  by ``d_model ** -0.5``);
* ``language_model`` — Gemma (PaliGemma 1: Gemma 2B, one KV head) or Gemma 2 (PaliGemma 2: 2B, 9B, 27B;
  grouped-query attention, attention-logit soft-capping, alternating sliding-window layers), RMSNorms that
  multiply by ``1 + w``, the token embedding scaled by ``sqrt(d_model)`` and tied to ``lm_head``. Positions
  count from 1, not 0 (Hugging Face's ``generate`` adds one; under RoPE only differences of positions
  matter, so a forward with positions counted from 0 gives the same logits up to float round-off).

PaliGemma is a *prefix-LM*, not a chat model, and its checkpoints ship no chat template: the processor
builds the prefix. For a prompt it writes ``<image>`` x ``image_seq_length`` (one per patch feature), then
the BOS token, the prompt and a newline; the model writes the projected image features over the ``<image>``
tokens. The processor returns ``token_type_ids`` (0 on the whole prefix: image, BOS, prompt, newline) and
the model lets the prefix attend to itself **bidirectionally**, so every prompt token (the decision position
included) sees the whole prompt; generated tokens (type 1, which Hugging Face's ``generate`` appends) attend
causally. Like ``pixel_values``, ``token_type_ids`` matter at prefill only (on decode steps the mask is
causal whatever is passed), so ``decode_kwargs`` is empty. The processor also returns ``labels`` (every
prefix position ignored, -100): the model then computes a (NaN) loss that nothing reads.

``PaliGemmaProcessor`` refuses a batch without images and, in a batch with them, writes the BOS token six
characters into a prompt that has none; so this family encodes batches itself (``encode``): image rows
through the processor, text-only rows in the same layout minus the image tokens (``<bos>{prompt}\n``).

The mix checkpoints (``google/paligemma2-*-mix-*``) were trained on task prefixes (``caption en``,
``answer en {question}``, ``detect {object}``...); free-form questions work best as ``answer en ...``.

TransformerLens' bridge does not support PaliGemma (``bridge=False``): it runs on the ``hf`` backend.

Templates (what the user prompt ``{prompt}`` becomes, after the processor):

* ``"prefix"`` — the prompt itself: ``<image>`` x N ``<bos>{prompt}\\n``, exactly what
  ``processor(text=prompt, images=image)`` gives.
* ``"answer_en"`` — the mix checkpoints' question-answering prefix: ``<image>`` x N ``<bos>answer en
  {prompt}\\n``.
* ``"raw"`` — the prompt unchanged; write ``<image>`` into it yourself (the processor still adds ``<bos>``
  after the last ``<image>`` and the closing newline).
"""

from __future__ import annotations

from typing import Any

import torch

from model_adapters.registry import Family, Template, raw_template


def _prefix(task: str) -> Any:
    def render(prompt: str, has_image: bool, processor: Any) -> str:
        # one image token: the processor expands it, then adds <bos> after it and "\n" at the end
        image = processor.image_token if has_image else ""
        return f"{image}{task}{prompt}"

    return render


PREFIX = Template(
    "prefix",
    "the prompt as PaliGemma's processor lays it out: '<image>' x N, '<bos>', the prompt, '\\n'",
    _prefix(""),
)
ANSWER_EN = Template(
    "answer_en",
    "the mix checkpoints' question prefix: '<image>' x N, '<bos>answer en ', the prompt, '\\n'",
    _prefix("answer en "),
)


def encode(processor: Any, texts: list[str], images: list[Any]) -> dict[str, Any]:
    """The processor's layout for every row, text-only rows included, left-padded.

    Rows with an image go through ``PaliGemmaProcessor`` (``<image>`` x N, ``<bos>``, prompt, newline);
    a row without one is laid out the same way minus the image tokens (``<bos>``, prompt, newline), which
    the processor itself refuses to do. ``token_type_ids`` are 0 on every prompt token (the prefix).
    """
    tokenizer = processor.tokenizer
    ids: list[list[int]] = [[] for _ in texts]
    with_image = [i for i, image in enumerate(images) if image is not None]
    out: dict[str, Any] = {}
    if with_image:
        enc = processor(
            text=[texts[i] for i in with_image],
            images=[images[i] for i in with_image],
            return_tensors="pt",
            padding=True,
        )
        for row, i in enumerate(with_image):
            ids[i] = enc["input_ids"][row][enc["attention_mask"][row].bool()].tolist()
        out["pixel_values"] = enc["pixel_values"]
    for i, text in enumerate(texts):
        if images[i] is None:
            ids[i] = tokenizer(f"{tokenizer.bos_token}{text}\n", add_special_tokens=False)["input_ids"]
    width = max(len(row) for row in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out["input_ids"] = torch.tensor([[pad] * (width - len(row)) + row for row in ids], dtype=torch.long)
    out["attention_mask"] = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in ids])
    out["token_type_ids"] = torch.zeros_like(out["input_ids"])
    return out


PALIGEMMA = Family(
    name="paligemma",
    architectures=("PaliGemmaForConditionalGeneration",),
    templates={"prefix": PREFIX, "answer_en": ANSWER_EN, "raw": raw_template("<image>")},
    default_template="prefix",
    encode=encode,
    bridge=False,
    aliases=("paligemma2", "paligemma-2"),
)
