"""Unflagged rows are token-identical to unguarded generation: on the organism, by token ids, to the end.

The guard scores every row inside the prefill forward and changes only the logits of flagged rows. The
claim is checked where it can fail visibly: on the bundled organism, whose answers are real sentences (its
trained helpful form, checked here), comparing the generated token *ids* of the whole generation (every
row runs to its end-of-sequence token), for every policy, with the threshold far from every score and with
it a hair above the highest unflagged score (and exactly at one score, which the rule ``score >= threshold``
flags). It is also checked on Hugging Face's own ``generate`` through ``attach_hf``, on a copy of the
organism loaded separately from its checkpoint.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoModelForImageTextToText

from model_adapters import Generation, HookedVLM
from sahs_lens import SafetyHeadGuard, collect_head_activations, probe_sweep, rank_heads
from sahs_lens.organism import ORGANISM_DIR, load_organism, organism_samples
from sahs_lens.organism.evaluate import utility_score

MAX_NEW = 64


@pytest.fixture(scope="module")
def organism() -> HookedVLM:
    return load_organism()


@pytest.fixture(scope="module")
def guard(organism: HookedVLM) -> SafetyHeadGuard:
    train = (
        organism_samples("harmful_text:train", images="ordinary")[:40]
        + organism_samples("benign_text:train", images="ordinary")[:40]
    )
    acts = collect_head_activations(organism, train, batch_size=16, progress=False)
    heads = rank_heads(
        probe_sweep(acts, shots=[2, 4], repeats=4, seed=0, progress=False), k=8, criterion="stable"
    )
    return SafetyHeadGuard.fit(acts, heads)


@pytest.fixture(scope="module")
def rows() -> list[Any]:
    benign = organism_samples("benign_text:heldout", images="ordinary")[:5]
    typographic = organism_samples("figstep_benign:heldout")[:2]
    harmful = organism_samples("harmful_text:heldout", images="ordinary")[:2]
    return [
        benign[0],
        harmful[0],
        *benign[1:3],
        typographic[0],
        harmful[1],
        benign[3],
        typographic[1],
        benign[4],
    ]


def row_ids(generation: Generation, row: int, eos: set[int]) -> list[int]:
    """The token ids a row generated, up to and including its end-of-sequence token."""
    ids = [int(t) for t in generation.tokens[row]]
    ends = [i for i, t in enumerate(ids) if t in eos]
    return ids[: ends[0] + 1] if ends else ids


def guarded_tokens(guard: SafetyHeadGuard, model: HookedVLM, batch, policy: str, monkeypatch):  # type: ignore[no-untyped-def]
    """``guard.generate``'s result and the ``Generation`` (token ids) its decoding produced."""
    seen: list[Generation] = []
    original = model.generate_tokens

    def spy(*args: Any, **kwargs: Any) -> Generation:
        result = original(*args, **kwargs)
        seen.append(result)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(model, "generate_tokens", spy)
        out = guard.generate(model, batch, max_new_tokens=MAX_NEW, policy=policy)
    return out, seen[0]  # the first call is the guarded decoding ("indicate" regenerates flagged rows after)


def test_unflagged_rows_are_token_identical_far_from_and_near_the_threshold(
    organism, guard, rows, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    batch = organism.prepare([s.prompt for s in rows], images=[s.image for s in rows])
    plain = organism.generate_tokens(batch, max_new_tokens=MAX_NEW)
    eos = set(organism.eos_token_ids)
    benign_rows = [i for i, s in enumerate(rows) if s.label == 0]
    assert all(plain.finished[i] for i in range(len(rows)))  # whole generations, to the end
    helpful = [utility_score(rows[i], plain.texts[i]) for i in benign_rows]
    assert sum(helpful) >= len(benign_rows) - 1, plain.texts  # real answers, not gibberish

    scores = guard.score_inputs(organism, batch)
    benign_scores = scores[benign_rows]
    top = int(benign_rows[int(benign_scores.argmax())])
    settings = {
        "far": 0.5,  # the paper's threshold; every benign score far below it (checked)
        "near": float(torch.nextafter(scores[top], torch.tensor(2.0))),  # one float32 step above the top
        "at": float(scores[top]),  # exactly at the top benign score: that row is flagged
    }
    assert float(benign_scores.max()) < 0.25
    before = guard.threshold
    try:
        for name, threshold in settings.items():
            guard.threshold = threshold
            for policy in ("refuse", "indicate", "prefix"):
                out, decoded = guarded_tokens(guard, organism, batch, policy, monkeypatch)
                expected_flags = [bool(s >= threshold) for s in scores.tolist()]
                assert out.flagged == expected_flags, (name, policy)
                assert any(out.flagged) and not all(out.flagged), (name, policy)
                assert out.flagged[top] is (name == "at")
                for row, flagged in enumerate(out.flagged):
                    if not flagged:
                        assert row_ids(decoded, row, eos) == row_ids(plain, row, eos), (name, policy, row)
                        assert decoded.finished[row] and out.texts[row] == plain.texts[row]
                    else:
                        assert row_ids(decoded, row, eos) != row_ids(plain, row, eos), (name, policy, row)
    finally:
        guard.threshold = before


def test_attach_hf_leaves_unflagged_rows_of_a_pristine_hf_model_token_identical(
    organism, guard, rows
) -> None:  # type: ignore[no-untyped-def]
    pristine = AutoModelForImageTextToText.from_pretrained(
        ORGANISM_DIR, attn_implementation="eager", dtype=torch.float32
    ).eval()
    batch = organism.prepare([s.prompt for s in rows], images=[s.image for s in rows])
    kwargs = dict(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, **batch.model_kwargs,
        max_new_tokens=MAX_NEW, do_sample=False,
    )  # fmt: skip
    with torch.no_grad():
        plain = pristine.generate(**kwargs)
    with guard.attach_hf(pristine) as session:
        guarded = pristine.generate(**kwargs, logits_processor=[session.logits_processor])
    expected = guard.score_inputs(organism, batch)
    assert torch.allclose(torch.tensor(session.scores), expected, atol=1e-5)
    assert any(session.flagged) and not all(session.flagged)
    n, eos = batch.input_ids.shape[1], set(organism.eos_token_ids)
    for row, flagged in enumerate(session.flagged):
        mine = row_ids(Generation(guarded[:, n:], [], []), row, eos)
        theirs = row_ids(Generation(plain[:, n:], [], []), row, eos)
        assert theirs[-1] in eos  # the whole generation, to its end-of-sequence token
        if not flagged:
            assert mine == theirs, row
        else:
            assert mine != theirs, row
