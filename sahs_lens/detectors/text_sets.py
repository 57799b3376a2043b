"""The default comparison on a language model: text sets that test words, sources and intent apart.

A language model reads no image, so the organism's typographic sets do not apply. What does apply is the
question the "False Sense of Security" study (arXiv 2509.03888) asks of every probe: does it read the
request's *intent*, or only words that happen to differ between the harmful and the benign training sets?
Three kinds of test set answer it, all from the bundled sets (``sahs_lens.data.bundled``), never from a
public evaluation benchmark's test data:

- ``text``: held-out harmful requests (AdvBench, HarmBench val, JailbreakBench, SafeBench) against held-out
  benign Alpaca instructions: in distribution;
- ``source:S``: source S's held-out harmful requests against the benign ones, tested from ``text`` (S was
  in training) and from ``text-without-S`` (leave one source out: does it transfer to an unseen source?);
- ``contrast``: the same held-out harmful requests against ``benign_overlap:heldout``, benign instructions
  that use harmful-sounding words (chosen by vocabulary overlap with the harmful training set). A detector
  that matches words flags these; one that reads intent does not. The lexical control's AUROC here says
  how far words alone go.

>>> trains, tests, pairs = language_model_sets(n_train=20, n_benign_test=10, n_contrast=10, n_harmful_test=12)
>>> sorted(tests)[:2], pairs["text"][:2]
(['contrast', 'source:advbench'], ['text', 'contrast'])
"""

from __future__ import annotations

import numpy as np

from sahs_lens.data import Sample, load_bundled

__all__ = ["HARMFUL_SOURCES", "add_leave_one_source_out", "language_model_sets", "seeded_draw"]

HARMFUL_SOURCES = ("advbench", "harmbench", "jailbreakbench", "safebench")


def seeded_draw(samples: list[Sample], n: int | None, seed: int) -> list[Sample]:
    """``n`` samples drawn with a seeded permutation of the whole set, kept in the set's order: a set sorted
    by source gives a mix of every source in about its share of the set, not its first source's rows."""
    if n is None or n >= len(samples):
        return list(samples)
    keep = sorted(np.random.default_rng(seed).permutation(len(samples))[:n].tolist())
    return [samples[i] for i in keep]


def language_model_sets(
    *,
    n_train: int = 300,
    n_benign_test: int = 200,
    n_contrast: int = 200,
    n_harmful_test: int | None = None,
    seed: int = 0,
) -> tuple[dict[str, list[Sample]], dict[str, list[Sample]], dict[str, list[str]]]:
    """``(trains, tests, pairs)`` of the default comparison on a language model (module docstring).

    Sizes: ``n_train`` harmful and benign training requests each, ``n_benign_test`` held-out benign ones,
    ``n_contrast`` benign requests with harmful-sounding words, ``n_harmful_test`` held-out harmful ones
    (default: all 345).
    """
    harmful = seeded_draw(load_bundled("harmful_text:train"), n_train, seed)
    benign = seeded_draw(load_bundled("benign_text:train"), n_train, seed + 1)
    held_harmful = seeded_draw(load_bundled("harmful_text:heldout"), n_harmful_test, seed + 7)
    held_benign = seeded_draw(load_bundled("benign_text:heldout"), n_benign_test, seed + 4)
    overlap = seeded_draw(load_bundled("benign_overlap:heldout"), n_contrast, seed + 5)
    trains: dict[str, list[Sample]] = {"text": harmful + benign}
    tests: dict[str, list[Sample]] = {"text": held_harmful + held_benign, "contrast": held_harmful + overlap}
    pairs: dict[str, list[str]] = {"text": ["text", "contrast"]}
    add_leave_one_source_out(trains, tests, pairs, "text", held_harmful, held_benign)
    return trains, tests, pairs


def add_leave_one_source_out(
    trains: dict[str, list[Sample]],
    tests: dict[str, list[Sample]],
    pairs: dict[str, list[str]],
    base: str,
    held_harmful: list[Sample],
    held_benign: list[Sample],
) -> None:
    """For each harmful source S present in ``held_harmful``: a test set ``source:S`` (S's held-out harmful
    requests and the benign ones), tested from ``base`` and from ``{base}-without-S`` (``base``'s training
    set without S: leave one source out). Adds to ``trains``, ``tests`` and ``pairs`` in place."""
    for source in HARMFUL_SOURCES:
        mine = [s for s in held_harmful if s.source == source]
        if not mine:
            continue
        tests[f"source:{source}"] = mine + held_benign
        pairs[base].append(f"source:{source}")
        trains[f"{base}-without-{source}"] = [s for s in trains[base] if s.source != source]
        pairs[f"{base}-without-{source}"] = [f"source:{source}"]
