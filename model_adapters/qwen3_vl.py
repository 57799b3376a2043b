"""Qwen3-VL (``Qwen3VLForConditionalGeneration``): ViT with DeepStack, 2x2 patch merger, Qwen3 LM, mRoPE.

The parts (``hf_model.model.*``):

* ``visual`` — a ViT (27 blocks, 1,152 wide in the 4B and 8B checkpoints; 16 px patches; LayerNorm, GELU
  MLP, full attention in every block) whose patch embedding is a 3-D convolution over ``temporal_patch_size`` = 2 frames (a still image
  is its own second frame). Positions are a learned 48x48 grid (``pos_embed``), bilinearly resampled to each
  image's patch grid, plus 2-D rotary positions. Its attention is ``attn.qkv`` / ``attn.proj``, so the
  structural search for ``self_attn.o_proj`` never mistakes it for the language model;
* ``visual.merger`` — the projector: a LayerNorm and a two-layer MLP over every 2x2 block of neighbouring
  patch features, into the language model's width: one language-model token per 32x32 px;
* ``visual.deepstack_merger_list`` — *DeepStack*: the outputs of vision blocks ``deepstack_visual_indexes``
  (8, 16, 24 in the 8B) go through mergers of their own and are **added to the language model's residual stream at
  the image tokens after decoder layers 0, 1 and 2** (``visual_pos_masks``). So the image reaches the early
  layers twice, at the input and between layers; on the ``hf`` backend ``blocks.{l}.hook_resid_post`` is
  the decoder layer's own output, before that addition (the next layer's input includes it);
* ``language_model`` — a Qwen3 decoder (grouped-query attention, ``head_dim`` set explicitly (128), per-head
  RMSNorms on queries and keys (``q_norm``/``k_norm``), no q/k/v bias, SwiGLU), with ``lm_head`` on top
  (tied to the embedding in the 2B and 4B checkpoints). The MoE variants are another architecture
  (``Qwen3VLMoeForConditionalGeneration``), not this family.

How an image becomes tokens (native dynamic resolution, no tiling): the image processor (the Qwen2-VL one,
with 16 px patches) resizes each image so that both sides are multiples of 32 px and its area lies between
the checkpoint's ``size={"shortest_edge", "longest_edge"}`` bounds, keeping the aspect ratio. It returns
``pixel_values`` as one flat list of patches for the whole batch, ``[sum over images of T*H*W/16², 3*2*16*16]``,
and ``image_grid_thw`` ``[n_images, 3]`` = ``(1, H/16, W/16)``. The chat template writes
``<|vision_start|><|image_pad|><|vision_end|>`` where the image goes; the processor repeats ``<|image_pad|>``
``H/32 * W/32`` times (a 512x512 image: 256 tokens), and the model writes the merger's outputs over them.

Positions: as in Qwen2.5-VL, the rotary embedding has three streams (temporal, height, width); text tokens
have equal positions in all three, an image's tokens ``(p, p + row, p + col)``, and the text after an image
resumes at ``p + max(rows, cols)``. Qwen3-VL *interleaves* the streams over the rotary frequencies (T, H, W,
T, H, W, ... with ``mrope_section`` 24, 20, 20 of 64) instead of giving each a contiguous block. The model
computes the 3-D positions from ``input_ids``, ``image_grid_thw``, ``attention_mask`` and
``mm_token_type_ids`` (0 text, 1 image, 2 video; the processor returns it, and the model raises if it is
missing when ``image_grid_thw`` is given), but **only when ``position_ids`` is None**: 2-D ``position_ids``
would give image tokens text positions. Hence ``positions="model"``: a single forward passes no
``position_ids``; ``generate`` computes them at prefill and keeps the per-row offset
(``hf_model.model.rope_deltas``) for the decode steps.

``pixel_values``, ``image_grid_thw`` and ``mm_token_type_ids`` are used at prefill only (``decode_kwargs`` is
empty): decode steps see text tokens, the KV cache and the cached offset; the decision position is the
last prompt token. Qwen tokenizers add no BOS token. A turn ends with ``<|im_end|>``; generation stops at
``<|im_end|>`` or ``<|endoftext|>`` (``generation_config.eos_token_id`` is a list; ``<|endoftext|>`` also pads).

Processor: ``Qwen3VLProcessor`` bundles a video processor (``Qwen3VLVideoProcessor``) that needs torchvision,
and transformers builds it on every ``AutoProcessor.from_pretrained`` even for images only: without
torchvision a Hugging Face Qwen3-VL checkpoint's processor cannot be loaded. The image processor falls back
to ``Qwen2VLImageProcessorPil``. Without torchvision, pass an image-only processor as ``load_vlm(path,
processor=...)``, as for Qwen2.5-VL (``model_adapters.qwen2_5_vl``); the tiny checkpoint
(``model_adapters.testing.qwen3_vl``) saves one.

TransformerLens' bridge has a Qwen3-VL adapter, but it declares torchvision a required library and refuses
to construct without it, so here the family runs on the ``hf`` backend only (``bridge=False``).

Templates:

* ``"chat"`` — the checkpoint's chat template (Qwen3-VL-*-Instruct): ``<|im_start|>user\\n<|vision_start|>
  <|image_pad|><|vision_end|>{prompt}<|im_end|>\\n<|im_start|>assistant\\n``; unlike Qwen2.5-VL there is no
  default system prompt (a system message is written only when given). The ``-Thinking`` checkpoints'
  template adds ``<think>\\n`` after the assistant prefix.
* ``"raw"`` — the prompt unchanged; write ``<|vision_start|><|image_pad|><|vision_end|>`` into it yourself.
"""

from __future__ import annotations

from model_adapters.qwen2_5_vl import QWEN_IMAGE_PLACEHOLDER, image_only_processor
from model_adapters.registry import Family, chat_template, raw_template

QWEN3_VL = Family(
    name="qwen3_vl",
    architectures=("Qwen3VLForConditionalGeneration",),
    templates={
        "chat": chat_template(
            "chat",
            "the checkpoint's chat template ('<|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n', "
            "no default system prompt)",
        ),
        "raw": raw_template(QWEN_IMAGE_PLACEHOLDER),
    },
    default_template="chat",
    positions="model",
    bridge=False,
    aliases=("qwen3-vl",),
    image_only_processor=image_only_processor,
)
