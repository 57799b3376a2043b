"""sahs_lens: find, test and deploy the safety attention heads of vision-language models.

The pipeline, each step one import away::

    samples  = load_bundled("harmful_text:train") + load_bundled("benign_text:train")
    acts     = collect_head_activations(model, samples)          # hook_z at the decision position
    sweep    = probe_sweep(acts, shots=[2, 4, 8, 16, 32, 64])    # per-head probes, few-shot stability
    heads    = rank_heads(sweep, k=32, criterion="stable")       # the safety heads
    with ablate_heads(model, heads): ...                         # causal evidence
    guard    = SafetyHeadGuard.fit(acts, heads)                  # the detector
    out      = guard.generate(model, batch)                      # guarded generation

Models come from ``model_adapters.load_vlm``.

Importing ``sahs_lens`` is cheap: each name below is imported from its module on first use (PEP 562), so
``sahs-lens --help`` answers without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sahs_lens._version import __version__

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from sahs_lens.activations import collect_head_activations
    from sahs_lens.data import Sample, bundled_path, load_bundled, load_data, paper_split, stratified_split
    from sahs_lens.detectors import DETECTORS, Comparison, compare
    from sahs_lens.evaluation import (
        CallableJudge,
        RefusalJudge,
        attack_success_rate,
        detection_metrics,
        reject_rate,
    )
    from sahs_lens.guard import GuardedGeneration, SafetyHeadGuard
    from sahs_lens.head_activations import HeadActivations
    from sahs_lens.heads import Head, HeadSet
    from sahs_lens.interventions import (
        AblationCurve,
        PatchingResult,
        RefusalLogitDiff,
        ablate_heads,
        ablation_curve,
        patch_heads,
        patching_sweep,
    )
    from sahs_lens.probes import ProbeSweep, fit_head_probes, probe_sweep
    from sahs_lens.ranking import random_heads, rank_heads

_EXPORTS: dict[str, str] = {
    "collect_head_activations": "sahs_lens.activations",
    "Sample": "sahs_lens.data",
    "bundled_path": "sahs_lens.data",
    "load_bundled": "sahs_lens.data",
    "load_data": "sahs_lens.data",
    "paper_split": "sahs_lens.data",
    "stratified_split": "sahs_lens.data",
    "DETECTORS": "sahs_lens.detectors",
    "Comparison": "sahs_lens.detectors",
    "compare": "sahs_lens.detectors",
    "CallableJudge": "sahs_lens.evaluation",
    "RefusalJudge": "sahs_lens.evaluation",
    "attack_success_rate": "sahs_lens.evaluation",
    "detection_metrics": "sahs_lens.evaluation",
    "reject_rate": "sahs_lens.evaluation",
    "GuardedGeneration": "sahs_lens.guard",
    "SafetyHeadGuard": "sahs_lens.guard",
    "HeadActivations": "sahs_lens.head_activations",
    "Head": "sahs_lens.heads",
    "HeadSet": "sahs_lens.heads",
    "AblationCurve": "sahs_lens.interventions",
    "PatchingResult": "sahs_lens.interventions",
    "RefusalLogitDiff": "sahs_lens.interventions",
    "ablate_heads": "sahs_lens.interventions",
    "ablation_curve": "sahs_lens.interventions",
    "patch_heads": "sahs_lens.interventions",
    "patching_sweep": "sahs_lens.interventions",
    "ProbeSweep": "sahs_lens.probes",
    "fit_head_probes": "sahs_lens.probes",
    "probe_sweep": "sahs_lens.probes",
    "random_heads": "sahs_lens.ranking",
    "rank_heads": "sahs_lens.ranking",
}
"""Public name -> the module that defines it."""

__all__ = [
    "DETECTORS",
    "AblationCurve",
    "CallableJudge",
    "Comparison",
    "GuardedGeneration",
    "Head",
    "HeadActivations",
    "HeadSet",
    "PatchingResult",
    "ProbeSweep",
    "RefusalJudge",
    "RefusalLogitDiff",
    "SafetyHeadGuard",
    "Sample",
    "__version__",
    "ablate_heads",
    "ablation_curve",
    "attack_success_rate",
    "bundled_path",
    "collect_head_activations",
    "compare",
    "detection_metrics",
    "fit_head_probes",
    "load_bundled",
    "load_data",
    "paper_split",
    "patch_heads",
    "patching_sweep",
    "probe_sweep",
    "random_heads",
    "rank_heads",
    "reject_rate",
    "stratified_split",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is used."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sahs_lens' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
