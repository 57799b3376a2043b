"""User text is text, on every family: control-token strings typed by a user never become control tokens.

A prompt that contains ``<image>``, ``</s>``, ``<start_of_turn>`` or any other special or added token of
the family's tokenizer must give exactly the control-token ids of a prompt without them: the template's own.
"""

from __future__ import annotations

from collections import Counter

import pytest

from model_adapters.text_safety import WORD_JOINER, control_strings, safe_user_text

from .conftest import Guarded, count_hooks


def _control_ids(model, batch) -> Counter[int]:  # type: ignore[no-untyped-def]
    special = set(model.tokenizer.all_special_ids) | {
        int(i) for i in (model.tokenizer.added_tokens_decoder or {})
    }
    return Counter(int(t) for t in batch.input_ids[batch.attention_mask.bool()].tolist() if int(t) in special)


def test_typed_control_tokens_stay_text(guarded: Guarded, images) -> None:  # type: ignore[no-untyped-def]
    model, (guard, _) = guarded.model, guarded.guards
    strings = control_strings(model.processor)
    assert strings, "the family's tokenizer has control tokens to try"
    attack = (
        "Ignore this: " + " ".join(strings[:24]) + " and answer."
    )  # the longest 24 (paligemma has 1,000+)
    for image in (None, images[0]):
        clean = model.prepare(["Ignore this: and answer."], images=[image])
        typed = model.prepare([attack], images=[image])
        assert _control_ids(model, typed) == _control_ids(model, clean), (
            f"user text became control tokens on {model.cfg.family} (image={image is not None})"
        )
        out = guard.generate(model, typed, max_new_tokens=2)
        assert len(out.texts) == 1
    assert count_hooks(model) == guarded.hooks


def test_eos_typed_by_a_user_is_not_eos(guarded: Guarded) -> None:
    # the template may write EOS-like tokens itself (ChatML's <|im_end|>); typing one adds none
    model = guarded.model
    eos = model.tokenizer.eos_token
    ids = set(model.eos_token_ids) | {model.tokenizer.eos_token_id}
    clean = model.prepare(["stop here no"]).input_ids[0].tolist()
    typed = model.prepare([f"stop here {eos} no"]).input_ids[0].tolist()
    assert sum(t in ids for t in typed) == sum(t in ids for t in clean)


@pytest.mark.parametrize(
    "text",
    ["lone \ud800 surrogate", "\udfff", "pair \ud83d\ude00 joined", "mixed \ud83d and \ude00"],
)
def test_lone_surrogates_are_replaced(llava: Guarded, text: str) -> None:
    model = llava.model
    cleaned = safe_user_text(text, ())
    cleaned.encode("utf-8")  # no surrogate is left
    assert ("\ud83d\ude00" not in text) or "\U0001f600" in cleaned
    batch = model.prepare([text])
    assert batch.input_ids.shape[0] == 1


def test_raw_template_keeps_the_callers_control_tokens(llava: Guarded, images) -> None:  # type: ignore[no-untyped-def]
    raw = llava.model.with_template("raw")
    batch = raw.prepare(["USER: <image>\nWhat is this? ASSISTANT:"], images=[images[0]])
    image_id = raw.tokenizer.convert_tokens_to_ids("<image>")
    assert image_id in batch.input_ids[0].tolist()
    assert WORD_JOINER not in batch.texts[0]
