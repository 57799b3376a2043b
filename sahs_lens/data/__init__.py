"""Samples, benchmark readers, the paper's splits, the bundled data sets and data specs.

Everything downstream (activation collection, probes, the guard, evaluation) consumes one thing: a list of
``Sample(prompt, image, label, source, id, category)``, label 1 = malicious, 0 = benign. This module turns
the published benchmark layouts into such lists, splits them the way the paper does, and ships small text
sets that work with no download.

**Readers** take the folder a benchmark is published in and return ``list[Sample]``; images stay paths
(opened only by ``load_image`` when a batch needs them), and every image file is checked to exist up front,
so a wrong folder fails at once with the file and the expected layout named:

=======================  ====================================================  =====  ====================
reader                   what it gives                                         label  source
=======================  ====================================================  =====  ====================
``read_mmsafetybench``   13 scenarios, "Rephrased Question" + SD_TYPO image    1      ``mmsafetybench``
``read_figstep``         SafeBench typographic images + FigStep's text prompt  1      ``figstep``
                         (``with_images=False``: the questions as text)               ``safebench``
``read_vlguard``         unsafes / safe_unsafes (label 1), safe_safes (0)      0/1    ``vlguard``
``read_mmvet``           MM-Vet utility questions with their images            0      ``mmvet``
``read_advbench`` ...    text-only harmful requests (AdvBench, HarmBench, JBB) 1      the data set's name
``read_alpaca``          benign instructions                                   0      ``alpaca``
``read_csv_prompts``,    your own files                                        given  given / file name
``read_jsonl``
=======================  ====================================================  =====  ====================

**Splits.** The paper trains its per-head probes on few samples: per class, 15% of the *smaller* class size
(252 + 252 of MM-SafetyBench's 1,680 malicious prompts), taken at evenly spaced positions, the rest is test.
``paper_split`` is that rule; ``stratified_split`` is a seeded random split that keeps class (or any other
key's) proportions.

**Bundled sets** (``load_bundled``, ``BUNDLED_SETS``): harmful and benign text requests and FigStep-style
typographic attacks with benign typographic counterparts, each with a fixed train / held-out split; the
typographic images are drawn at load time with ``render_typographic``. See ``sahs_lens/bundled/README.md``.

>>> train = load_bundled("harmful_text:train") + load_bundled("benign_text:train")
>>> probe_train, probe_test = paper_split(train)
>>> images = load_bundled("figstep_attack:heldout", image_size=224)

**Data specs** (``load_data``, ``sahs_lens.data.spec``): one string that names a data set, for the command
line and configs (``"figstep:DIR"``, ``"csv:FILE:COLUMN"``, ``"harmful_text:train@64"``).

One module per job: ``sample`` (Sample), ``layout`` (finding and reading a benchmark's files),
``vl_readers`` / ``text_readers`` (one reader per published layout), ``splits``, ``bundled``, ``spec``.
"""

from sahs_lens.data.bundled import BUNDLED_SETS, bundled_path, load_bundled
from sahs_lens.data.sample import Sample, load_image
from sahs_lens.data.spec import load_data
from sahs_lens.data.splits import paper_split, stratified_split
from sahs_lens.data.text_readers import (
    read_advbench,
    read_alpaca,
    read_csv_prompts,
    read_harmbench,
    read_jailbreakbench,
    read_jsonl,
    write_jsonl,
)
from sahs_lens.data.vl_readers import (
    FIGSTEP_PROMPT,
    MMSAFETYBENCH_SCENARIOS,
    MMSAFETYBENCH_VARIANTS,
    VLGUARD_SUBSETS,
    read_figstep,
    read_mmsafetybench,
    read_mmvet,
    read_vlguard,
)
from sahs_lens.typography import render_typographic

__all__ = [
    "BUNDLED_SETS",
    "FIGSTEP_PROMPT",
    "MMSAFETYBENCH_SCENARIOS",
    "MMSAFETYBENCH_VARIANTS",
    "VLGUARD_SUBSETS",
    "Sample",
    "bundled_path",
    "load_bundled",
    "load_data",
    "load_image",
    "paper_split",
    "read_advbench",
    "read_alpaca",
    "read_csv_prompts",
    "read_figstep",
    "read_harmbench",
    "read_jailbreakbench",
    "read_jsonl",
    "read_mmsafetybench",
    "read_mmvet",
    "read_vlguard",
    "render_typographic",
    "stratified_split",
    "write_jsonl",
]
