"""Splits: the paper's few-shot probe split and a seeded stratified split.

The paper trains its per-head probes on few samples: per class, 15% of the *smaller* class size (252 + 252
of MM-SafetyBench's 1,680 malicious prompts), taken at evenly spaced positions; the rest is test.
``paper_split`` is that rule; ``stratified_split`` is a seeded random split that keeps class (or any other
key's) proportions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from sahs_lens.data.sample import Sample

# ------------------------------------------------------------------------------------------------------------
# Splits
# ------------------------------------------------------------------------------------------------------------


def _round_half_up(value: float) -> int:
    # 2.5 -> 3 (Python's round gives 2); the epsilon absorbs float error such as 0.15 * 1680 = 251.99999...
    return int(math.floor(value + 0.5 + 1e-9))


def _indices_by_key(
    samples: Sequence[Sample], key: Callable[[Sample], Hashable]
) -> dict[Hashable, list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for index, sample in enumerate(samples):
        groups.setdefault(key(sample), []).append(index)
    return groups


def _classes(samples: Sequence[Sample], what: str) -> dict[Hashable, list[int]]:
    if len(samples) == 0:
        raise ValueError(f"{what} got no samples; pass a list with both malicious (1) and benign (0) samples")
    classes = _indices_by_key(samples, lambda s: s.label)
    if len(classes) < 2:
        (only,) = classes
        raise ValueError(
            f"{what} got {len(samples)} samples, all with label {only}; a split for probes needs both "
            "classes: add benign (0) or malicious (1) samples, e.g. load_bundled('benign_text:train')"
        )
    return classes


def paper_split(samples: Sequence[Sample], train_fraction: float = 0.15) -> tuple[list[Sample], list[Sample]]:
    """The paper's split: per class, ``round(train_fraction * smaller class size)`` evenly spaced ones train.

    Each class contributes the same number ``n`` of training samples (so the training set is balanced),
    taken at positions ``np.linspace(0, len(class) - 1, n)`` (rounded down) of that class's samples in their
    given order; everything else is test. With MM-SafetyBench's 1,680 malicious prompts and as many or more
    benign ones this is 252 + 252 for training. Both lists keep the input order. No randomness.

    Args:
        samples: labelled samples, both classes present.
        train_fraction: share of the smaller class used for training, in (0, 1); default 0.15.

    Returns:
        ``(train, test)``.

    Example:
        >>> samples = load_bundled("harmful_text:train") + load_bundled("benign_text:train")
        >>> train, test = paper_split(samples)  # round(0.15 * 803) = 120 per class
        >>> len(train), len(test)
        (240, 1963)
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be between 0 and 1 (exclusive); got {train_fraction}")
    classes = _classes(samples, "paper_split")
    smallest = min(len(indices) for indices in classes.values())
    n_train = _round_half_up(train_fraction * smallest)
    if n_train < 1 or n_train >= smallest:
        raise ValueError(
            f"train_fraction={train_fraction} of the smaller class ({smallest} samples) gives {n_train} "
            "training samples per class; it must leave at least one sample per class for training and for "
            "testing: pass more samples or another train_fraction"
        )
    train_indices: set[int] = set()
    for indices in classes.values():
        positions = np.linspace(0, len(indices) - 1, n_train).astype(int)
        train_indices.update(indices[p] for p in positions)
    return _split_by_index(samples, train_indices)


def stratified_split(
    samples: Sequence[Sample],
    test_fraction: float = 0.3,
    seed: int = 0,
    *,
    by: Callable[[Sample], Hashable] | None = None,
) -> tuple[list[Sample], list[Sample]]:
    """A seeded random split that keeps each stratum's share: ``round(test_fraction * n)`` of each go to test.

    Strata are the labels by default (then both classes must be present and must land in both parts); pass
    ``by=`` to stratify by something else, e.g. ``by=lambda s: (s.label, s.source)``. The same samples and
    seed always give the same split (NumPy ``default_rng(seed)``); both lists keep the input order.

    Example:
        >>> samples = load_bundled("harmful_text:heldout") + load_bundled("benign_text:heldout")
        >>> train, test = stratified_split(samples, test_fraction=0.3, seed=0)
        >>> len(train), len(test)  # 104 of 345 malicious and 180 of 600 benign in test
        (661, 284)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1 (exclusive); got {test_fraction}")
    if by is None:
        strata = _classes(samples, "stratified_split")
    elif len(samples) == 0:
        raise ValueError("stratified_split got no samples; pass a non-empty list")
    else:
        strata = _indices_by_key(samples, by)
    rng = np.random.default_rng(seed)
    test_indices: set[int] = set()
    for indices in strata.values():  # insertion order = first appearance: deterministic
        n_test = _round_half_up(test_fraction * len(indices))
        test_indices.update(indices[p] for p in rng.permutation(len(indices))[:n_test])
    test, train = _split_by_index(samples, test_indices)
    if by is None:
        for label, indices in strata.items():
            n_test = sum(i in test_indices for i in indices)
            if n_test == 0 or n_test == len(indices):
                raise ValueError(
                    f"class {label} has {len(indices)} samples; test_fraction={test_fraction} puts {n_test} "
                    "of them in test, leaving a part without this class: pass more samples or another "
                    "test_fraction"
                )
    return train, test


def _split_by_index(samples: Sequence[Sample], chosen: set[int]) -> tuple[list[Sample], list[Sample]]:
    inside = [s for i, s in enumerate(samples) if i in chosen]
    outside = [s for i, s in enumerate(samples) if i not in chosen]
    return inside, outside
