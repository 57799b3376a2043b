"""Models with no hand-written family: every Hugging Face language model, and unknown vision-language models.

The SAHs method needs one thing of a model: decoder layers whose self-attention ends in ``o_proj``, the
input of which is every head's output (``hook_z``; ``model_adapters.structure``). That is true of almost
every Hugging Face language model (Llama, Qwen2/3, Gemma 2/3, Mistral, Phi-3, SmolLM, ...) and of the
language model inside almost every vision-language model, so neither needs a family written for it:

* a **language model** (an ``AutoModelForCausalLM``) gets ``LANGUAGE_MODEL``: its tokenizer's own chat
  template with the prompt as plain string content (what text chat templates expect), or ``raw``; its
  tokenizer stands behind the processor interface (``TextProcessor``); an image given to it is refused;
* an **unknown vision-language model** (an ``AutoModelForImageTextToText`` whose architecture no family
  names, e.g. Idefics2) gets ``generic_vlm_family``: its processor's chat template, left padding, one list
  of images per prompt (the form every recent processor takes), with a warning naming what was assumed.

``family_kind`` tells the two apart from the config's ``model_type`` (or, for an in-memory model whose
``config.architectures`` is empty, from its class), using Hugging Face's own auto-class tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from model_adapters.registry import (
    Family,
    chat_template,
    per_prompt_processor_images,
    raw_template,
)

__all__ = ["LANGUAGE_MODEL", "TextProcessor", "family_kind", "generic_vlm_family", "refuse_images"]


class TextProcessor:
    """A language model's tokenizer behind the processor interface ``HookedVLM`` uses.

    ``processor(text=[...], return_tensors="pt", padding=True)`` tokenizes, ``apply_chat_template`` renders
    a conversation whose content may be a list of ``{"type": "text"}`` items (as vision processors take it)
    as the plain string content text chat templates expect, and ``tokenizer`` is the tokenizer itself.
    """

    image_token: str | None = None

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @property
    def chat_template(self) -> str | None:
        return getattr(self.tokenizer, "chat_template", None)

    def __call__(self, text: Sequence[str], images: Any = None, **kwargs: Any) -> Any:
        if images:
            raise ValueError("a language model's tokenizer takes no images; pass images=None")
        return self.tokenizer(list(text), **kwargs)

    def apply_chat_template(self, conversation: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        """The tokenizer's chat template over ``conversation`` with every content flattened to a string."""
        flat = [{**message, "content": _text_of(message["content"])} for message in conversation]
        return self.tokenizer.apply_chat_template(flat, **kwargs)

    def save_pretrained(self, directory: Any) -> Any:
        return self.tokenizer.save_pretrained(directory)

    def __repr__(self) -> str:
        return f"TextProcessor({type(self.tokenizer).__name__}, chat template: {bool(self.chat_template)})"


def refuse_images(images: Sequence[Any], model_name: str) -> None:
    """A clear error, before any work, when a language model is given an image."""
    given = next((i for i, image in enumerate(images) if image is not None), None)
    if given is not None:
        raise ValueError(
            f"got an image for prompt {given}, but {model_name!r} is a language model: it reads text only; "
            "pass images=None (or None for every prompt), or load a vision-language model"
        )


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for item in content:
        if item.get("type") != "text":
            raise ValueError(f"a language model's chat takes text only; got a {item.get('type')!r} item")
        parts.append(str(item["text"]))
    return "".join(parts)


LANGUAGE_MODEL = Family(
    name="language_model",
    architectures=(),
    templates={
        "chat": chat_template("chat", "the tokenizer's own chat template, one user turn (string content)"),
        "raw": raw_template("(a language model takes no image)"),
    },
    default_template="chat",
    processor_images=lambda images: {},
    takes_images=False,
)
"""Every Hugging Face causal language model whose decoder layers end their attention in ``o_proj``."""


def generic_vlm_family(architecture: str) -> Family:
    """A family for a vision-language model of ``architecture`` that no family module describes."""
    return Family(
        name="generic_vlm",
        architectures=(architecture,),
        templates={
            "chat": chat_template("chat", "the processor's own chat template (one user turn, image first)"),
            "raw": raw_template("the processor's image token"),
        },
        default_template="chat",
        processor_images=per_prompt_processor_images,
    )


Kind = Literal["language_model", "vision_language_model"]


def family_kind(config: Any, class_name: str | None = None) -> Kind | None:
    """Whether a checkpoint is a language model or a vision-language model, by Hugging Face's auto tables:
    the in-memory model's class when given, else ``config.model_type``; ``None`` when neither tells."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    vision, causal = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if class_name is not None:
        if class_name in set(vision.values()):
            return "vision_language_model"
        if class_name in set(causal.values()) or class_name.endswith("ForCausalLM"):
            return "language_model"
        if class_name.endswith(("ForConditionalGeneration", "ForImageTextToText")):
            return "vision_language_model"
    model_type = getattr(config, "model_type", None)
    if model_type in vision:  # some types (gemma3, mllama) are in both tables: the multimodal class wins
        return "vision_language_model"
    if model_type in causal:
        return "language_model"
    return None
