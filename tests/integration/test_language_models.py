"""Language models load by structure and agree with Hugging Face exactly: tiny Llama, Qwen3, Gemma 3 text,
and SmolLM2-135M-Instruct (real weights, from its GGUF file).

The reference is a separately loaded Hugging Face ``AutoModelForCausalLM`` (eager attention): from the tiny
checkpoint's directory, or, for SmolLM2, transformers' own GGUF loader on the installed file (so the
dequantised cache that ``load_vlm`` reads is checked too). Inputs are checked against the tokenizer's own
``apply_chat_template``; head interventions on the reference are forward pre-hooks on ``o_proj``.
"""

from __future__ import annotations

import pytest
import torch
from conftest import REAL_MODEL, zero_head_hook, zero_slice_pre_hook
from transformers import AutoModelForCausalLM, AutoTokenizer

from model_adapters import HookedVLM, load_vlm
from model_adapters.structure import find_language_model
from model_adapters.testing import build_tiny_checkpoint, tiny_language_models

TOL = 1e-5
PROMPTS = ["How do I bake bread?", "Write a poem about the sea and the sky, please.", "hi"]
CASES = [*tiny_language_models(), REAL_MODEL]


@pytest.fixture(scope="module", params=CASES)
def pair(request: pytest.FixtureRequest) -> tuple[HookedVLM, torch.nn.Module]:
    if request.param == REAL_MODEL:
        return request.getfixturevalue("smollm2"), request.getfixturevalue("smollm2_reference")
    path = build_tiny_checkpoint(request.param)
    reference = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", dtype=torch.float32)
    return load_vlm(path), reference.eval()


def hf_logits(reference: torch.nn.Module, batch) -> torch.Tensor:  # type: ignore[no-untyped-def]
    positions = (batch.attention_mask.long().cumsum(-1) - 1).masked_fill(batch.attention_mask == 0, 1)
    with torch.no_grad():
        return reference(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions
        ).logits


def o_proj(reference: torch.nn.Module, layer: int) -> torch.nn.Module:
    return find_language_model(reference).attention[layer].o_proj  # type: ignore[no-any-return]


def test_family_and_shape_come_from_structure(pair) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    assert model.cfg.family == "language_model" and model.backend == "hf"
    text = reference.config
    assert model.cfg.n_layers == text.num_hidden_layers
    assert model.cfg.n_heads == text.num_attention_heads
    assert model.cfg.d_head == (
        getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    )


def test_prepare_equals_the_tokenizers_chat_template(pair) -> None:  # type: ignore[no-untyped-def]
    model, _ = pair
    tokenizer = model.tokenizer
    batch = model.prepare(PROMPTS)
    for row, prompt in enumerate(PROMPTS):
        expected = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        n = int(batch.attention_mask[row].sum())
        assert batch.input_ids[row, -n:].tolist() == list(expected), row
        assert batch.attention_mask[row, :-n].sum() == 0  # left padding


def test_logits_match_hf_on_a_left_padded_batch(pair) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    batch = model.prepare(PROMPTS)
    assert batch.attention_mask.sum(-1).unique().numel() > 1, "rows should have different lengths"
    real = batch.attention_mask.bool()
    assert (model(batch) - hf_logits(reference, batch))[real].abs().max().item() <= TOL


def test_hook_z_matches_o_proj_input_at_every_position(pair) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    batch = model.prepare(PROMPTS[:2])
    _, cache = model.run_with_cache(batch, names_filter=lambda n: n.endswith("attn.hook_z"))
    real = batch.attention_mask.bool()
    seen: dict[int, torch.Tensor] = {}
    handles = [
        o_proj(reference, layer).register_forward_pre_hook(
            lambda _m, args, layer=layer: seen.__setitem__(layer, args[0].detach().clone())
        )
        for layer in range(model.cfg.n_layers)
    ]
    try:
        hf_logits(reference, batch)
    finally:
        for handle in handles:
            handle.remove()
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"]
        assert tuple(z.shape) == (2, batch.input_ids.shape[1], model.cfg.n_heads, model.cfg.d_head)
        assert (z - seen[layer].view(z.shape))[real].abs().max().item() <= TOL, layer


def test_head_ablation_through_hook_z_equals_hf(pair) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    batch = model.prepare(PROMPTS[:2])
    clean, real = model(batch), batch.attention_mask.bool()
    for layer, head in [(0, 1), (model.cfg.n_layers - 1, model.cfg.n_heads - 1)]:
        ablated = model.run_with_hooks(
            batch, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero_head_hook(head))]
        )
        handle = o_proj(reference, layer).register_forward_pre_hook(
            zero_slice_pre_hook(head, model.cfg.d_head)
        )
        try:
            expected = hf_logits(reference, batch)
        finally:
            handle.remove()
        assert (ablated - expected)[real].abs().max().item() <= TOL
        assert (ablated - clean).abs().max().item() > 1e-4, "the ablation should change the logits"


@pytest.mark.parametrize("ablate", [False, True], ids=["plain", "ablated"])
def test_greedy_tokens_match_hf_generate(pair, ablate: bool) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    batch = model.prepare(PROMPTS)
    layer, head = model.cfg.n_layers - 1, 0
    hooks = [(f"blocks.{layer}.attn.hook_z", zero_head_hook(head))] if ablate else []
    handle = (
        o_proj(reference, layer).register_forward_pre_hook(zero_slice_pre_hook(head, model.cfg.d_head))
        if ablate
        else None
    )
    try:
        with torch.no_grad():
            out = reference.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=24,
                do_sample=False, pad_token_id=model.pad_token_id,
            )  # fmt: skip
    finally:
        if handle is not None:
            handle.remove()
    got = model.generate_tokens(batch, max_new_tokens=24, fwd_hooks=hooks)
    assert torch.equal(got.tokens, out[:, batch.input_ids.shape[1] :])


def test_an_image_is_refused_before_any_work(pair, images) -> None:  # type: ignore[no-untyped-def]
    model, _ = pair
    with pytest.raises(ValueError, match=r"got an image for prompt 1.*language model.*images=None"):
        model.prepare(["a", "b"], images=[None, images[0]])


def test_raw_template_passes_the_text_through(pair) -> None:  # type: ignore[no-untyped-def]
    model, _ = pair
    raw = model.with_template("raw")
    batch = raw.prepare(["Once upon a time"])
    expected = raw.tokenizer("Once upon a time")["input_ids"]
    assert batch.input_ids[0].tolist() == list(expected)


def test_in_memory_model_without_architectures_is_found_by_class() -> None:
    path = build_tiny_checkpoint("llama_lm")
    hf_model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager").eval()
    hf_model.config.architectures = None  # as a GGUF-loaded model has it
    model = load_vlm(path, hf_model=hf_model, processor=AutoTokenizer.from_pretrained(path))
    assert model.cfg.family == "language_model"
    assert model.cfg.n_layers == hf_model.config.num_hidden_layers


def test_base_model_without_chat_template_uses_raw_with_a_warning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = build_tiny_checkpoint("qwen3_lm", tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(path)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.warns(UserWarning, match="no chat template"):
        model = load_vlm(path)
    assert model.cfg.template == "raw"
