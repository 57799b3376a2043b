"""The detector comparison on a model with planted safety heads: signals checked against independent
computations, and ``compare`` ranking the planted heads' detector first where words cannot help.

The planted model (``model_adapters.testing.planted``) has three heads that fire on trigger words. Trained
on prompts with four trigger words and tested on prompts with the other four (and benign nouns it never saw
either), the guard on the planted heads keeps its AUROC while the lexical control, which never saw the
test words, falls towards chance.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from model_adapters import load_vlm
from model_adapters.testing.planted import PLANTED_HEADS, TRIGGER_WORDS, build_planted_checkpoint
from sahs_lens.data import Sample
from sahs_lens.detectors import Signals, collect_signals, compare, make_detector
from sahs_lens.detectors.signals import REFUSAL_WORDS, refusal_token_ids
from sahs_lens.heads import Head, HeadSet

TEMPLATES = (
    "How do I get a {} today?", "Tell me about the {} now.", "Where is the {} in town?", "Write about a {} quickly.",
    "Can you explain the {} plan?", "I need the {} for my friend.", "Show me the {} please.", "What makes a {} work?",
)  # fmt: skip
BENIGN_TRAIN = ("bread", "poem", "garden", "bicycle")
BENIGN_TEST = ("soup", "music", "river", "letter")


def _set(words_bad: tuple[str, ...], words_good: tuple[str, ...], prefix: str) -> list[Sample]:
    out = []
    for t, template in enumerate(TEMPLATES):
        for w, (bad, good) in enumerate(zip(words_bad, words_good, strict=True)):
            out.append(Sample(template.format(bad), None, 1, "trigger", f"{prefix}m{t}-{w}"))
            out.append(Sample(template.format(good), None, 0, "benign", f"{prefix}b{t}-{w}"))
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return load_vlm(build_planted_checkpoint(tmp_path_factory.mktemp("planted-compare")))


@pytest.fixture(scope="module")
def sets() -> tuple[list[Sample], list[Sample]]:
    return _set(TRIGGER_WORDS[:4], BENIGN_TRAIN, "tr"), _set(TRIGGER_WORDS[4:], BENIGN_TEST, "te")


def test_signals_equal_independent_forwards(planted, sets) -> None:  # type: ignore[no-untyped-def]
    samples = sets[1][:10]
    signals = collect_signals(
        planted, samples, needs={"z", "resid", "logits", "lens"}, batch_size=4, progress=False
    )
    batch = planted.prepare([s.prompt for s in samples], images=[None] * len(samples))
    logits, cache = planted.run_with_cache(
        batch, names_filter=lambda n: n.endswith("hook_resid_post") or n.endswith("hook_z")
    )
    torch.testing.assert_close(signals.logits, logits[:, -1].float(), rtol=1e-4, atol=1e-4)
    for layer in range(planted.cfg.n_layers):
        torch.testing.assert_close(signals.resid[:, layer], cache[f"blocks.{layer}.hook_resid_post"][:, -1])
        torch.testing.assert_close(signals.z[:, layer], cache[f"blocks.{layer}.attn.hook_z"][:, -1])
    # HiddenDetect's lens from Hugging Face's own hidden states: norm + lm_head on each layer's output
    hf = planted.hf_model
    with torch.no_grad():
        out = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    refusal = torch.zeros(planted.cfg.d_vocab)
    refusal[refusal_token_ids(planted.tokenizer, REFUSAL_WORDS)] = 1.0
    norm = hf.model.language_model.norm
    for layer in range(planted.cfg.n_layers - 1):  # HF's last hidden state is already normed
        lens_logits = hf.lm_head(norm(out.hidden_states[layer + 1][:, -1]))
        expected = torch.nn.functional.cosine_similarity(lens_logits, refusal[None], dim=-1)
        torch.testing.assert_close(signals.lens[:, layer], expected, rtol=1e-4, atol=1e-5)
    last = torch.nn.functional.cosine_similarity(out.logits[:, -1], refusal[None], dim=-1)
    torch.testing.assert_close(signals.lens[:, -1], last, rtol=1e-4, atol=1e-5)


def test_logits_probe_equals_scikit_learn_on_the_models_logits(planted, sets) -> None:  # type: ignore[no-untyped-def]
    train, test = sets
    detector = make_detector("first_token_logits").fit(
        collect_signals(planted, train, needs={"logits"}, progress=False)
    )

    def logits(samples: list[Sample]) -> np.ndarray:
        batch = planted.prepare([s.prompt for s in samples], images=[None] * len(samples))
        return planted(batch)[:, -1].double().numpy()

    x, xt = logits(train), logits(test)
    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(max_iter=2000).fit(scaler.transform(x), [s.label for s in train])
    scores = detector.score(collect_signals(planted, test, needs={"logits"}, progress=False))
    np.testing.assert_allclose(scores, lr.decision_function(scaler.transform(xt)), rtol=1e-4, atol=1e-4)


def test_compare_ranks_the_planted_heads_detector_first(planted, sets) -> None:  # type: ignore[no-untyped-def]
    train, test = sets
    result = compare(
        planted, {"four triggers": train}, {"four new triggers": test}, k=3, seed=0, shots=(2, 4, 8), repeats=5,
        bootstrap=100, max_new_tokens=4,
    )  # fmt: skip
    ranking = result.ranking("four triggers", "four new triggers")
    best = ranking[0][1]
    sahs = result.auroc("sahs", "four triggers", "four new triggers")
    assert sahs == best, ranking  # first (ties with other readers of the planted heads' write allowed)
    assert sahs > 0.95
    assert set(HeadSet.parse(result.chosen["sahs@four triggers"]["heads"])) == {
        Head(*h) for h in PLANTED_HEADS
    }
    assert sahs > result.auroc("text_only", "four triggers", "four new triggers") + 0.2
    assert result.row("sahs", "four triggers", "four new triggers")["transfer"] is False  # same source name
    assert result.row("model_refusal", "four triggers", "four new triggers")["extra_forwards"] == 3


def test_a_backend_without_the_hook_is_named() -> None:
    stub = SimpleNamespace(hook_names=["blocks.0.attn.hook_z"], backend="bridge")
    with pytest.raises(ValueError, match=r"no blocks\.\{l\}\.hook_resid_post hook.*residual_probe"):
        collect_signals(stub, [Sample("a", None, 1, "s", "1")], needs={"resid"})  # type: ignore[arg-type]


def test_compare_on_given_signals_equals_its_own_collection(planted, sets) -> None:  # type: ignore[no-untyped-def]
    """The demo's path: signals collected once (in another order, with extra rows) give the same results as
    ``compare`` collecting its own; signals that lack a sample or a signal are refused by name."""
    train, test = sets[0][:24], sets[1][:16]
    names = ("sahs", "residual_probe", "first_token_logits", "hidden_detect", "text_only")
    kwargs = dict(detectors=names, k=3, seed=0, shots=(2, 4), repeats=3, bootstrap=50)
    own = compare(planted, {"train": train}, {"test": test}, **kwargs).to_dict(roc=False)["results"]
    pieces = [collect_signals(planted, part, needs={"z", "resid", "logits", "lens"}, batch_size=4, progress=False)
              for part in (test[::-1], sets[0][24:30], train)]  # fmt: skip
    reused = compare(planted, {"train": train}, {"test": test}, signals=Signals.concat(pieces), **kwargs)
    reused_rows = reused.to_dict(roc=False)["results"]
    fields = ("detector", "auroc", "auroc_ci", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "fpr_at_threshold")
    for a, b in zip(own, reused_rows, strict=True):
        for field in fields:
            assert a[field] == pytest.approx(b[field], abs=1e-6), (a["detector"], field)
    with pytest.raises(ValueError, match=r"lack 16 of the 40 samples to measure \(tem"):
        compare(planted, {"train": train}, {"test": test}, signals=pieces[2], **kwargs)
    only_z = collect_signals(planted, train + test, needs={"z"}, progress=False)
    with pytest.raises(ValueError, match=r"hold no \['lens', 'logits', 'resid'\]"):
        compare(planted, {"train": train}, {"test": test}, signals=only_z, **kwargs)


def test_the_same_prompts_under_new_ids_are_refused_as_overlap() -> None:
    """Two copies of one file under other names give the same prompts new ids: refused by content."""
    from sahs_lens.data import Sample
    from sahs_lens.detectors import compare

    prompts = [f"request number {i} about {'bombs' if i % 2 else 'bread'}" for i in range(12)]
    train = [Sample(p, None, i % 2, "a", f"a:{i}") for i, p in enumerate(prompts)]
    copy = [Sample(p, None, i % 2, "b", f"b:{i}") for i, p in enumerate(prompts[:4])]
    with pytest.raises(ValueError, match=r"share 4 sample\(s\) with the same prompt and image \(a:0 = b:0"):
        compare(None, train, copy, detectors=["text_only"], bootstrap=0)
    result = compare(None, train, copy, detectors=["text_only"], bootstrap=0, allow_overlap=True)
    assert result.auroc("text_only", "training", "test") is not None


def test_a_label_that_is_not_0_or_1_is_refused() -> None:
    """``Sample`` refuses a label of 0.5; a look-alike object that carries one is refused by ``compare``
    (it used to count as benign)."""
    from sahs_lens.data import Sample
    from sahs_lens.detectors import compare

    train = [Sample(f"p{i}", None, i % 2, "a", f"a:{i}") for i in range(8)]
    # a Sample refuses 0.5 itself; any look-alike object reaches compare with it
    look_alike = SimpleNamespace(prompt="q1", image=None, label=0.5, source="t", id="t:1", category=None)
    test = [Sample("q0", None, 0, "t", "t:0"), look_alike]
    with pytest.raises(ValueError, match=r"sample 't:1' of the test set 'test' has label 0\.5"):
        compare(None, train, test, detectors=["text_only"], bootstrap=0)
