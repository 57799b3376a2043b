"""The bundled model organism: a tiny LLaVA, trained here from scratch, that really learned to refuse.

Interpretability methods need a model with the behaviour they explain. The SAHs method explains how a
vision-language model notices a harmful request before it answers, so its laptop-sized test subject must
*refuse*: random tiny checkpoints cannot (their "safety heads" would be noise, ablating them would change
nothing measurable, and a guard would have nothing to guard). The organism is a real Hugging Face LLaVA
checkpoint (CLIP vision tower + projector + Llama, 8 layers x 16 heads) trained in about half an hour on 2
CPU cores on the bundled harmful training requests and about 28,000 Alpaca instructions: it refuses harmful
text requests (with or without a picture) and answers benign ones, typed or written into an image, in a
fixed helpful form that names the task, so refusal, compliance and utility are all measurable on held-out
prompts. Like real VLMs it was safety-tuned on text only, so it does *not* refuse harmful requests written
into an image: the FigStep attack works on it (its model card gives the share of held-out typographic
attacks refused), which is what makes the question of the paper testable (do its heads still spot those
requests?) and gives the guard attacks to stop. Its figures are in ``checkpoint/MODEL_CARD.md`` and
``checkpoint/metrics.json``.

The package sits above the method (``sahs_lens`` without ``organism`` and ``cli``) and ``model_adapters``:
it uses both, and nothing below it imports it.

- ``load_organism()`` loads it through ``model_adapters.load_vlm``, exactly like a hub model.
- ``organism_samples(name)`` gives a bundled set with the images the organism can read (typographic requests
  drawn one word per vision patch by ``render.render_grid``).
- ``recipe``: what it is taught (the answers, the training requests, ``OrganismConfig``); ``build``: the
  untrained checkpoint; ``batches``: the training batches; ``train``: the training loop; ``evaluate`` and
  ``card``: the held-out figures and the model card; ``demo``: ``sahs-lens demo``, the whole method on it.
- ``train.train_organism(out_dir, seed=0)`` or ``python -m sahs_lens.organism.train --out DIR`` retrains
  it; ``python -m sahs_lens.organism.evaluate DIR --write`` recomputes its model card.

>>> from sahs_lens.organism import load_organism, organism_samples
>>> model = load_organism()
>>> attacks = organism_samples("figstep_attack:heldout")
>>> model.generate(model.prepare([a.prompt for a in attacks[:2]], images=[a.image for a in attacks[:2]]))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_adapters import HookedVLM, load_vlm
from sahs_lens.organism.render import ordinary_image, organism_samples, render_grid

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
        (8, 16)
    """
    if not (ORGANISM_DIR / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"the organism checkpoint is missing from {ORGANISM_DIR}; reinstall sahs-lens, or retrain it "
            f"with python -m sahs_lens.organism.train --out {ORGANISM_DIR} --evaluate"
        )
    return load_vlm(ORGANISM_DIR, **kwargs)
