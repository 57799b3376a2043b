"""Vision-language models and language models behind TransformerLens hook names.

``load_vlm`` (also ``load_model``) wraps a Hugging Face vision-language model or language model (hub id,
local directory, GGUF file, a real model by name, or an in-memory model) in a ``HookedVLM``: the one surface
sahs_lens uses. Registered families are listed by ``supported_families()``; any causal language model and
any vision-language model with standard attention also load, found by structure.
"""

import logging as _logging

from model_adapters.base import Generation, HookedVLM, VLMConfig, VLMInputs
from model_adapters.families import family_for, register_family, supported_families
from model_adapters.hook_names import HOOK_Z, hook_z_name
from model_adapters.identity import IDENTITY_FIELDS, check_identity, identity_mismatches
from model_adapters.images import open_image
from model_adapters.loading import checkpoint_fingerprint, hf_identity, load_model, load_vlm
from model_adapters.real_models import REAL_MODELS
from model_adapters.registry import Family, Template
from model_adapters.surface import VLM

__all__ = [
    "VLM",
    "HOOK_Z",
    "IDENTITY_FIELDS",
    "check_identity",
    "hf_identity",
    "hook_z_name",
    "identity_mismatches",
    "open_image",
    "Family",
    "Generation",
    "HookedVLM",
    "Template",
    "VLMConfig",
    "VLMInputs",
    "checkpoint_fingerprint",
    "family_for",
    "load_model",
    "load_vlm",
    "REAL_MODELS",
    "register_family",
    "supported_families",
]


class _KeepTheFallbackDropTheAdvice(_logging.Filter):
    """Without torchvision, transformers falls back to its PIL image processors and advises installing
    torchvision. On CPU installs that advice is wrong here (the registry's torchvision wheel breaks the
    pinned torch, and the PIL processors give the same pixel values: the parity tests load through them),
    so the fallback stays and the advice is not printed."""

    def filter(self, record: _logging.LogRecord) -> bool:
        return "requires torchvision (not installed); falling back to" not in record.getMessage()


_logging.getLogger("transformers.utils.import_utils").addFilter(_KeepTheFallbackDropTheAdvice())
