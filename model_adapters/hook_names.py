"""The hook names model_adapters promises: TransformerLens' names, spelled in one place.

``blocks.{layer}.attn.hook_z`` is each attention layer's per-head output before the output projection,
``[batch, pos, head_index, d_head]``: what the SAHs method reads (collection, the guard) and writes
(ablation, patching). Everything that names that hook builds the name here.

>>> hook_z_name(3)
'blocks.3.attn.hook_z'
"""

from __future__ import annotations

HOOK_Z = "blocks.{layer}.attn.hook_z"
"""The per-head attention output, as a template with a ``{layer}`` field (recorded in provenance)."""


def hook_z_name(layer: int) -> str:
    """``blocks.{layer}.attn.hook_z``: the per-head output of attention layer ``layer``."""
    return HOOK_Z.format(layer=int(layer))
