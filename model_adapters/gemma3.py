"""Gemma 3 multimodal (``Gemma3ForConditionalGeneration``): SigLIP tower, pooled projector, Gemma 3 LM.

The parts (``hf_model.model.*``):

* ``vision_tower`` — a SigLIP ViT (896 px images, 14 px patches: 64x64 patch features) with no pooling head;
* ``multi_modal_projector`` — average-pools the patch grid down to ``mm_tokens_per_image`` (256) soft tokens,
  applies a ``(1 + w)`` RMSNorm and one linear map into the language model's width;
* ``language_model`` — a Gemma 3 text decoder (grouped-query attention; RMSNorms that multiply by ``1 + w``;
  per-head q/k norms; queries scaled by ``query_pre_attn_scalar ** -0.5`` rather than ``d_head ** -0.5``;
  embeddings scaled by ``sqrt(d_model)``; five sliding-window layers (1,024 tokens) for every global one);
  ``lm_head`` is tied to the token embedding.

How an image becomes tokens: the chat template writes ``<start_of_image>`` where the image goes; the
processor expands it to ``\\n\\n<start_of_image>`` + 256 x ``<image_soft_token>`` + ``<end_of_image>\\n\\n`` and
returns ``token_type_ids`` (1 on soft tokens). The model writes the projected image features over the soft
tokens' embeddings, and uses ``token_type_ids`` to let the tokens of one image attend to each other
bidirectionally (the rest of the mask stays causal, and sliding-window layers keep their window). Hugging
Face passes ``token_type_ids`` at prefill only — on decode steps the new token is text and the plain causal
mask applies — so ``decode_kwargs`` is empty, like ``pixel_values``.

The processor takes images as one list per prompt (``[[image], [], ...]``), not the flat list LLaVA takes.
Generation stops at ``<eos>`` or ``<end_of_turn>`` (``generation_config.eos_token_id`` is a list).

Templates:

* ``"chat"`` — the checkpoint's chat template: ``<bos><start_of_turn>user\\n<start_of_image>{prompt}
  <end_of_turn>\\n<start_of_turn>model\\n`` (the template writes ``<bos>`` itself; it is tokenized once).
* ``"raw"`` — the prompt unchanged; write ``<start_of_image>`` into it yourself.
"""

from __future__ import annotations

from model_adapters.registry import (
    Family,
    chat_template,
    per_prompt_processor_images,
    raw_template,
)

GEMMA3 = Family(
    name="gemma3",
    architectures=("Gemma3ForConditionalGeneration",),
    templates={
        "chat": chat_template(
            "chat",
            "the checkpoint's chat template ('<start_of_turn>user\\n...<end_of_turn>"
            "\\n<start_of_turn>model\\n')",
        ),
        "raw": raw_template("<start_of_image>"),
    },
    default_template="chat",
    bridge=True,
    processor_images=per_prompt_processor_images,
    aliases=("gemma-3",),
)
