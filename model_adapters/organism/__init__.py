"""The bundled model organism: a tiny LLaVA, trained here from scratch, that really learned to refuse.

Interpretability methods need a model with the behaviour they explain. The SAHs method explains how a
vision-language model notices a harmful request before it answers, so its laptop-sized test subject must
*refuse*: random tiny checkpoints cannot (their "safety heads" would be noise, ablating them would change
nothing measurable, and a guard would have nothing to guard). The organism is a real Hugging Face LLaVA
checkpoint (CLIP vision tower + projector + Llama, 4 layers x 8 heads) trained in about 12 minutes on 2 CPU
cores on the bundled training requests: it refuses harmful requests, whether typed or written into an
image, and answers benign ones in a fixed helpful form that names the task, so refusal, compliance and
utility are all measurable on held-out prompts. Its figures are in ``checkpoint/MODEL_CARD.md`` and
``checkpoint/metrics.json``.

- ``load_organism()`` loads it through ``model_adapters.load_vlm``, exactly like a hub model.
- ``organism_samples(name)`` gives a bundled set with the images the organism can read (typographic requests
  drawn one word per vision patch by ``render.render_grid``).
- ``train.train_organism(out_dir, seed=0)`` or ``python -m model_adapters.organism.train --out DIR`` retrains
  it; ``python -m model_adapters.organism.evaluate DIR --write`` recomputes its model card.

>>> from model_adapters.organism import load_organism, organism_samples
>>> model = load_organism()
>>> attacks = organism_samples("figstep_attack:heldout")
>>> model.generate(model.prepare([a.prompt for a in attacks[:2]], images=[a.image for a in attacks[:2]]))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_adapters.base import HookedVLM
from model_adapters.organism.render import ordinary_image, organism_samples, render_grid

__all__ = ["ORGANISM_DIR", "load_organism", "ordinary_image", "organism_samples", "render_grid"]

ORGANISM_DIR: Path = Path(__file__).with_name("checkpoint")
"""The shipped checkpoint directory (config.json, model.safetensors, tokenizer, processor, model card)."""


def load_organism(**kwargs: Any) -> HookedVLM:
    """Load the shipped organism with ``model_adapters.load_vlm(ORGANISM_DIR, **kwargs)``.

    Keyword arguments are ``load_vlm`` 's (``device``, ``dtype``, ``template``); the default is float32 on
    the CPU with the llava-hf template it was trained with. Works offline: nothing is downloaded.

    Example:
        >>> model = load_organism()
        >>> model.cfg.n_layers, model.cfg.n_heads
        (4, 8)
    """
    from model_adapters.loading import load_vlm

    if not (ORGANISM_DIR / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the organism checkpoint is missing from {ORGANISM_DIR}; reinstall sahs-lens, or retrain it "
            f"with python -m model_adapters.organism.train --out {ORGANISM_DIR} --evaluate"
        )
    return load_vlm(ORGANISM_DIR, **kwargs)
