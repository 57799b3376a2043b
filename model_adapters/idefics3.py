"""Idefics3 (``Idefics3ForConditionalGeneration``): SigLIP tower, pixel-shuffle connector, Llama LM.

The parts (``hf_model.model.*``; note the names differ from LLaVA's):

* ``vision_model`` — a SigLIP ViT (364 px tiles, 14 px patches: 26x26 patch features per tile) that takes a
  ``pixel_attention_mask`` so padded pixels are ignored;
* ``connector`` — *pixel shuffle*: every ``scale_factor`` x ``scale_factor`` (2x2 or 3x3) block of neighbouring
  patch features is folded into one wider vector, then a linear map brings it to the language model's
  width; a 364 px tile becomes ``image_seq_len`` tokens (169 for Idefics3-8B: 26x26 patches / 2x2);
* ``text_model`` — a Llama-shaped decoder (Llama 3.1 8B in Idefics3-8B, a small one in
  ibm-granite/granite-docling-258M) with ``lm_head``. SmolVLM shares this design but is its own architecture
  (``SmolVLMForConditionalGeneration``), which the TransformerLens bridge does not support.

How an image becomes tokens: with image splitting on, the processor resizes the image (longest side up
to 4 x 364 px), cuts it into a grid of 364 px tiles and adds one downscaled global view. The template's
single ``<image>`` is expanded to, per tile, ``<fake_token_around_image><row_i_col_j>`` followed by
``image_seq_len`` x ``<image>`` (a newline after each grid row), and then ``<fake_token_around_image>
<global-img>`` + ``image_seq_len`` x ``<image>`` + ``<fake_token_around_image>`` for the global view. The
model writes one connector output over each run of ``<image>`` tokens. ``pixel_values`` is
``[batch, max_tiles, 3, H, W]`` (rows with fewer tiles, or no image, are padded with all-zero tiles, which
the model skips) and ``pixel_attention_mask`` ``[batch, max_tiles, H, W]``; both are used at prefill only.

The processor takes images as one list per prompt (``[[image], [], ...]``). A turn ends with
``<end_of_utterance>``; generation stops at the ids in the checkpoint's ``generation_config.eos_token_id``
(a list is fine), so make sure that list holds it.

Templates:

* ``"chat"`` — the checkpoint's chat template: ``<|begin_of_text|>User:<image>{prompt}<end_of_utterance>\\n
  Assistant:`` (Idefics3-8B-Llama3). The template writes the BOS token itself; it is tokenized once.
* ``"raw"`` — the prompt unchanged; write ``<image>`` into it yourself.
"""

from __future__ import annotations

from model_adapters.registry import (
    Family,
    chat_template,
    per_prompt_processor_images,
    raw_template,
)

IDEFICS3 = Family(
    name="idefics3",
    architectures=("Idefics3ForConditionalGeneration",),
    templates={
        "chat": chat_template(
            "chat", "the checkpoint's chat template ('User:<image>...<end_of_utterance>\\nAssistant:')"
        ),
        "raw": raw_template("<image>"),
    },
    default_template="chat",
    bridge=True,
    processor_images=per_prompt_processor_images,
    aliases=("idefics-3",),
)
