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
"""

from sahs_lens._version import __version__
from sahs_lens.activations import collect_head_activations
from sahs_lens.data import Sample, load_bundled, paper_split, stratified_split
from sahs_lens.dataspec import load_data
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

__all__ = [
    "AblationCurve",
    "CallableJudge",
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
    "collect_head_activations",
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
