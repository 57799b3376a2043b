"""The guard: safety heads turned into a malicious-prompt detector that acts inside generation.

``detector`` (``SafetyHeadGuard``: fit, calibrate, score, save/load, guarded generate), ``classify``
(a verdict per prompt with its evidence: the guard as a moderation call), ``reading``
(scoring inside the prefill), ``policies`` (refuse / indicate / prefix), ``hf`` (guarding plain Hugging
Face ``generate``).
"""

from sahs_lens.guard.classify import Verdict, guard_sha256
from sahs_lens.guard.detector import GUARD_FORMAT, GuardedGeneration, SafetyHeadGuard
from sahs_lens.guard.hf import HFGuardSession
from sahs_lens.guard.policies import (
    INDICATING_PROMPT,
    POLICIES,
    REFUSAL_PREFIX,
    REFUSAL_TEXT,
    Policy,
)

__all__ = [
    "GUARD_FORMAT",
    "INDICATING_PROMPT",
    "POLICIES",
    "REFUSAL_PREFIX",
    "REFUSAL_TEXT",
    "GuardedGeneration",
    "HFGuardSession",
    "Policy",
    "SafetyHeadGuard",
    "Verdict",
    "guard_sha256",
]
