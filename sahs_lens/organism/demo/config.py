"""How big one demo run is: the README's full run and the test suite's quick one.

Every size of the demo lives here, so the two runs differ only in these numbers: how many prompts the
probe pool holds, how many held-out prompts calibrate the guard and how many each evaluation set has, how
many prompts the ablation curve and the patching map use, the probe sweep's shot counts and repeats, and how
many safety heads the guard reads and the ablation removes.

Which prompts: the bundled harmful text is sorted by source (AdvBench, then SafeBench, JailbreakBench,
HarmBench), so its first rows would all be AdvBench. The pool's ``n_text`` harmful requests and the
``n_eval`` held-out harmful ones are therefore drawn with ``comparison.seeded_draw`` (the draw of the
``sahs-lens compare`` default sets): a seeded permutation of the whole set (the run's ``seed``), so every
source comes in at about its share of the set. Benign text (one source, Alpaca) and the typographic sets
are taken in order, and the calibration prompts are the held-out benign ones after the ``n_eval`` evaluated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["FULL", "QUICK", "DemoConfig", "demo_config"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of one demo run (``full`` is the README's run; ``quick`` is the test suite's)."""

    n_text: int  # malicious and benign text prompts each in the probe pool
    n_image: int  # typographic attacks and benign typographic prompts each in the pool
    n_calibration: int  # held-out benign prompts (not evaluated on) that set the guard threshold
    n_eval: int  # held-out prompts per evaluation set
    n_ablation: int  # malicious and benign prompts for the ablation curve
    n_patch: int  # prompt pairs for the patching map
    shots: tuple[int, ...]
    repeats: int
    k: int  # safety heads the guard reads
    ks: tuple[int, ...]  # heads removed in the ablation curve; the headline compares the largest
    seeds: tuple[int, ...]
    max_new_tokens: int
    target_fpr: float = 0.02  # guard flags on benign prompts (the organism refuses 0.2% of them itself)


FULL = DemoConfig(
    n_text=200,
    n_image=100,
    n_calibration=100,  # the held-out typographic benign set has 150 prompts: 96 evaluated, 50 calibrate
    n_eval=96,
    n_ablation=48,
    n_patch=8,
    shots=(1, 2, 4, 8, 16, 32),
    repeats=20,
    k=8,
    ks=(1, 4, 8, 15),  # 1%, 3%, 6% and 12% of the organism's 128 heads (the paper removes ~3% of 1,024)
    seeds=(0, 1, 2),
    max_new_tokens=48,
)
QUICK = DemoConfig(
    n_text=24,
    n_image=12,
    n_calibration=24,
    n_eval=12,
    n_ablation=8,
    n_patch=4,
    shots=(1, 2, 4),
    repeats=3,
    k=4,
    ks=(2, 4),
    seeds=(0,),
    max_new_tokens=16,
    target_fpr=0.05,  # 24 calibration prompts cannot show a 2% rate
)


def demo_config(quick: bool = False, repeats: int | None = None) -> DemoConfig:
    """``QUICK`` or ``FULL``, with ``repeats`` probe repeats per shot count when given.

    >>> demo_config(quick=True, repeats=5).repeats
    5
    """
    cfg = QUICK if quick else FULL
    if repeats is not None:
        cfg = dataclasses.replace(cfg, repeats=repeats)
    return cfg
