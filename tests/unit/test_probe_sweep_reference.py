"""The probe sweep against an independent reference: scikit-learn, refitted on the sweep's own draws.

``probe_sweep`` fits every head's probe for every repeat in one batched solve and scores it on the samples
that repeat did not train on. Here each of those probes is fitted again with scikit-learn's
``LogisticRegression`` (C=1, raw features, with an intercept: the paper's probe) on exactly the drawn
samples (``sweep.draws``), and scored on the rest. Synthetic tensors only.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from sahs_lens.head_activations import HeadActivations
from sahs_lens.probes import probe_sweep


def offset_acts(n: int = 60, seed: int = 0) -> HeadActivations:
    """4 layers x 8 heads x d_head 16 with a class signal of varying strength on one direction per head,
    and a per-head mean offset, as real ``hook_z`` outputs have: a probe without its intercept fails."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    z = torch.randn(n, 4, 8, 16, generator=g) + 2.0 * torch.randn(1, 4, 8, 16, generator=g)
    strength = torch.linspace(0.0, 1.6, 32).reshape(1, 4, 8)
    z[..., 0] += strength * (2 * y - 1).float()[:, None, None]
    return HeadActivations(z=z, labels=y, provenance={"model_name": "synthetic"})


def test_sweep_accuracy_equals_sklearn_on_the_same_draws() -> None:
    """Every cell of ``accuracy[shot, repeat, layer, head]`` is scikit-learn's held-out accuracy."""
    acts = offset_acts()
    with threadpool_limits(1):
        sweep = probe_sweep(acts, shots=[3, 8], repeats=3, seed=0, metric="accuracy", progress=False)
        z, y = acts.z.double().numpy(), acts.labels.numpy()
        ours, theirs = [], []
        for s, draws in enumerate(sweep.draws):
            for r, train in enumerate(draws.numpy()):
                test = np.setdiff1d(np.arange(len(y)), train)
                for layer in range(4):
                    for head in range(8):
                        ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000)
                        ref.fit(z[train, layer, head], y[train])
                        theirs.append(float((ref.predict(z[test, layer, head]) == y[test]).mean()))
                        ours.append(float(sweep.accuracy[s, r, layer, head]))
    diff = np.abs(np.array(ours) - np.array(theirs))
    # float32 accuracies; a margin within round-off of 0 may flip one test sample of a probe
    assert (diff < 1e-6).mean() >= 0.97 and diff.max() <= 1.5 / 44
    assert np.std(theirs) > 0.1  # weak and strong heads: the comparison covers a range of accuracies
