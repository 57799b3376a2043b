"""LLaVA-OneVision (``LlavaOnevisionForConditionalGeneration``): SigLIP tower, MLP projector, Qwen2 LM, anyres-max.

The parts (``hf_model.model.*``, named as in LLaVA):

* ``vision_tower`` — a SigLIP ViT (384 px tiles, 14 px patches: 27x27 = 729 patch features per tile, no
  CLS token, so every feature is kept: ``vision_feature_select_strategy="full"``, last layer);
* ``multi_modal_projector`` — a two-layer MLP (GELU) from the tower's width to the language model's;
* ``language_model`` — a Qwen2 decoder (grouped-query attention, biased q/k/v projections; 0.5B, 7B or
  72B) with ``lm_head`` on top; ``image_newline`` is a learned vector of the language model's width.

How an image becomes tokens (LLaVA-NeXT's *anyres*, capped): the processor picks the best of
``image_grid_pinpoints`` (1x1 up to 6x6 tiles of 384 px) for the image's size, resizes and pads the image
to it and cuts it into tiles, plus one 384 px overview of the whole image. Every tile goes through SigLIP
and the projector; the tile features are stitched into one grid and the padding is cut away (unpadding);
when that grid is still larger than about 9 tiles' worth (``vision_aspect_ratio="anyres_max_9"``) it is
bilinearly shrunk, and ``image_newline`` ends every row. The overview's 729 features come first. The
prompt's single ``<image>`` is expanded by the processor into exactly that many tokens (729 up to a few
thousand, depending on the image's size). ``pixel_values`` ``[n_images, n_tiles, 3, 384, 384]``,
``image_sizes`` (per image, ``(height, width)``) and ``batch_num_images`` (images per prompt: a prompt with
several images gets no tiling, one overview each) are used at prefill only; decode steps see text tokens
and the KV cache, as in Hugging Face ``generate``. The decision position is the last prompt token.

Tokenizer: Qwen2's, with no BOS token; a turn ends with ``<|im_end|>``, the end-of-sequence token.

Processor: ``LlavaOnevisionProcessor`` also carries a video processor (``LlavaOnevisionVideoProcessor``)
that needs torchvision. In transformers 5.23 without torchvision it can neither be constructed
(``video_processor=None`` fails the class check) nor loaded by ``AutoProcessor`` (which builds the video
processor even for images only). ``image_only_processor(path)`` loads a checkpoint's processor without it:
the same class and code for images and text, so pass ``load_vlm(path, processor=image_only_processor(
path))``. The image processor itself falls back to ``LlavaOnevisionImageProcessorPil``. The tiny checkpoint
(``model_adapters.testing.llava_onevision``) saves an ``AutoProcessor``-loadable stand-in instead.

TransformerLens' bridge has a LLaVA-OneVision adapter and wraps it here (``bridge=True``).

Templates:

* ``"chat"`` — the checkpoint's chat template (ChatML; llava-hf/llava-onevision-qwen2-*-ov-hf):
  ``<|im_start|>user\\n<image>\\n{prompt}<|im_end|>\\n<|im_start|>assistant\\n`` (images first in a turn,
  then ``\\n`` + the text). No system prompt is written. Revisions of the llava-hf template differ in
  whitespace (``' '`` or ``'\\n'`` after the role, a newline after ``<|im_end|>`` or not); the checkpoint's
  own is what is rendered.
* ``"qwen_1_5"`` — the original LLaVA-NeXT repository's ``conv_qwen_1_5`` conversation, which the
  OneVision models were trained and evaluated with: the same, after
  ``<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n``.
* ``"raw"`` — the prompt unchanged; write ``<image>`` into it yourself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_adapters.registry import Family, Template, chat_template, raw_template

QWEN_1_5_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def _render_qwen_1_5(prompt: str, has_image: bool, processor: Any) -> str:
    image = f"{processor.image_token}\n" if has_image else ""
    return f"{QWEN_1_5_SYSTEM}<|im_start|>user\n{image}{prompt}<|im_end|>\n<|im_start|>assistant\n"


QWEN_1_5 = Template(
    "qwen_1_5",
    "original LLaVA-NeXT repo conv_qwen_1_5 (system 'You are a helpful assistant.', then ChatML turns)",
    _render_qwen_1_5,
)


def image_only_processor(source: str | Path, **kwargs: Any) -> Any:
    """A checkpoint's ``LlavaOnevisionProcessor`` without its video processor (which needs torchvision).

    Loads the image processor (``AutoImageProcessor``: the PIL one without torchvision), the tokenizer and
    the processor settings and chat template from ``source`` (a directory or hub id; ``kwargs`` go to each
    ``from_pretrained``) and runs ``LlavaOnevisionProcessor``'s own constructor with ``video_processor=None``,
    skipping only the class check of that one argument (the check is what needs torchvision). The result
    is a real ``LlavaOnevisionProcessor``: images and text go through its own code; passing videos fails.
    """
    from transformers import AutoImageProcessor, AutoTokenizer, LlavaOnevisionProcessor

    class _WithoutVideo(LlavaOnevisionProcessor):  # type: ignore[misc]
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    settings, _ = LlavaOnevisionProcessor.get_processor_dict(source, **kwargs)
    parts = [
        AutoImageProcessor.from_pretrained(source, **kwargs),
        AutoTokenizer.from_pretrained(source, **kwargs),
        None,
    ]
    processor = _WithoutVideo.from_args_and_dict(parts, settings)
    processor.__class__ = LlavaOnevisionProcessor
    return processor


LLAVA_ONEVISION = Family(
    name="llava_onevision",
    architectures=("LlavaOnevisionForConditionalGeneration",),
    templates={
        "chat": chat_template(
            "chat",
            "the checkpoint's chat template ('<|im_start|>user\\n<image>\\n...<|im_end|>\\n"
            "<|im_start|>assistant\\n')",
        ),
        "qwen_1_5": QWEN_1_5,
        "raw": raw_template("<image>"),
    },
    default_template="chat",
    bridge=True,
    aliases=("llava-onevision", "llava-ov"),
    image_only_processor=image_only_processor,
)
