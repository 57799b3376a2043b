"""LLaVA-NeXT / LLaVA-1.6 (``LlavaNextForConditionalGeneration``): LLaVA with high-resolution "anyres" tiling.

The parts are LLaVA-1.5's: a CLIP ViT vision tower (``model.vision_tower``), a two-layer MLP projector
(``model.multi_modal_projector``) and a decoder-only language model (``model.language_model``: Vicuna,
Mistral or Nous-Hermes-Yi, depending on the checkpoint) with ``lm_head`` on top. What changes is how an image
becomes tokens:

* the processor picks the best of ``image_grid_pinpoints`` for the image's aspect ratio (e.g. 672x336 for a
  wide image), resizes and pads the image to it and cuts it into vision-tower-sized tiles (336 px), plus one
  downscaled overview tile of the whole image;
* every tile goes through CLIP; the tile features are stitched back into one feature grid, the padding is
  cut away (*unpadding*), and a learned ``image_newline`` vector ends every row of the grid;
* the overview tile's features come first, then the stitched grid. The prompt's single ``<image>`` is
  expanded by the processor into exactly that many tokens (about 2,000 for a 7B checkpoint), so the
  number of image tokens varies with the image's size: ``image_sizes`` (per image, ``(height, width)``)
  travels with ``pixel_values`` ``[n_images, n_tiles, 3, H, W]`` so that the model can undo the tiling.

Both image tensors are used at prefill only; decode steps see text tokens and the KV cache, as in
Hugging Face ``generate``. The decision position is still the last prompt token.

Templates:

* ``"chat"`` — the checkpoint's own chat template. It differs per checkpoint: llava-v1.6-mistral-7b-hf
  renders ``[INST] <image>\\n{prompt} [/INST]``; the vicuna checkpoints render ``USER: <image>\\n{prompt}
  ASSISTANT:``.
* ``"vicuna_v1"`` — the original LLaVA repository's ``conv_vicuna_v1`` (shared with LLaVA-1.5), the
  conversation llava-v1.6-vicuna-7b/13b were trained with.
* ``"raw"`` — the prompt unchanged; write ``<image>`` into it yourself.
"""

from __future__ import annotations

from model_adapters.llava import VICUNA_V1
from model_adapters.registry import Family, chat_template, raw_template

LLAVA_NEXT = Family(
    name="llava_next",
    architectures=("LlavaNextForConditionalGeneration",),
    templates={
        "chat": chat_template(
            "chat",
            "the checkpoint's own chat template (mistral: '[INST] ... [/INST]', "
            "vicuna: 'USER: ... ASSISTANT:')",
        ),
        "vicuna_v1": VICUNA_V1,
        "raw": raw_template("<image>"),
    },
    default_template="chat",
    bridge=True,
    aliases=("llava-next", "llava-1.6"),
)
