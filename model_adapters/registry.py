"""What a model family is: its prompt templates, how it takes images, where its attention layers live.

A *family* is everything that differs between vision-language model lines (LLaVA, LLaVA-NeXT, Gemma 3,
Idefics3): the Hugging Face architecture names it answers to, the prompt templates it knows, how a batch of
images is handed to its processor, and where its language model's attention output projections live (used
by tests and by the Hugging Face-only guard). Everything else is shared in ``base.HookedVLM``.

This module holds the types (``Family``, ``Template``) and the template helpers every family shares. Each
family is one module (``llava.py``, ...) that builds a ``Family``; ``families.py`` is the registry that
collects them and looks one up by architecture or family name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

ImageBatch = Sequence["Image.Image | None"]


@dataclass(frozen=True)
class Template:
    """A named prompt template.

    ``render(prompt, has_image, processor)`` returns the full text fed to the processor, ending with the
    assistant prefix so that the last position is the one whose logits give the first generated token.
    """

    name: str
    description: str
    render: Callable[[str, bool, Any], str]
    control_tokens_in_prompt: bool = False
    """True when the prompt is conversation text the caller wrote, control tokens included (``raw``):
    those are then read as control tokens. Otherwise user text is defused (``model_adapters.text_safety``)."""


def chat_template(name: str = "chat", description: str | None = None) -> Template:
    """The checkpoint's own chat template (``processor.apply_chat_template``), one user turn."""

    def render(prompt: str, has_image: bool, processor: Any) -> str:
        content: list[dict[str, str]] = [{"type": "image"}] if has_image else []
        content.append({"type": "text", "text": prompt})
        messages = [{"role": "user", "content": content}]
        text = str(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        return strip_template_bos(text, processor.tokenizer)

    return Template(name, description or "the checkpoint's own chat template (one user turn)", render)


def strip_template_bos(text: str, tokenizer: Any) -> str:
    """Drop a BOS token that the chat template wrote when the tokenizer adds one itself.

    Some chat templates (Gemma 3, Idefics3) begin with the BOS token, and their tokenizers add one too, so
    tokenizing the rendered text naively gives two BOS tokens. Hugging Face's ``apply_chat_template(...,
    tokenize=True)`` avoids that by tokenizing without special tokens when the text starts with BOS; dropping
    the template's copy and letting the tokenizer add its own gives the same ids.
    """
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or not text.startswith(bos):
        return text
    ids = tokenizer("x")["input_ids"]
    return text[len(bos) :] if ids and ids[0] == tokenizer.bos_token_id else text


def raw_template(image_token_hint: str) -> Template:
    """The prompt as given, with no formatting: for users who write their own conversation text."""

    def render(prompt: str, has_image: bool, processor: Any) -> str:
        token = getattr(processor, "image_token", None)
        if has_image and (token is None or token not in prompt):
            raise ValueError(
                "the 'raw' template passes the prompt through unchanged, so it cannot place an image; "
                f"write the image token ({image_token_hint}) into the prompt where the image goes, "
                "or use the family's chat template"
            )
        return prompt

    return Template(
        "raw",
        "the prompt exactly as given (write the image token yourself)",
        render,
        control_tokens_in_prompt=True,
    )


def default_processor_images(images: ImageBatch) -> dict[str, Any]:
    """LLaVA-style processors take a flat list of the images that are present, in prompt order."""
    present = [im for im in images if im is not None]
    return {"images": present} if present else {}


def per_prompt_processor_images(images: ImageBatch) -> dict[str, Any]:
    """Gemma 3 / Idefics3-style processors take one list of images per prompt: ``[[image], [], [image]]``."""
    if all(im is None for im in images):
        return {}
    return {"images": [[im] if im is not None else [] for im in images]}


@dataclass(frozen=True)
class Family:
    """How to wrap one line of vision-language models.

    Attributes:
        name: short family name (``"llava"``).
        architectures: Hugging Face ``config.architectures`` names this family handles.
        templates: named prompt templates; ``default_template`` is used when none is asked for.
        processor_images: turns one image-or-None per prompt into the processor's ``images=`` argument.
        decode_kwargs: model kwargs (from the processor) that must also be passed on decode steps;
            everything else (pixel values, image sizes) is used at prefill only, as Hugging Face does.
        positions: ``"mask"``: a single forward gets ``position_ids`` counted over real tokens (what Hugging
            Face ``generate`` gives a left-padded prefill); ``"model"``: none are passed and the model
            computes its own (Qwen's 3-D mRoPE must: 2-D ids would give image tokens text positions).
        bridge: TransformerLens' bridge can wrap this family (``load_vlm(..., backend="bridge")``).
        encode: ``(processor, texts, images) -> processor outputs`` for families whose processor cannot
            encode the batch itself (PaliGemma's refuses prompts without an image); default: the processor.
        image_only_processor: ``checkpoint -> processor`` for images only, for families whose own
            processor needs torchvision (its video processor); ``load_vlm`` uses it when that is missing.
        takes_images: False for language models (``model_adapters.language_models``): ``prepare`` refuses
            an image with a clear error instead of handing it to a tokenizer.

    Where the language model's attention is is found by structure (``model_adapters.structure``).
    """

    name: str
    architectures: tuple[str, ...]
    templates: dict[str, Template]
    default_template: str
    processor_images: Callable[[ImageBatch], dict[str, Any]] = default_processor_images
    decode_kwargs: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default_factory=tuple)
    positions: Literal["mask", "model"] = "mask"
    bridge: bool = False
    image_only_processor: Callable[[str], Any] | None = None
    encode: Callable[[Any, list[str], list[Image.Image | None]], dict[str, Any]] | None = None
    takes_images: bool = True

    def template(self, name: str | None) -> Template:
        if name is None:
            return self.templates[self.default_template]
        if name not in self.templates:
            raise ValueError(
                f"unknown template {name!r} for the {self.name} family; choose one of "
                f"{', '.join(sorted(self.templates))}"
            )
        return self.templates[name]
