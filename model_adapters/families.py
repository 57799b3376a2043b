"""The family registry: which Hugging Face architectures model_adapters can wrap, and with which family.

Each built-in family module (``llava.py``, ``llava_next.py``, ``gemma3.py``, ``idefics3.py``) builds one
``Family``; this module collects them, and ``register_family`` adds a user's own at run time.
``family_for`` looks one up by Hugging Face architecture or family name, and lists the supported ones when
it cannot. ``resolve_family`` is what loading uses: a registered family when one names the architecture,
else the generic language-model or vision-language family (``model_adapters.language_models``), found by
structure. Nothing here is imported by the family modules, so the registry sits above them (no cycles).
"""

from __future__ import annotations

from typing import Any

from model_adapters.gemma3 import GEMMA3
from model_adapters.idefics3 import IDEFICS3
from model_adapters.internvl import INTERNVL
from model_adapters.language_models import LANGUAGE_MODEL, family_kind, generic_vlm_family
from model_adapters.llava import LLAVA
from model_adapters.llava_next import LLAVA_NEXT
from model_adapters.llava_onevision import LLAVA_ONEVISION
from model_adapters.paligemma import PALIGEMMA
from model_adapters.qwen2_5_vl import QWEN2_5_VL
from model_adapters.qwen3_vl import QWEN3_VL
from model_adapters.registry import Family
from model_adapters.smolvlm import SMOLVLM

_FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        LLAVA,
        LLAVA_NEXT,
        GEMMA3,
        IDEFICS3,
        INTERNVL,
        SMOLVLM,
        QWEN2_5_VL,
        QWEN3_VL,
        LLAVA_ONEVISION,
        PALIGEMMA,
        LANGUAGE_MODEL,
    )
}


def register_family(family: Family) -> Family:
    """Add (or replace) a family in the registry, e.g. for an architecture of your own; returns it."""
    if not isinstance(family, Family):
        raise TypeError(f"register_family takes a model_adapters.Family; got {type(family).__name__}")
    _FAMILIES[family.name] = family
    return family


def supported_families() -> dict[str, tuple[str, ...]]:
    """``{family name: architectures}`` for every registered family."""
    return {name: fam.architectures for name, fam in sorted(_FAMILIES.items())}


def family_for(architecture_or_name: str) -> Family:
    """Look a family up by Hugging Face architecture (``LlavaForConditionalGeneration``) or family name."""
    for fam in _FAMILIES.values():
        if (
            architecture_or_name == fam.name
            or architecture_or_name in fam.architectures
            or architecture_or_name in fam.aliases
        ):
            return fam
    listing = "; ".join(f"{name} ({', '.join(archs)})" for name, archs in supported_families().items())
    raise ValueError(
        f"unsupported model family or architecture {architecture_or_name!r}; sahs_lens supports: {listing}, "
        "any Hugging Face causal language model (language_model) and, by structure, any "
        "AutoModelForImageTextToText whose language model ends its attention in o_proj (generic_vlm). "
        "A new family is one module in model_adapters/ that builds a Family, listed in families.py "
        "(or passed to register_family)"
    )


def resolve_family(config: Any, class_name: str | None = None) -> tuple[Family, str | None]:
    """The family of a checkpoint, and a one-line note when it was assumed rather than registered.

    ``config`` is the model's config, ``class_name`` the in-memory model's class (which decides when
    ``config.architectures`` is empty). A registered family naming the architecture wins; otherwise a
    language model gets ``language_model`` and a vision-language model ``generic_vlm``.
    """
    architectures = list(getattr(config, "architectures", None) or [])
    architecture = architectures[0] if architectures else class_name
    if architecture:
        for fam in _FAMILIES.values():
            if architecture in fam.architectures or architecture in fam.aliases:
                return fam, None
    kind = family_kind(config, architecture)
    if kind == "language_model":
        return LANGUAGE_MODEL, None
    if kind == "vision_language_model" and architecture:
        note = (
            f"{architecture} has no family in model_adapters; loading it as a generic vision-language model "
            "(its processor's chat template, left padding, one image list per prompt, attention found by "
            "structure); check model.prepare(...) against its processor, or register_family(...) a Family"
        )
        return generic_vlm_family(architecture), note
    named = architecture or getattr(config, "model_type", None) or "an unnamed model"
    family_for(named)  # raises, listing what is supported
    raise AssertionError("unreachable")
