"""One metric stack, one threshold rule: the batched metrics of ``sahs_lens.evaluation.metrics`` (used by the
probes) agree with ``detection_metrics`` on the same scores, ties and scores exactly at the threshold
included, and with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from sahs_lens.evaluation import detection_metrics, roc_curve_points, tpr_at_fpr
from sahs_lens.evaluation.metrics import accuracy, auroc, f1, flags


def tied_rows(n_rows: int = 12, n: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer scores 0..4 (many ties, many scores exactly at a threshold of 2), both classes in every row."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 5, (n_rows, n), generator=g).float()
    labels = (torch.rand(n_rows, n, generator=g) > 0.5).long()
    labels[:, 0], labels[:, 1] = 0, 1
    return scores, labels


def test_flags_is_score_at_or_above_threshold_for_tensors_and_arrays() -> None:
    scores = [-1.0, -0.0, 0.0, 0.5, 2.0]
    assert flags(torch.tensor(scores), 0.0).tolist() == [False, True, True, True, True]
    assert flags(np.array(scores), 0.5).tolist() == [False, False, False, True, True]
    assert flags(torch.tensor(scores), 0.0).dtype == torch.bool


@pytest.mark.parametrize("threshold", [2.0, 0.0, 1.5, 4.0])
def test_batched_metrics_agree_with_detection_metrics(threshold: float) -> None:
    scores, labels = tied_rows()
    assert bool((scores == threshold).any()) or threshold == 1.5  # scores exactly at the threshold
    acc, f1s, auc = accuracy(scores, labels, threshold), f1(scores, labels, threshold), auroc(scores, labels)
    for i in range(scores.shape[0]):
        m = detection_metrics(labels[i], scores[i], threshold=threshold, bootstrap=0)
        assert float(acc[i]) == pytest.approx(m.accuracy.value, abs=1e-6)
        assert float(f1s[i]) == pytest.approx(m.f1.value, abs=1e-6)
        assert float(auc[i]) == pytest.approx(m.auroc.value, abs=1e-6)
        assert m.tpr.value == pytest.approx(float(flags(scores[i][labels[i] == 1], threshold).float().mean()))


def test_probe_margins_at_zero_agree_with_detection_metrics() -> None:
    # the probes score margins at threshold 0; a probability at 0.5 is the same decision
    scores, labels = tied_rows(seed=1)
    margins = scores - 2.0  # a fifth of the margins are exactly 0
    probabilities = torch.sigmoid(margins.double())
    acc = accuracy(margins, labels, threshold=0.0)
    for i in range(margins.shape[0]):
        on_margins = detection_metrics(labels[i], margins[i], threshold=0.0, bootstrap=0)
        on_probabilities = detection_metrics(labels[i], probabilities[i], threshold=0.5, bootstrap=0)
        assert float(acc[i]) == pytest.approx(on_margins.accuracy.value, abs=1e-6)
        assert on_margins.accuracy.value == on_probabilities.accuracy.value
        assert on_margins.f1.value == on_probabilities.f1.value


def test_accuracy_and_f1_match_sklearn_with_the_at_or_above_rule() -> None:
    scores, labels = tied_rows(seed=2)
    acc, f1s = accuracy(scores, labels, 2.0), f1(scores, labels, 2.0)
    for i in range(scores.shape[0]):
        predicted = (scores[i] >= 2.0).long().numpy()
        assert float(acc[i]) == pytest.approx(accuracy_score(labels[i].numpy(), predicted), abs=1e-6)
        assert float(f1s[i]) == pytest.approx(
            f1_score(labels[i].numpy(), predicted, zero_division=0), abs=1e-6
        )


@pytest.mark.parametrize("tied", [True, False])
def test_auroc_equals_sklearn_for_any_batch_shape(tied: bool) -> None:
    g = torch.Generator().manual_seed(3)
    scores = (
        torch.randint(0, 4, (3, 4, 25), generator=g).float() if tied else torch.randn(3, 4, 25, generator=g)
    )
    labels = (torch.arange(25) % 3 == 0).long()  # one label row shared by every row of scores (broadcast)
    auc = auroc(scores, labels)
    assert auc.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            ref = roc_auc_score(labels.numpy(), scores[i, j].numpy())
            assert float(auc[i, j]) == pytest.approx(ref, abs=1e-6)


def test_edge_rows() -> None:
    labels = torch.tensor([0, 1, 0, 1])
    same = torch.zeros(2, 4)  # a dead head: every sample scores alike
    assert auroc(same, labels).tolist() == [0.5, 0.5]
    assert accuracy(same, labels, 0.0).tolist() == [0.5, 0.5]  # all flagged (score 0 >= 0)
    assert accuracy(same, labels, 1e-9).tolist() == [0.5, 0.5]  # none flagged
    assert f1(same, torch.zeros(4, dtype=torch.long), 1.0).tolist() == [
        0.0,
        0.0,
    ]  # no positives, none flagged
    assert bool(torch.isnan(auroc(torch.randn(1, 4), torch.ones(4, dtype=torch.long))).all())  # one class


def test_operating_points_use_the_same_rule() -> None:
    scores, labels = tied_rows(n_rows=1, n=200, seed=4)
    s, y = scores[0].double().numpy(), labels[0].numpy() == 1  # float64, as tpr_at_fpr compares
    for max_fpr in (0.01, 0.05, 0.3):
        tpr, threshold = tpr_at_fpr(y, s, max_fpr)
        assert tpr == flags(s[y], threshold).mean() and flags(s[~y], threshold).mean() <= max_fpr
    fpr, tpr_curve, thresholds = roc_curve_points(y, s)
    for k in range(1, thresholds.size):
        assert (
            tpr_curve[k] == flags(s[y], thresholds[k]).mean() and fpr[k] == flags(s[~y], thresholds[k]).mean()
        )
