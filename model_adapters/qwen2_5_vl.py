"""Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): windowed ViT, 2x2 patch merger, Qwen2.5 LM, 3-D mRoPE.

The parts (``hf_model.model.*``):

* ``visual`` — a ViT (32 blocks, 1,280 wide, the same in every size) on 14 px patches. Its patch
  embedding is a 3-D convolution over ``temporal_patch_size`` = 2 frames (a still image is its own second
  frame); the blocks use RMSNorm, a SwiGLU MLP, 2-D rotary positions over (row, column), and *window
  attention* inside 112 px windows except in a few full-attention blocks (``fullatt_block_indexes``: 7, 15,
  23, 31). Attention there is ``attn.qkv`` / ``attn.proj``, so the structural search for ``self_attn.o_proj``
  never mistakes the tower for the language model;
* ``visual.merger`` — the projector: an RMSNorm, then a two-layer MLP over every 2x2 block of neighbouring
  patch features (4 x 1,280 wide in, the language model's width out): one language-model token per 28x28 px;
* ``language_model`` — a Qwen2.5 decoder (grouped-query attention, biased ``q/k/v_proj``, RMSNorm, SwiGLU),
  with ``lm_head`` on top (tied to the embedding in the 3B checkpoint, untied in 7B and 72B).

How an image becomes tokens (*native dynamic resolution*: no fixed image size, no tiling): the image
processor resizes each image so that both sides are multiples of 28 px and its area lies between
``min_pixels`` and ``max_pixels`` (``size={"shortest_edge", "longest_edge"}`` in the checkpoint's
preprocessor config), keeping the aspect ratio. It returns ``pixel_values`` as one flat list of patches for
the whole batch, ``[sum over images of T*H*W/14², 3*2*14*14]``, and ``image_grid_thw`` ``[n_images, 3]`` =
``(1, H/14, W/14)``. The chat template writes ``<|vision_start|><|image_pad|><|vision_end|>`` where the image
goes, and the processor repeats ``<|image_pad|>`` ``H/28 * W/28`` times (a 448x448 image: 256 tokens). The
model writes the merger's outputs over those tokens' embeddings.

Positions: the language model's rotary embedding has three streams (temporal, height, width), each owning a
section of the rotary frequencies (``rope_parameters["mrope_section"]``: 16, 24, 24 of 64). A text token has
the same position in all three; an image's tokens get ``(p, p + row, p + col)`` with ``p`` the position after
the text before it, and the text after the image resumes at ``p + max(rows, cols)``, so a prompt with an
image has fewer positions than tokens. The model computes these 3-D positions itself, from ``input_ids``,
``image_grid_thw``, ``attention_mask`` (left padding is skipped) and ``mm_token_type_ids`` (0 text, 1 image, 2
video, returned by the processor; without it the model silently falls back to 1-D positions), but **only
when ``position_ids`` is None**: 2-D ``position_ids`` would be copied to all three streams, silently giving image tokens text
positions. Hence ``positions="model"``: a single forward passes no ``position_ids``. ``generate`` computes
them once at prefill and keeps the per-row offset (``hf_model.model.rope_deltas``) for the decode steps,
whose new tokens are text.

``pixel_values``, ``image_grid_thw`` and ``mm_token_type_ids`` are therefore used at prefill only
(``decode_kwargs`` is empty); the decision position is the last prompt token, as everywhere. Qwen tokenizers
add no BOS token. A turn ends with ``<|im_end|>``; generation stops at ``<|im_end|>`` or ``<|endoftext|>``
(``generation_config.eos_token_id`` is a list), and ``<|endoftext|>`` is also the pad token.

Processor: ``Qwen2_5_VLProcessor`` bundles a video processor (``Qwen2VLVideoProcessor``) that needs
torchvision, and transformers builds it on every ``AutoProcessor.from_pretrained`` even for images only:
without torchvision a Hugging Face Qwen2.5-VL checkpoint's processor cannot be loaded. The image processor
itself falls back to ``Qwen2VLImageProcessorPil``. Without torchvision, build an image-only processor and pass
it as ``load_vlm(path, processor=...)``: transformers' ``PaddleOCRVLProcessor(image_processor=
AutoImageProcessor.from_pretrained(path), tokenizer=AutoTokenizer.from_pretrained(path), chat_template=...)``
gives the same ids and tensors for images and text (it needs ``tokenizer.image_token`` = ``<|image_pad|>``).
The tiny checkpoint (``model_adapters.testing.qwen2_5_vl``) saves exactly that.

TransformerLens' bridge has a Qwen2.5-VL adapter, but it declares torchvision a required library and
refuses to construct without it, so here the family runs on the ``hf`` backend only (``bridge=False``).

Templates:

* ``"chat"`` — the checkpoint's chat template (Qwen2.5-VL-*-Instruct): ``<|im_start|>system\\nYou are a
  helpful assistant.<|im_end|>\\n<|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>{prompt}
  <|im_end|>\\n<|im_start|>assistant\\n`` (the default system prompt is written when none is given).
* ``"raw"`` — the prompt unchanged; write ``<|vision_start|><|image_pad|><|vision_end|>`` into it yourself.
"""

from __future__ import annotations

from typing import Any

from model_adapters.registry import Family, chat_template, raw_template

QWEN_IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
"""What the Qwen-VL chat templates write for one image; the processor expands ``<|image_pad|>``."""


def image_only_processor(source: str) -> Any:
    """A Qwen-VL checkpoint's processor for images, built without torchvision: transformers'
    ``PaddleOCRVLProcessor`` wraps the same tokenizer and ``Qwen2VLImageProcessorPil`` and expands the image
    token as Qwen's processors do (Qwen's own always builds a video processor, which needs torchvision)."""
    from transformers import PaddleOCRVLProcessor

    return PaddleOCRVLProcessor.from_pretrained(str(source))


QWEN2_5_VL = Family(
    name="qwen2_5_vl",
    architectures=("Qwen2_5_VLForConditionalGeneration",),
    templates={
        "chat": chat_template(
            "chat",
            "the checkpoint's chat template ('<|im_start|>system\\nYou are a helpful assistant.<|im_end|>"
            "\\n<|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n')",
        ),
        "raw": raw_template(QWEN_IMAGE_PLACEHOLDER),
    },
    default_template="chat",
    positions="model",
    bridge=False,
    aliases=("qwen2.5-vl", "qwen2_5-vl"),
    image_only_processor=image_only_processor,
)
