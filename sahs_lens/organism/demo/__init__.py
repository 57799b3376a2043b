"""``sahs-lens demo``: the whole story of the paper, on the bundled model organism, in a few minutes.

1. **Activations.** Every head's ``hook_z`` at the decision position, for malicious and benign prompts,
   typed and written into images (the harmful ones a seeded mix of every bundled source), and from the same
   forward the signals the detector comparison reads (residual stream, its logit lens, first-token logits).
2. **Probes.** A few-shot probe sweep over every head (20 repeats per shot count); the heads that stay
   accurate and stable as data shrinks are the safety heads.
3. **Ablation.** Remove the top-k safety heads, or k random heads, and watch the refusal rate.
4. **Patching.** Transplant each head from malicious into benign prompts: which heads carry "refuse"?
5. **Guard.** One logistic regression on the safety heads, calibrated on benign prompts, scores held-out
   prompts inside the prefill forward, side by side with the baselines and the lexical control
   (``comparison``, on the signals of step 1: no forward runs twice); guarded generation on held-out harmful
   text, typographic attacks and benign prompts.
6. **Report.** ``OUT/report.html`` (offline, every figure) and ``OUT/metrics.json``.

Every number is measured on held-out prompts the organism never saw in training, with the targets of the
project printed beside it.

The demo lives with the organism, above the method: it uses the method's public functions exactly as a
user would, and nothing in the method imports it. ``config`` holds the run sizes, ``stages`` one function
per measuring stage, ``headline`` the claims and their targets, ``report`` the files a run writes, and
``run.run_demo`` calls them in order.

>>> from sahs_lens.organism.demo import run_demo
>>> metrics = run_demo("sahs_out", quick=True)  # doctest: +SKIP
"""

from __future__ import annotations

from sahs_lens.organism.demo.config import FULL, QUICK, DemoConfig
from sahs_lens.organism.demo.headline import wilson_lower_bound
from sahs_lens.organism.demo.report import report_from_run
from sahs_lens.organism.demo.run import run_demo

__all__ = ["FULL", "QUICK", "DemoConfig", "report_from_run", "run_demo", "wilson_lower_bound"]
