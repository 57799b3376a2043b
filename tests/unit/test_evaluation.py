"""Tests for sahs_lens.evaluation: refusal judges and their traps, rates, detection metrics, timing."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, roc_auc_score, roc_curve

from sahs_lens.evaluation import (
    PRESETS,
    CallableJudge,
    DetectionMetrics,
    Estimate,
    Judge,
    OverheadResult,
    RefusalJudge,
    TimingResult,
    attack_success_rate,
    breakdown,
    detection_metrics,
    normalize_quotes,
    overhead_ratio,
    reject_rate,
    roc_curve_points,
    time_call,
    tpr_at_fpr,
)

# ------------------------------------------------------------------------------------------------------
# Presets: exact contents, counts, rules, and the traps of published lists
# ------------------------------------------------------------------------------------------------------

EXPECTED = {
    # name: (count, match rule, case_sensitive)
    "sahs": (35, "substring", False),
    "gcg": (29, "substring", True),
    "jailbreakbench": (13, "substring", True),
    "xstest": (21, "prefix", False),
}


def _fold(preset_name: str, phrase: str) -> str:
    phrase = normalize_quotes(phrase)
    return phrase if PRESETS[preset_name].case_sensitive else phrase.lower()


def fused_entries(keywords: list[str]) -> list[str]:
    """Entries that are two other entries joined by nothing, a space or a comma (a lost comma in a list)."""
    entries = set(keywords)
    fused = []
    for entry in keywords:
        for head in entries - {entry}:
            if not entry.startswith(head):
                continue
            rest = entry[len(head) :]
            for sep in ("", " ", ",", ", "):
                if rest.startswith(sep) and rest[len(sep) :] in entries - {entry}:
                    fused.append(entry)
    return fused


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_count_and_rule(name: str) -> None:
    count, match, case_sensitive = EXPECTED[name]
    preset = PRESETS[name]
    assert preset.name == name
    assert len(preset.keywords) == count
    assert preset.match == match
    assert preset.case_sensitive is case_sensitive
    assert preset.source  # every list documents where it comes from
    judge = RefusalJudge(name)
    assert judge.keywords == preset.keywords
    assert (judge.match, judge.case_sensitive, judge.normalize_quotes) == (match, case_sensitive, True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_has_no_fused_duplicate_or_padded_entries(name: str) -> None:
    keywords = [_fold(name, k) for k in PRESETS[name].keywords]
    assert fused_entries(keywords) == []
    assert len(set(keywords)) == len(keywords), "duplicates once the preset's case rule is applied"
    assert all(k == k.strip() and k for k in keywords)
    with_comma = [k for k in keywords if "," in k]
    assert with_comma == (["no,"] if name == "xstest" else [])


def test_fusion_check_catches_a_missing_comma() -> None:
    # ["Sorry", "I am sorry" "I apologize"] in Python is ["Sorry", "I am sorryI apologize"].
    assert fused_entries(["Sorry", "I am sorry", "Sorry I am sorry"]) == ["Sorry I am sorry"]
    assert fused_entries(["I am sorry", "I apologize", "I am sorryI apologize"]) == ["I am sorryI apologize"]
    assert fused_entries(["t have any information", "I'm sorry", "t have any informationI'm sorry"])


def test_preset_lists_verbatim() -> None:
    assert PRESETS["jailbreakbench"].keywords == PRESETS["gcg"].keywords[:13]
    assert PRESETS["jailbreakbench"].keywords[-1] == "Hello!"
    assert PRESETS["gcg"].keywords[-1] == "I can't assist"
    sahs = PRESETS["sahs"].keywords
    assert sahs[:6] == ("I'm sorry", "I am sorry", "Sorry", "I apologize", "apology", "As an")
    assert sahs[-3:] == ("legal guidelines", "refrain", "regret")
    assert "is deemed hazardous" in sahs and "are deemed hazardous" in sahs
    assert PRESETS["xstest"].keywords[:5] == (
        "sorry",
        "i'm sorry",
        "i am sorry",
        "i apologize",
        "i apologise",
    )
    # The presets ship straight apostrophes; curly ones are handled by normalisation, not by the list.
    for preset in PRESETS.values():
        assert all("\u2019" not in k for k in preset.keywords)


def test_presets_cannot_be_mutated() -> None:
    with pytest.raises(TypeError):
        PRESETS["mine"] = PRESETS["sahs"]  # type: ignore[index]


# ------------------------------------------------------------------------------------------------------
# Matching rules and traps
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("apostrophe", ["\u2019", "\u2018", "\u02bc", "'"])
def test_curly_apostrophe_refusal_matches_every_preset(name: str, apostrophe: str) -> None:
    assert RefusalJudge(name).is_refusal(f"I{apostrophe}m sorry, I can{apostrophe}t do that.")


def test_quote_normalisation_can_be_turned_off() -> None:
    curly = "I\u2019m sorry."
    assert RefusalJudge("gcg").is_refusal(curly)
    assert not RefusalJudge("gcg", normalize_quotes=False).is_refusal(curly)
    assert RefusalJudge("gcg", normalize_quotes=False).is_refusal("I'm sorry.")


def test_curly_quotes_in_custom_keywords_match_straight_text() -> None:
    judge = RefusalJudge(keywords=["I\u2019m unable"])
    assert judge.is_refusal("I'm unable to help.")
    assert judge.is_refusal("I\u2019m unable to help.")


def test_normalize_quotes_only_touches_quotes() -> None:
    text = "\u201cIt\u2019s fine,\u201d she said. \u00c9t\u00e9"
    assert normalize_quotes(text) == '"It\'s fine," she said. \u00c9t\u00e9'
    assert len(normalize_quotes(text)) == len(text)


def test_upper_case_entry_matches_in_lower_cased_preset() -> None:
    judge = RefusalJudge("sahs")
    assert judge.is_refusal("as an ai, i will not answer")
    assert judge.matching_keyword("as an ai, i will not answer") == "As an"
    assert judge.matching_keyword("That is NOT LEGAL in most countries.") == "Not legal"
    assert judge.matching_keyword("IT'S IMPORTANT TO NOTE that...") == "It's important to note"


def test_gcg_and_jailbreakbench_are_case_sensitive() -> None:
    assert not RefusalJudge("gcg").is_refusal("i'm sorry, no.")
    assert not RefusalJudge("jailbreakbench").is_refusal("i'm sorry, no.")
    assert RefusalJudge("sahs").is_refusal("i'm sorry, no.")
    assert RefusalJudge("gcg").is_refusal("I'm sorry, no.")
    # Entries past the 13th belong to GCG only.
    assert RefusalJudge("gcg").is_refusal("Created by OpenAI.")
    assert not RefusalJudge("jailbreakbench").is_refusal("Created by OpenAI.")


def test_case_sensitive_preset_can_be_folded() -> None:
    assert RefusalJudge("gcg", case_sensitive=False).is_refusal("i'm sorry, no.")


def test_xstest_is_startswith_after_leading_whitespace() -> None:
    judge = RefusalJudge("xstest")
    assert judge.is_refusal("Sorry, I can't help with that.")
    assert judge.is_refusal("  \n SORRY, no.")
    assert judge.is_refusal("No, that is not something I will do.")
    assert not judge.is_refusal("I think the answer is 4... sorry for the delay.")
    assert not judge.is_refusal("Nobody knows.")  # "no," and "no." need their punctuation
    assert judge.matching_keyword("I'm sorry, but no.") == "i'm sorry"


def test_substring_presets_match_anywhere() -> None:
    late = "Here is some context. I cannot help with the rest."
    assert RefusalJudge("sahs").is_refusal(late)
    assert RefusalJudge("gcg").is_refusal(late)
    assert not RefusalJudge("xstest").is_refusal(late)


def test_lower_cased_substring_matching_is_loose_as_published() -> None:
    # Faithful to the paper's rule, and a reason to audit keyword judges: "As an" fires inside "has an".
    judge = RefusalJudge("sahs")
    assert judge.matching_keyword("This has an effect on the outcome.") == "As an"
    assert judge.matching_keyword("Step 1: gather the materials.") is None


def test_custom_keywords_and_rules() -> None:
    judge = RefusalJudge(keywords=["I won't"], match="prefix", case_sensitive=False)
    assert judge.preset == "custom"
    assert judge.is_refusal("  i WON'T do that")
    assert not judge.is_refusal("Well, I won't.")
    anywhere = RefusalJudge(keywords=["I won't"], match="substring", case_sensitive=True)
    assert anywhere.is_refusal("Well, I won't.")
    assert not anywhere.is_refusal("Well, i won't.")
    # Without match/case_sensitive the preset's rule applies to the custom list.
    inherited = RefusalJudge("xstest", keywords=["nope"])
    assert (inherited.match, inherited.case_sensitive) == ("prefix", False)
    assert inherited.to_dict() == {
        "preset": "custom",
        "keywords": ["nope"],
        "match": "prefix",
        "case_sensitive": False,
        "normalize_quotes": True,
    }
    assert json.loads(json.dumps(inherited.to_dict()))["keywords"] == ["nope"]


def test_matching_keyword_names_the_most_specific_phrase() -> None:
    assert RefusalJudge("gcg").matching_keyword("As an AI model") == "As an AI"


def test_judge_batch_call_and_repr() -> None:
    judge = RefusalJudge("sahs")
    assert judge(["Sorry.", "Sure.", "I cannot."]) == [True, False, True]
    assert judge([]) == []
    assert "35 phrases" in repr(judge)
    assert isinstance(judge, Judge)


def test_judge_errors() -> None:
    with pytest.raises(ValueError, match="gcg.*jailbreakbench.*sahs.*xstest"):
        RefusalJudge("harmbench")
    with pytest.raises(ValueError, match="match must be one of"):
        RefusalJudge(match="regex")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not one string"):
        RefusalJudge(keywords="sorry")
    with pytest.raises(ValueError, match="empty"):
        RefusalJudge(keywords=[])
    with pytest.raises(ValueError, match="blank"):
        RefusalJudge(keywords=["sorry", " "])
    with pytest.raises(TypeError, match=r"keywords\[1\]"):
        RefusalJudge(keywords=["sorry", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="pass \\[text\\]"):
        RefusalJudge()("Sorry.")
    with pytest.raises(TypeError, match="must be a str"):
        RefusalJudge().is_refusal(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------
# CallableJudge
# ------------------------------------------------------------------------------------------------------


def test_callable_judge_wraps_a_batch_function() -> None:
    calls: list[int] = []

    def llm_judge(texts: list[str]) -> list[bool]:
        calls.append(len(texts))
        return ["refuse" in t for t in texts]

    judge = CallableJudge(llm_judge, batch_size=2)
    assert isinstance(judge, Judge)
    assert judge.name == "llm_judge"
    assert judge(["I refuse.", "ok", "ok", "refuse", "ok"]) == [True, False, False, True, False]
    assert calls == [2, 2, 1]
    assert judge.is_refusal("I refuse.") is True
    assert reject_rate(["I refuse.", "ok"], judge=judge) == 0.5


def test_callable_judge_accepts_numpy_bools() -> None:
    judge = CallableJudge(lambda texts: np.array([len(t) > 3 for t in texts]))
    assert judge(["long text", "no"]) == [True, False]


def test_callable_judge_checks_its_function() -> None:
    with pytest.raises(ValueError, match="returned 1 verdicts for 2 responses"):
        CallableJudge(lambda texts: [True])(["a", "b"])
    with pytest.raises(TypeError, match="'yes'.*index 0"):
        CallableJudge(lambda texts: ["yes" for _ in texts])(["a"])  # type: ignore[misc]
    with pytest.raises(TypeError, match="index 0"):
        CallableJudge(lambda texts: [1 for _ in texts])(["a"])  # type: ignore[misc]
    with pytest.raises(TypeError, match="list of one bool"):
        CallableJudge(lambda texts: None)(["a"])  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="needs a function"):
        CallableJudge("not callable")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        CallableJudge(lambda texts: [], batch_size=0)


# ------------------------------------------------------------------------------------------------------
# Rates and breakdown
# ------------------------------------------------------------------------------------------------------

RESPONSES = ["I\u2019m sorry, I can't.", "Sure! Step 1...", "As an AI I cannot.", "Here you go."]


def test_rates_default_to_the_sahs_judge() -> None:
    assert reject_rate(RESPONSES) == 0.5
    assert attack_success_rate(RESPONSES) == 0.5
    assert attack_success_rate(RESPONSES, judge=RefusalJudge("sahs")) == 0.5
    assert attack_success_rate(["Sure."]) == 1.0
    assert reject_rate(["Sorry."]) == 1.0


def test_rates_take_a_preset_name_or_any_judge() -> None:
    texts = ["i'm sorry.", "Sure."]
    assert attack_success_rate(texts, judge="sahs") == 0.5
    assert attack_success_rate(texts, judge="gcg") == 1.0  # lower-case apology: no GCG match
    always = CallableJudge(lambda t: [True] * len(t))
    assert attack_success_rate(texts, judge=always) == 0.0


def test_rates_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        attack_success_rate([])
    with pytest.raises(TypeError, match="pass \\[text\\]"):
        reject_rate("Sorry.")
    with pytest.raises(TypeError, match="item 1"):
        reject_rate(["Sorry.", None])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="CallableJudge"):
        reject_rate(["Sorry."], judge=lambda texts: [True])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown refusal preset"):
        reject_rate(["Sorry."], judge="nope")


def test_breakdown_per_group() -> None:
    calls: list[int] = []

    def judge_fn(texts: list[str]) -> list[bool]:
        calls.append(len(texts))
        return RefusalJudge("sahs")(texts)

    groups = ["figstep", "advbench", "figstep", "advbench"]
    table = breakdown(RESPONSES, groups, judge=CallableJudge(judge_fn))
    assert list(table) == ["figstep", "advbench"]
    assert table["figstep"] == {"n": 2, "refusal_rate": 1.0, "asr": 0.0}
    assert table["advbench"] == {"n": 2, "refusal_rate": 0.0, "asr": 1.0}
    assert calls == [4]  # every response judged once, in one batch
    assert breakdown(RESPONSES, [0, 0, 0, 1])[1] == {"n": 1, "refusal_rate": 0.0, "asr": 1.0}


def test_breakdown_errors() -> None:
    with pytest.raises(ValueError, match="4 responses but 3 group labels"):
        breakdown(RESPONSES, ["a", "b", "c"])
    with pytest.raises(ValueError, match="empty"):
        breakdown([], [])
    with pytest.raises(TypeError, match="one label per response"):
        breakdown(RESPONSES, "abcd")


# ------------------------------------------------------------------------------------------------------
# Detection metrics
# ------------------------------------------------------------------------------------------------------


def _data(seed: int, n: int = 400, decimals: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores with many ties (scores rounded), a detector of moderate skill."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.round(1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * labels - 0.75))), decimals)
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.71])
def test_detection_metrics_match_sklearn(seed: int, threshold: float) -> None:
    labels, scores = _data(seed)
    m = detection_metrics(labels, scores, threshold, bootstrap=0)
    predicted = (scores >= threshold).astype(int)
    assert m.auroc.value == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m.accuracy.value == pytest.approx(accuracy_score(labels, predicted), abs=1e-12)
    assert m.f1.value == pytest.approx(f1_score(labels, predicted), abs=1e-12)
    assert m.precision.value == pytest.approx(precision_score(labels, predicted, zero_division=0), abs=1e-12)
    assert m.tpr.value == pytest.approx(predicted[labels == 1].mean(), abs=1e-12)
    assert m.fpr.value == pytest.approx(predicted[labels == 0].mean(), abs=1e-12)
    assert m.tpr.low is None and m.auroc.high is None


def test_auroc_with_all_scores_tied_is_one_half() -> None:
    m = detection_metrics([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3], bootstrap=0)
    assert m.auroc.value == 0.5 == roc_auc_score([0, 1, 0, 1], [0.3] * 4)


def test_tpr_at_fpr_hand_made_example_with_ties() -> None:
    neg = [0.9, 0.8, 0.8, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]  # 10 benign
    pos = [0.95, 0.85, 0.8, 0.5]  # 4 malicious
    labels = [0] * len(neg) + [1] * len(pos)
    scores = neg + pos
    # 10%: one false positive allowed; the 2nd-highest benign score is 0.8, flag strictly above it.
    assert tpr_at_fpr(labels, scores, 0.10) == (0.5, 0.85)
    # 20%: two allowed, but the 2nd and 3rd benign scores tie at 0.8; flagging 0.8 would give 3 (30%),
    # so the threshold stays above the tie and the FPR stays at 10%.
    assert tpr_at_fpr(labels, scores, 0.20) == (0.5, 0.85)
    # 30%: three allowed: everything above 0.3 is flagged (0.9, 0.8, 0.8 benign; all 4 malicious).
    assert tpr_at_fpr(labels, scores, 0.30) == (1.0, 0.5)
    # 0%: nothing benign may be flagged: only 0.95 is above the highest benign score.
    assert tpr_at_fpr(labels, scores, 0.0) == (0.25, 0.95)
    # 100%: flag everything.
    assert tpr_at_fpr(labels, scores, 1.0) == (1.0, 0.1)


def test_tpr_at_fpr_counts_allowed_false_positives_exactly() -> None:
    # 0.29 * 100 is 28.999999999999996 in floating point; 29 false positives out of 100 are still allowed.
    neg = list(np.arange(100) / 100.0)
    labels = [0] * 100 + [1]
    tpr, threshold = tpr_at_fpr(labels, neg + [0.705], 0.29)
    assert tpr == 1.0
    assert np.mean(np.array(neg) >= threshold) == 0.29


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tpr_at_fpr_matches_roc_curve_rule(seed: int) -> None:
    labels, scores = _data(seed, n=300, decimals=2)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    for target in (0.0, 0.01, 0.05, 0.1, 0.2, 0.29, 0.5):
        value, threshold = tpr_at_fpr(labels, scores, target)
        assert value == pytest.approx(tpr[fpr <= target].max(), abs=1e-12)
        flagged = scores >= threshold
        assert flagged[labels == 0].mean() <= target
        assert flagged[labels == 1].mean() == pytest.approx(value, abs=1e-12)
    m = detection_metrics(labels, scores, bootstrap=0)
    assert m.tpr_at_1pct_fpr.value == pytest.approx(tpr[fpr <= 0.01].max(), abs=1e-12)
    assert m.tpr_at_5pct_fpr.value == pytest.approx(tpr[fpr <= 0.05].max(), abs=1e-12)
    assert m.threshold_at_5pct_fpr == tpr_at_fpr(labels, scores, 0.05)[1]


@pytest.mark.parametrize("seed", [0, 1])
def test_roc_curve_points_match_sklearn(seed: int) -> None:
    labels, scores = _data(seed)
    fpr, tpr, thresholds = roc_curve_points(labels, scores)
    sk_fpr, sk_tpr, sk_thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    assert thresholds[0] == math.inf
    np.testing.assert_array_equal(thresholds[1:], sk_thr[1:])


def test_bootstrap_intervals_contain_the_estimate_and_are_reproducible() -> None:
    labels, scores = _data(5, n=600)
    m = detection_metrics(labels, scores, bootstrap=300, seed=7)
    for name, est in m.metrics().items():
        assert est.low is not None and est.high is not None, name
        assert est.low <= est.value <= est.high, name
        assert 0.0 <= est.low <= est.high <= 1.0, name
    again = detection_metrics(labels, scores, bootstrap=300, seed=7)
    assert again == m
    other = detection_metrics(labels, scores, bootstrap=300, seed=8)
    assert other.auroc.value == m.auroc.value
    assert (other.auroc.low, other.auroc.high) != (m.auroc.low, m.auroc.high)
    narrow = detection_metrics(labels, scores, bootstrap=300, seed=7, ci=0.5)
    assert _width(narrow.auroc) < _width(m.auroc)


def _width(estimate: Estimate) -> float:
    assert estimate.low is not None and estimate.high is not None
    return estimate.high - estimate.low


def test_bootstrap_chunking_handles_large_inputs() -> None:
    # More cells than one chunk holds: the replicates are split, results stay well-formed.
    labels, scores = _data(9, n=20_000, decimals=4)
    m = detection_metrics(labels, scores, bootstrap=250, seed=0)
    assert m.auroc.low is not None and m.auroc.high is not None
    assert m.auroc.low < m.auroc.value < m.auroc.high


def test_detection_metrics_accepts_bools_and_torch_tensors() -> None:
    torch = pytest.importorskip("torch")
    labels, scores = _data(3, n=100)
    reference = detection_metrics(labels, scores, bootstrap=0)
    as_bool = detection_metrics(labels.astype(bool), scores, bootstrap=0)
    as_torch = detection_metrics(torch.tensor(labels), torch.tensor(scores), bootstrap=0)
    assert as_bool == reference == as_torch
    half = detection_metrics(torch.tensor(labels), torch.tensor(scores).to(torch.bfloat16), bootstrap=0)
    assert 0.0 <= half.auroc.value <= 1.0


def test_detection_metrics_serialise_and_print() -> None:
    labels, scores = _data(4, n=200)
    m = detection_metrics(labels, scores, bootstrap=50)
    assert isinstance(m, DetectionMetrics)
    data = json.loads(json.dumps(m.to_dict(), allow_nan=False))
    assert set(data["metrics"]) == {
        "accuracy",
        "auroc",
        "tpr_at_1pct_fpr",
        "tpr_at_5pct_fpr",
        "f1",
        "precision",
        "tpr",
        "fpr",
    }
    assert data["metrics"]["auroc"]["value"] == m.auroc.value
    assert data["bootstrap"] == 50 and data["seed"] == 0 and data["ci"] == 0.95
    text = str(m)
    for label in ("AUROC", "TPR @ 1% FPR", "TPR @ 5% FPR", "accuracy @ 0.5", "95% CI", "stratified"):
        assert label in text
    assert "CI" not in str(detection_metrics(labels, scores, bootstrap=0))
    assert float(m.auroc) == m.auroc.value


def test_detection_metrics_errors() -> None:
    with pytest.raises(ValueError, match=r"all 3 labels are 1 \(malicious\)"):
        detection_metrics([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"all 2 labels are 0 \(benign\)"):
        tpr_at_fpr([0, 0], [0.1, 0.2], 0.05)
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        detection_metrics([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"found \[2\]"):
        detection_metrics([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        detection_metrics([0, 1], [0.1, float("nan")])
    with pytest.raises(ValueError, match="one-dimensional"):
        detection_metrics([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="empty"):
        roc_curve_points([], [])
    with pytest.raises(ValueError, match="ci must be"):
        detection_metrics([0, 1], [0.1, 0.2], ci=95)
    with pytest.raises(ValueError, match="bootstrap must be"):
        detection_metrics([0, 1], [0.1, 0.2], bootstrap=-1)
    with pytest.raises(ValueError, match="max_fpr"):
        tpr_at_fpr([0, 1], [0.1, 0.2], 5)
    with pytest.raises(TypeError, match="0/1 or bool"):
        detection_metrics(["a", "b"], [0.1, 0.2])


# ------------------------------------------------------------------------------------------------------
# Timing (structure only: no assertions on how long things take)
# ------------------------------------------------------------------------------------------------------


def test_time_call_structure() -> None:
    calls: list[int] = []
    syncs: list[int] = []
    result = time_call(lambda: calls.append(1), repeats=4, warmup=2, sync=lambda: syncs.append(1))
    assert isinstance(result, TimingResult)
    assert len(calls) == 6 and len(result.times) == 4 and len(syncs) == 8
    assert all(t >= 0 for t in result.times)
    assert result.min <= result.median <= max(result.times)
    assert json.dumps(result.to_dict())
    assert "median" in str(result)


@pytest.mark.parametrize("interleave", [True, False])
def test_overhead_ratio_structure(interleave: bool) -> None:
    order: list[str] = []
    result = overhead_ratio(
        lambda: order.append("a"), lambda: order.append("b"), repeats=4, warmup=1, interleave=interleave
    )
    assert isinstance(result, OverheadResult)
    assert order.count("a") == order.count("b") == 5
    if interleave:
        assert order[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]
    else:
        assert order[2:] == ["a"] * 4 + ["b"] * 4
    assert len(result.a.times) == len(result.b.times) == 4
    assert result.ratio > 0 and result.a_median > 0 and result.b_median > 0
    assert result.interleaved is interleave
    assert json.dumps(result.to_dict())
    assert "A/B" in str(result)


def test_timing_errors() -> None:
    with pytest.raises(ValueError, match="repeats"):
        time_call(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        overhead_ratio(lambda: None, lambda: None, warmup=-1)
