"""SmolVLM (``SmolVLMForConditionalGeneration``): Idefics3's design, small: SigLIP tower, pixel shuffle, SmolLM2.

The parts (``hf_model.model.*``, named as in Idefics3, ``model_adapters.idefics3``):

* ``vision_model`` — a SigLIP ViT (512 px tiles and 16 px patches in SmolVLM2: 32x32 patch features per
  tile; 384 px in the 256M/500M SmolVLM) that takes a ``pixel_attention_mask`` so padded pixels are ignored;
* ``connector`` — *pixel shuffle* with ``scale_factor`` 4 (Idefics3 uses 2-3): every 4x4 block of patch
  features is folded into one 16x wider vector and a linear map brings it to the language model's width, so
  a tile becomes ``image_seq_len`` tokens (64 in SmolVLM2: 32x32 / 4x4);
* ``text_model`` — a Llama-shaped SmolLM2 decoder (standard ``self_attn.o_proj``, 1-D RoPE) with
  ``lm_head``. TransformerLens' bridge supports Idefics3 but not SmolVLM, so this family runs on the ``hf``
  backend only.

How an image becomes tokens is Idefics3's: the processor resizes the image (longest side up to 4 tiles), cuts
it into a grid of tiles and adds one downscaled global view; the template's ``<image>`` becomes, per tile,
``<fake_token_around_image><row_i_col_j>`` + ``image_seq_len`` x ``<image>`` (a newline after each grid row),
then ``<fake_token_around_image><global-img>`` + ``image_seq_len`` x ``<image>`` + ``<fake_token_around_image>``.
``pixel_values`` ``[batch, max_tiles, 3, H, W]`` (rows with fewer tiles, or no image, padded with all-zero
tiles, which the model skips) and ``pixel_attention_mask`` ``[batch, max_tiles, H, W]`` are used at prefill
only. The processor takes images as one list per prompt (``[[image], [], ...]``). The tokenizer adds no BOS;
the chat template writes ``<|im_start|>`` itself. A turn ends with ``<end_of_utterance>``, the checkpoints'
end-of-sequence token.

SmolVLM's processor (``SmolVLMProcessor``) also holds a video processor, which transformers 5.x cannot build
or load without torchvision (and it needs ``num2words``), so ``AutoProcessor`` fails on a real SmolVLM
checkpoint there. For images, ``Idefics3Processor`` with the checkpoint's own ``SmolVLMImageProcessor`` gives
the same ids, pixel values and mask: ``image_only_processor`` loads one; pass it as ``load_vlm(...,
processor=...)``. The tiny test checkpoint is saved with it.

Templates:

* ``"chat"`` — the checkpoint's chat template: ``<|im_start|>User:<image>{prompt}<end_of_utterance>\\n
  Assistant:`` (SmolVLM2-*-Instruct).
* ``"raw"`` — the prompt unchanged; write ``<image>`` into it yourself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_adapters.registry import (
    Family,
    chat_template,
    per_prompt_processor_images,
    raw_template,
)


def image_only_processor(source: str | Path) -> Any:
    """A SmolVLM checkpoint's processor for images, built without torchvision.

    ``Idefics3Processor`` has no video processor; it reads the checkpoint's tokenizer, image processor (the
    PIL ``SmolVLMImageProcessorPil``), ``image_seq_len`` and chat template, and expands images exactly as
    ``SmolVLMProcessor`` does. Use it where ``AutoProcessor`` needs torchvision:
    ``load_vlm(path, processor=image_only_processor(path))``.
    """
    from transformers import Idefics3Processor

    return Idefics3Processor.from_pretrained(str(source))


SMOLVLM = Family(
    name="smolvlm",
    architectures=("SmolVLMForConditionalGeneration",),
    templates={
        "chat": chat_template(
            "chat",
            "the checkpoint's chat template ('<|im_start|>User:<image>...<end_of_utterance>\\nAssistant:')",
        ),
        "raw": raw_template("<image>"),
    },
    default_template="chat",
    processor_images=per_prompt_processor_images,
    aliases=("smolvlm2", "smol-vlm"),
    image_only_processor=image_only_processor,
)
