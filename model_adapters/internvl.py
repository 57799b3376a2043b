"""InternVL (``InternVLForConditionalGeneration``): InternViT tower, pixel-shuffle MLP projector, Qwen2/3 LM.

The parts (``hf_model.model.*``, the Hugging Face conversions ``OpenGVLab/InternVL3-*-hf``):

* ``vision_tower`` — InternViT, a ViT (448 px tiles, 14 px patches: 32x32 patch features per tile, plus a CLS
  feature that is dropped) with layer-scale vectors on both residual branches;
* ``multi_modal_projector`` — *pixel shuffle* (``downsample_ratio=0.5``) first folds every 2x2 block of
  neighbouring patch features into one 4x wider vector, then LayerNorm, Linear, GELU, Linear bring it to the
  language model's width: a 448 px tile becomes ``image_seq_length`` tokens (256: 32x32 / 2x2);
* ``language_model`` — a decoder-only LM with ``lm_head`` on top: Qwen2.5 in InternVL3 (GQA, biased
  q/k/v), Qwen3 in InternVL3.5 (q/k norms). Its attention is standard (``self_attn.o_proj``) with 1-D RoPE,
  so ``position_ids`` are counted over real tokens as for LLaVA.

How an image becomes tokens: with dynamic tiling on (``crop_to_patches``) the image processor picks, among
grids of ``min_patches``..``max_patches`` tiles (1..12), the one whose aspect ratio is closest to the image's,
resizes the image to it and cuts it into 448 px tiles; when there is more than one tile it adds a thumbnail of
the whole image as the last tile. The chat template writes ``<IMG_CONTEXT>\\n`` where the image goes; the
processor expands it to ``<img>`` + ``image_seq_length`` x n_tiles x ``<IMG_CONTEXT>`` + ``</img>``, so the
number of image tokens varies with the image's shape. ``pixel_values`` is ``[total tiles in the batch, 3, H,
W]`` (the tiles of every image of the batch, in prompt order; no padding tiles) and is used at prefill only.
The processor takes a flat list of the images present.

InternVL's processor (``InternVLProcessor``) also holds a video processor, which transformers 5.x cannot
build or load without torchvision, so ``AutoProcessor`` fails on a real InternVL checkpoint there. For images
``QianfanOCRProcessor`` (an InternVL derivative's image-only processor) with
``image_placeholder_token="<IMG_CONTEXT>"`` gives the same ids and pixel values: ``image_only_processor``
loads one from a checkpoint; pass it as ``load_vlm(..., processor=...)``. The tiny test checkpoint is saved
with it.

Templates:

* ``"chat"`` — the checkpoint's chat template: ``<|im_start|>user\\n<IMG_CONTEXT>\\n{prompt}<|im_end|>\\n
  <|im_start|>assistant\\n`` (ChatML, no system prompt, as in the ``-hf`` conversions).
* ``"internvl2_5"`` — the original InternVL repository's ``internvl2_5`` conversation (InternVL2.5 and 3 were
  trained with it): the same turns after its default Chinese system prompt.
* ``"raw"`` — the prompt unchanged; write ``<IMG_CONTEXT>`` into it yourself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_adapters.registry import Family, Template, chat_template, raw_template

INTERNVL_SYSTEM = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


def _render_internvl2_5(prompt: str, has_image: bool, processor: Any) -> str:
    image = f"{processor.image_token}\n" if has_image else ""
    return (
        f"<|im_start|>system\n{INTERNVL_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{image}{prompt}<|im_end|>\n<|im_start|>assistant\n"
    )


INTERNVL2_5 = Template(
    "internvl2_5",
    "original InternVL repo conversation 'internvl2_5' (its default system prompt, then ChatML turns)",
    _render_internvl2_5,
)


def image_only_processor(source: str | Path) -> Any:
    """An InternVL checkpoint's processor for images, built without torchvision.

    ``QianfanOCRProcessor`` has no video processor; with ``image_placeholder_token="<IMG_CONTEXT>"`` it reads
    the checkpoint's tokenizer, image processor (the PIL one), ``image_seq_length`` and chat template, and
    expands images exactly as ``InternVLProcessor`` does. Use it where ``AutoProcessor`` needs torchvision:
    ``load_vlm(path, processor=image_only_processor(path))``.
    """
    from transformers import QianfanOCRProcessor

    return QianfanOCRProcessor.from_pretrained(str(source), image_placeholder_token="<IMG_CONTEXT>")


INTERNVL = Family(
    name="internvl",
    architectures=("InternVLForConditionalGeneration",),
    templates={
        "chat": chat_template(
            "chat", "the checkpoint's chat template ('<|im_start|>user\\n<IMG_CONTEXT>\\n...<|im_end|>')"
        ),
        "internvl2_5": INTERNVL2_5,
        "raw": raw_template("<IMG_CONTEXT>"),
    },
    default_template="chat",
    aliases=("internvl3", "intern-vl"),
    image_only_processor=image_only_processor,
)
