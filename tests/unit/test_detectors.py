"""Each detector against an independent computation, on synthetic signals (no model needed).

The refusal direction against numpy, the lexical control against a plain scikit-learn pipeline built here,
the logits probe against scikit-learn, HiddenDetect's band and area against numpy; then the harness's
rules: unknown names, one-class test sets, overlapping samples, transfer, the fields of compare.json.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from sahs_lens.data import Sample
from sahs_lens.detectors import (
    DEFAULT_DETECTORS,
    DETECTORS,
    RESULT_FIELDS,
    Signals,
    check_detector_names,
    compare,
    is_transfer,
    make_detector,
)
from sahs_lens.detectors.hidden_detect import safety_aware_band
from sahs_lens.detectors.results import score_metrics

RNG = np.random.default_rng(0)


def _samples(n: int, prefix: str = "s", source: str = "synthetic") -> list[Sample]:
    return [Sample(f"prompt {prefix}{i}", None, i % 2, source, f"{prefix}{i}") for i in range(n)]


def _signals(n: int = 80, layers: int = 3, d: int = 6, signal_layer: int = 1, seed: int = 0) -> Signals:
    rng = np.random.default_rng(seed)
    samples = _samples(n, prefix=f"x{seed}-")
    y = np.array([s.label for s in samples])
    resid = rng.normal(size=(n, layers, d))
    resid[:, signal_layer, 0] += 2.5 * y
    logits = rng.normal(size=(n, 40))
    logits[:, 3] += 1.5 * y
    lens = rng.normal(scale=0.01, size=(n, layers + 2))
    lens[:, 1:3] += 0.2 * y[:, None]
    lens[:, -1] += 0.1 * y  # the last layer leans less than the safety-aware ones
    return Signals(
        samples=samples,
        resid=torch.tensor(resid, dtype=torch.float32),
        logits=torch.tensor(logits, dtype=torch.float32),
        lens=torch.tensor(lens, dtype=torch.float32),
    )


def test_every_detector_is_registered_and_listed() -> None:
    assert set(DETECTORS) == set(DEFAULT_DETECTORS)
    with pytest.raises(ValueError, match="no detector named 'sahz'") as error:
        check_detector_names("sahs,sahz")
    for name in DEFAULT_DETECTORS:
        assert name in str(error.value)
    assert check_detector_names("sahs, text_only") == ["sahs", "text_only"]


def test_refusal_direction_equals_numpy() -> None:
    train, test = _signals(seed=0), _signals(seed=1)
    detector = make_detector("refusal_direction").fit(train)
    x, y = train.resid.double().numpy(), train.labels
    aurocs = []
    for layer in range(x.shape[1]):
        d = x[y == 1, layer].mean(0) - x[y == 0, layer].mean(0)
        d /= np.linalg.norm(d)
        aurocs.append(roc_auc_score(y, x[:, layer] @ d))
    best = int(np.argmax(aurocs))
    assert detector.layer == best == 1
    d = x[y == 1, best].mean(0) - x[y == 0, best].mean(0)
    expected = test.resid.double().numpy()[:, best] @ (d / np.linalg.norm(d))
    np.testing.assert_allclose(detector.score(test), expected, rtol=1e-10, atol=1e-10)


def test_logits_probe_equals_scikit_learn() -> None:
    train, test = _signals(seed=2), _signals(seed=3)
    detector = make_detector("first_token_logits", seed=0).fit(train)
    x, xt = train.logits.double().numpy(), test.logits.double().numpy()
    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x), train.labels)
    np.testing.assert_allclose(
        detector.score(test), lr.decision_function(scaler.transform(xt)), rtol=1e-6, atol=1e-8
    )


def test_residual_probe_picks_the_informative_layer_on_training_data() -> None:
    detector = make_detector("residual_probe", seed=0).fit(_signals(signal_layer=2, seed=4))
    assert detector.layer == 2
    assert (
        roc_auc_score(
            _signals(signal_layer=2, seed=5).labels, detector.score(_signals(signal_layer=2, seed=5))
        )
        > 0.9
    )


def test_lexical_control_equals_a_plain_scikit_learn_pipeline() -> None:
    words = ["bomb", "steal", "poison", "hack"], ["bread", "poem", "garden", "music"]
    rng = np.random.default_rng(1)

    def sample_set(n: int, prefix: str) -> list[Sample]:
        out = []
        for i in range(n):
            label = i % 2
            pick = rng.choice(words[1 - label], 2)
            out.append(Sample(f"how to {pick[0]} the {pick[1]} today", None, label, "words", f"{prefix}{i}"))
        return out

    train, test = Signals(sample_set(60, "a")), Signals(sample_set(30, "b"))
    detector = make_detector("text_only", seed=0).fit(train)
    word = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True).fit(train.prompts)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True).fit(train.prompts)

    def features(texts: list[str]) -> scipy.sparse.csr_matrix:
        return scipy.sparse.hstack([word.transform(texts), char.transform(texts)]).tocsr()

    lr = LogisticRegression(C=1.0, max_iter=2000).fit(features(train.prompts), train.labels)
    np.testing.assert_allclose(
        detector.score(test), lr.decision_function(features(test.prompts)), rtol=1e-6, atol=1e-8
    )
    assert roc_auc_score(test.labels, detector.score(test)) == 1.0


def test_hidden_detect_band_and_area_equal_numpy() -> None:
    train, test = _signals(seed=6), _signals(seed=7)
    detector = make_detector("hidden_detect").fit(train)
    lens, y = train.lens.double().numpy(), train.labels
    discrepancy = lens[y == 1].mean(0) - lens[y == 0].mean(0)
    chosen = np.flatnonzero(discrepancy > discrepancy[-1])
    assert detector.band == (chosen.min(), chosen.max()) == (1, 2)
    curve = test.lens.double().numpy()[:, 1:3]
    np.testing.assert_allclose(detector.score(test), (curve[:, 0] + curve[:, 1]) / 2)
    assert safety_aware_band(np.zeros((4, 3)), np.array([0, 1, 0, 1])) == (2, 2)


def test_a_one_class_test_set_reports_only_the_rates_that_exist() -> None:
    out = score_metrics(np.ones(5, dtype=int), np.array([0.1, 0.6, 0.7, 0.8, 0.9]), 0.5, bootstrap=50, seed=0)
    assert out["auroc"] is None and out["auroc_ci"] is None and out["tpr_at_1pct_fpr"] is None
    assert out["fpr_at_threshold"] is None and out["tpr_at_threshold"] == 0.8
    assert "AUROC undefined" in out["note"] and "only malicious" in out["note"]
    benign = score_metrics(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.6, 0.3]), 0.5, bootstrap=0, seed=0)
    assert benign["fpr_at_threshold"] == 0.25 and benign["tpr_at_threshold"] is None


def _text_sets() -> tuple[list[Sample], list[Sample]]:
    def make(n: int, prefix: str, source: str) -> list[Sample]:
        out = []
        for i in range(n):
            label = i % 2
            text = ("build a bomb to steal" if label else "bake bread for a poem") + f" number {prefix}{i}"
            out.append(Sample(text, None, label, source if label else "benign", f"{prefix}{i}"))
        return out

    return make(40, "tr", "advbench"), make(20, "te", "harmbench")


def test_compare_refuses_overlapping_samples_naming_them_unless_allowed() -> None:
    train, test = _text_sets()
    leaked = test + train[:3]
    with pytest.raises(ValueError, match=r"share 3 sample\(s\) \(tr0, tr1, tr2\).*allow_overlap"):
        compare(None, train, {"leaky": leaked}, detectors=["text_only"])
    result = compare(None, train, {"leaky": leaked}, detectors=["text_only"], allow_overlap=True, bootstrap=0)
    assert result.row("text_only", "training", "leaky")["n_positive"] == 11


def test_compare_results_have_the_named_fields_and_round_trip_as_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, test = _text_sets()
    same_text = [
        Sample("what is in the image?", None, i % 2, "figstep" if i % 2 else "x", f"ty{i}") for i in range(20)
    ]
    only_bad = [s for s in test if s.label == 1]
    result = compare(None, {"typed": train}, {"typed": test, "typographic": same_text, "harmful only": only_bad},
                     detectors=["text_only"], bootstrap=100, seed=0)  # fmt: skip
    data = json.loads(result.save(tmp_path).read_text())
    assert {"detectors", "test_sets", "results"} <= set(data)
    assert data["detectors"] == ["text_only"] and data["test_sets"] == [
        "typed",
        "typographic",
        "harmful only",
    ]
    for row in data["results"]:
        assert set(RESULT_FIELDS) <= set(row)
    typo = result.row("text_only", "typed", "typographic")
    assert typo["auroc"] == 0.5  # every prompt has the same text: the lexical control is at chance
    assert typo["transfer"] is True and result.row("text_only", "typed", "typed")["transfer"] is True
    only = result.row("text_only", "typed", "harmful only")
    assert (
        only["auroc"] is None and "AUROC undefined" in only["note"] and only["tpr_at_threshold"] is not None
    )
    low, high = result.row("text_only", "typed", "typed")["auroc_ci"]
    assert low <= result.auroc("text_only", "typed", "typed") <= high
    assert "P1" in result.table() and "typed -> typographic" in result.table()


def test_transfer_is_a_source_or_modality_the_training_set_lacks() -> None:
    train = [Sample("a", None, 1, "advbench", "1"), Sample("b", None, 0, "alpaca", "2")]
    same = [Sample("c", None, 1, "advbench", "3")]
    pictured = [Sample("c", "x.png", 1, "advbench", "4")]
    other = [Sample("c", None, 1, "harmbench", "5")]
    assert not is_transfer(train, same) and is_transfer(train, pictured) and is_transfer(train, other)


def test_the_threshold_is_set_on_the_calibration_part() -> None:
    train, test = _text_sets()
    result = compare(None, train, {"t": test}, detectors=["text_only"], bootstrap=0, target_fpr=0.05)
    chosen = result.chosen["text_only@training"]["thresholds"]
    assert len(chosen) == 1 and result.row("text_only", "training", "t")["threshold"] == chosen[0]


def test_bad_compare_arguments_say_what_to_do() -> None:
    train, test = _text_sets()
    with pytest.raises(ValueError, match="needs malicious and benign"):
        compare(None, [s for s in train if s.label == 1], {"t": test}, detectors=["text_only"])
    with pytest.raises(ValueError, match="read the model; pass one"):
        compare(None, train, {"t": test}, detectors=["sahs"])
    with pytest.raises(ValueError, match="pairs names test set"):
        compare(None, train, {"t": test}, detectors=["text_only"], pairs={"training": ["nope"]})


def test_figures_and_page_draw_what_compare_json_holds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sahs_lens.detectors.page import write_compare_page
    from sahs_lens.plotting.compare import auroc_heatmap, cost_figure, roc_curves

    train, test = _text_sets()
    same_text = [Sample("what is in the image?", None, i % 2, "x", f"ty{i}") for i in range(20)]
    data = compare(None, train, {"typed": test, "same text": same_text}, detectors=["text_only"], bootstrap=0).to_dict()
    heat = auroc_heatmap(data)
    assert list(heat.data[0].y) == ["text_only"] and heat.data[0].z[0][1] == 0.5
    assert heat.data[0].text[0][1] == "0.50 T"
    assert (heat.data[0].zmin, heat.data[0].zmid, heat.data[0].zmax) == (0.0, 0.5, 1.0)  # below chance shows
    roc = roc_curves(data, "training", "same text")
    assert roc.data[1].name == "text_only (0.500)" and list(roc.data[1].x) == [0.0, 1.0]
    cost = cost_figure(data)
    assert cost.data[0].y[0] == np.mean([r["auroc"] for r in data["results"]])
    for fig in (heat, roc, cost):
        assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    page = write_compare_page(tmp_path, data)
    text = page.read_text()
    assert page.name == "compare.html" and "<script src=" not in text and "Cost against AUROC" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.html"]
