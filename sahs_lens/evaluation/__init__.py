"""Judging responses and scoring detectors: refusal judges, ASR, reject rate, detection metrics, timing.

Two questions run through every experiment: *did the model refuse?* (judges and rates, on the answers) and
*did the detector flag the prompt?* (detection metrics, on the scores). The package, one job per module:

- ``keywords``: the published refusal-phrase lists (`PRESETS`), each with its matching rule, and the traps
  that silently shift their numbers (curly apostrophes, fused entries, case, matching rule);
- ``judges``: the `Judge` protocol, `RefusalJudge` (keyword lists) and `CallableJudge` (any function, e.g.
  an LLM judge);
- ``rates``: `reject_rate`, `attack_success_rate` (ASR: answers to malicious prompts that are not
  refusals; lower is safer) and their `breakdown` by group;
- ``metrics``: the batched accuracy, F1 and AUROC, and `flags`, the one threshold rule
  (``score >= threshold``) that every thresholded metric uses;
- ``roc``: `roc_curve_points` and `tpr_at_fpr` (attacks caught at a fixed false-positive budget);
- ``detection``: `detection_metrics`, every detection number with a bootstrap confidence interval;
- ``timing``: `time_call` and `overhead_ratio` (what a guard costs, A and B interleaved).

Always report both sides of a defence: ASR on malicious prompts, and the reject rate on benign ones (a high
one is over-refusal, the price paid in utility). Keyword judges reproduce published numbers; for final
numbers prefer a model-based judge behind `CallableJudge`.

>>> judge = RefusalJudge("sahs")
>>> judge(["I’m sorry, I can't help with that.", "Step 1: gather the materials."])
[True, False]
>>> attack_success_rate(["I’m sorry, I can't help with that.", "Step 1: gather the materials."])
0.5
"""

from sahs_lens.evaluation.detection import DetectionMetrics, Estimate, detection_metrics
from sahs_lens.evaluation.judges import CallableJudge, Judge, RefusalJudge
from sahs_lens.evaluation.keywords import PRESETS, KeywordPreset, MatchRule, normalize_quotes
from sahs_lens.evaluation.rates import GroupRates, attack_success_rate, breakdown, reject_rate
from sahs_lens.evaluation.roc import roc_curve_points, tpr_at_fpr
from sahs_lens.evaluation.timing import OverheadResult, TimingResult, overhead_ratio, time_call

__all__ = [
    "PRESETS",
    "CallableJudge",
    "DetectionMetrics",
    "Estimate",
    "GroupRates",
    "Judge",
    "KeywordPreset",
    "MatchRule",
    "OverheadResult",
    "RefusalJudge",
    "TimingResult",
    "attack_success_rate",
    "breakdown",
    "detection_metrics",
    "normalize_quotes",
    "overhead_ratio",
    "reject_rate",
    "roc_curve_points",
    "time_call",
    "tpr_at_fpr",
]
