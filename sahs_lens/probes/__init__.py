"""Linear probes on every attention head at once, and the few-shot sweep that finds the safety heads.

**What a probe says about a head.** A probe is a logistic regression that reads one head's output at the
decision position (``blocks.{l}.attn.hook_z[:, -1, h]``, a ``d_head`` vector) and predicts whether the prompt
is malicious. If a *linear* read-out of a head separates malicious from benign prompts on held-out data, the
head already carries the information "this request is risky" before the model has produced a single token.
Probe accuracy is evidence of *information*, not of *use*: a head can encode risk that the model ignores. The
causal test is ablation and patching (``sahs_lens.interventions``); probes only nominate candidates.

**Why few shots, and why stability.** With ~10% of the data more than half of all heads of LLaVA-1.5-7B
probe above 80% accuracy, so accuracy alone cannot single out the heads that matter. Shrink the training set
to a handful of samples per class and most heads degrade and start to swing from one random draw to the next;
a few stay accurate with low variance across draws. Those are the *safety heads*: their risk signal is so
strong and low-dimensional that two or four examples suffice to find it. ``probe_sweep`` measures this:
for each shot count ``n`` it draws ``n`` samples per class at random, fits a probe on every head, scores it on
the held-out rest, and repeats, giving ``accuracy[shot, repeat, layer, head_index]``. ``rank_heads``
(``sahs_lens.ranking``) turns that into a ``HeadSet``.

**How the probes are solved.** Every probe is exactly scikit-learn's ``LogisticRegression(C=C)`` (same
objective, same stopping rule, tighter default tolerance), but the 20,480 probes of one shot count of a
LLaVA-1.5-7B sweep are solved together, by a batched damped Newton method in whichever of the primal
(``D + 1``) and dual (``N``) spaces is smaller, with float32 solves certified and, where float32 falls
short on large head outputs, finished in float64. ``tests/unit/test_probes.py`` checks coefficients,
intercepts and test accuracy against scikit-learn.

The package, one job per module:

- ``solver``: the batched Newton solver (primal and dual steps, chord steps, line search);
- ``certify``: the float32 certificate and the float64 re-solve;
- ``checks``: input validation shared by the fitters and the sweep;
- ``fit``: ``fit_probes`` / ``ProbeFit`` (many problems) and ``fit_head_probes`` / ``HeadProbes`` (one per head);
- ``shots``: ``ShotSpec`` and ``resolve_shots`` (counts, fractions, percentages);
- ``sweep``: the ``ProbeSweep`` artifact (frozen; ``to_dict`` / ``from_dict``, ``save`` / ``load``);
- ``driver``: ``probe_sweep`` itself.

The metrics (accuracy, AUROC, F1, one threshold rule) live in ``sahs_lens.evaluation.metrics``.
"""

from sahs_lens.probes.driver import probe_sweep
from sahs_lens.probes.fit import HeadProbes, ProbeFit, Space, fit_head_probes, fit_probes
from sahs_lens.probes.shots import ShotSpec, resolve_shots
from sahs_lens.probes.sweep import METRICS, SWEEP_FORMAT, SWEEP_JSON, SWEEP_TENSORS, ProbeSweep

__all__ = [
    "METRICS",
    "SWEEP_FORMAT",
    "SWEEP_JSON",
    "SWEEP_TENSORS",
    "HeadProbes",
    "ProbeFit",
    "ProbeSweep",
    "ShotSpec",
    "Space",
    "fit_head_probes",
    "fit_probes",
    "probe_sweep",
    "resolve_shots",
]
