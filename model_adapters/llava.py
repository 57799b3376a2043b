"""LLaVA-1.5 (``LlavaForConditionalGeneration``): a CLIP vision tower, a projector, a Llama/Vicuna LM.

Two prompt templates matter for the SAHs paper:

* ``"llava-hf"`` — the checkpoint's chat template, as shipped by the llava-hf conversions
  (``USER: <image>\\n{prompt} ASSISTANT:``, no system prompt).
* ``"vicuna_v1"`` — the original LLaVA repository's ``conv_vicuna_v1`` conversation, which the paper's code
  used: a system prompt, then ``USER: <image>\\n{prompt} ASSISTANT:``.

Both end with the assistant prefix, so the last prompt position is the decision position whose logits give
the first generated token.
"""

from __future__ import annotations

from typing import Any

from model_adapters.registry import Family, Template, chat_template, raw_template

VICUNA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


def _render_vicuna_v1(prompt: str, has_image: bool, processor: Any) -> str:
    image = f"{processor.image_token}\n" if has_image else ""
    return f"{VICUNA_V1_SYSTEM} USER: {image}{prompt} ASSISTANT:"


VICUNA_V1 = Template(
    "vicuna_v1",
    "original LLaVA repo conv_vicuna_v1 (system prompt, 'USER: <image>\\n... ASSISTANT:'), used by the paper",
    _render_vicuna_v1,
)


LLAVA = Family(
    name="llava",
    architectures=("LlavaForConditionalGeneration",),
    templates={
        "llava-hf": chat_template("llava-hf", "the llava-hf checkpoint's chat template (no system prompt)"),
        "vicuna_v1": VICUNA_V1,
        "raw": raw_template("<image>"),
    },
    default_template="llava-hf",
    bridge=True,
    aliases=("llava-1.5",),
)
