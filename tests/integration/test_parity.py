"""HookedVLM must agree with Hugging Face exactly, on tiny checkpoints of every supported family.

The reference is a separately loaded Hugging Face model (eager attention) from the same checkpoint
directory; head interventions on it are done with forward pre-hooks on each layer's ``o_proj``, whose input
is the concatenation of the heads' outputs (``hook_z``). Its inputs are checked against the family's own
processor and chat template (``processor.apply_chat_template(..., tokenize=True)``), and its positions are
computed here from the attention mask, as Hugging Face's ``generate`` computes them for a left-padded prefill.
"""

from __future__ import annotations

import pytest
import torch
from conftest import zero_head_hook, zero_slice_pre_hook
from transformers import AutoModelForImageTextToText, AutoProcessor

from model_adapters import HookedVLM, family_for, load_vlm
from model_adapters.structure import find_language_model
from model_adapters.testing import build_tiny_checkpoint, tiny_families

FAMILIES = tiny_families()
# every family on the hf backend, and on the bridge where TransformerLens supports it
CASES = [(f, "hf") for f in FAMILIES] + [(f, "bridge") for f in FAMILIES if family_for(f).bridge]
TOL = 1e-5
PROMPTS = ["How do I bake bread?", "Write a poem about the sea and the sky, please.", "hi"]


@pytest.fixture(scope="module", params=CASES, ids=[f"{f}-{b}" for f, b in CASES])
def pair(request: pytest.FixtureRequest) -> tuple[HookedVLM, torch.nn.Module]:
    family, backend = request.param
    path = build_tiny_checkpoint(family)
    model = load_vlm(path, backend=backend)
    assert model.backend == backend
    reference = AutoModelForImageTextToText.from_pretrained(
        path, attn_implementation="eager", dtype=torch.float32
    ).eval()
    return model, reference


def hf_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens, as Hugging Face's ``generate`` gives a left-padded prefill."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def hf_logits(reference: torch.nn.Module, batch) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """What Hugging Face gives the batch: positions counted over real tokens (as its generate does for a
    left-padded prefill), except for mRoPE families, which compute their own from the mask."""
    family = family_for(reference.config.architectures[0])
    positions = {"position_ids": hf_positions(batch.attention_mask)} if family.positions == "mask" else {}
    with torch.no_grad():
        return reference(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, **positions, **batch.model_kwargs
        ).logits


def o_proj(model: HookedVLM, reference: torch.nn.Module, layer: int) -> torch.nn.Module:
    return find_language_model(reference).attention[layer].o_proj  # type: ignore[no-any-return]


def test_single_prompt_logits_match(pair, images) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    batch = model.prepare([PROMPTS[0]], images=[images[0]])
    diff = (model(batch) - hf_logits(reference, batch)).abs().max().item()
    assert diff <= TOL


def test_left_padded_batch_matches_hf_and_unpadded_rows(pair, images) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    row_images = [images[0], None, images[1]]
    batch = model.prepare(PROMPTS, images=row_images)
    assert batch.attention_mask.sum(-1).unique().numel() > 1, "rows should have different lengths"
    logits = model(batch)
    real = batch.attention_mask.bool()  # padding positions' logits are meaningless (and depend on their ids)
    assert (logits - hf_logits(reference, batch))[real].abs().max().item() <= TOL
    for row, (prompt, image) in enumerate(zip(PROMPTS, row_images, strict=True)):
        alone = model.prepare([prompt], images=[image])
        n = alone.input_ids.shape[1]
        assert torch.equal(batch.input_ids[row, -n:], alone.input_ids[0])
        assert (logits[row, -n:] - model(alone)[0]).abs().max().item() <= TOL


def test_hook_z_shape_and_matches_o_proj_input(pair, images) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    batch = model.prepare(PROMPTS[:2], images=[images[0], images[1]])
    _, cache = model.run_with_cache(batch, names_filter=lambda n: n.endswith("attn.hook_z"))
    cfg = model.cfg
    for layer in range(cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"]
        assert tuple(z.shape) == (2, batch.input_ids.shape[1], cfg.n_heads, cfg.d_head)
        seen: dict[str, torch.Tensor] = {}

        def record(_module, args, seen=seen):  # type: ignore[no-untyped-def]
            seen["z"] = args[0].detach().clone()

        handle = o_proj(model, reference, layer).register_forward_pre_hook(record)
        try:
            hf_logits(reference, batch)
        finally:
            handle.remove()
        hf_z = seen["z"].view(z.shape)
        real = batch.attention_mask.bool()
        assert (z - hf_z)[real].abs().max().item() <= TOL  # every real position, image tokens included


def processor_inputs(path, prompts, images) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    """The family's own preprocessing of a batch, with nothing of ``model_adapters`` in between: the chat
    template tokenized by ``processor.apply_chat_template``, or, for a processor without a chat template
    (PaliGemma), ``processor(text=..., images=...)``, which lays out the prompt itself."""
    processor = AutoProcessor.from_pretrained(path)
    if getattr(processor, "chat_template", None):
        conversations = [
            [
                {
                    "role": "user",
                    "content": ([{"type": "image", "image": im}] if im is not None else [])
                    + [{"type": "text", "text": p}],
                }
            ]
            for p, im in zip(prompts, images, strict=True)
        ]
        return dict(
            processor.apply_chat_template(
                conversations, add_generation_prompt=True, tokenize=True, return_dict=True,
                return_tensors="pt", padding=True, padding_side="left",
            )
        )  # fmt: skip
    processor.tokenizer.padding_side = "left"
    return dict(processor(text=list(prompts), images=list(images), return_tensors="pt", padding=True))


def test_prepare_equals_the_familys_processor_and_chat_template(pair, images) -> None:  # type: ignore[no-untyped-def]
    """``prepare`` with the family's default template gives exactly the ids, mask and image tensors of the
    family's own processor and chat template, on a left-padded batch of rows with and without images."""
    model, reference = pair
    path = reference.name_or_path
    prompts = list(PROMPTS)
    rows = [images[0], None, images[2]]
    if not getattr(AutoProcessor.from_pretrained(path), "chat_template", None):
        rows = [images[0], images[1], images[2]]  # PaliGemma's processor takes only rows with an image
    batch = model.prepare(prompts, images=rows)
    expected = processor_inputs(path, prompts, rows)
    assert batch.attention_mask.sum(-1).unique().numel() > 1, "rows should have different lengths"
    assert torch.equal(batch.input_ids, expected.pop("input_ids"))
    assert torch.equal(batch.attention_mask, expected.pop("attention_mask"))
    for key, value in expected.items():
        if key == "labels" or (
            key in ("token_type_ids", "mm_token_type_ids") and key not in batch.model_kwargs
        ):
            continue  # training labels (PaliGemma's processor adds them) and bookkeeping the model does not take
        assert key in batch.model_kwargs, key
        assert torch.equal(batch.model_kwargs[key].to(value.dtype), value), key


def test_zero_ablation_through_hook_z_equals_hf(pair, images) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    cfg = model.cfg
    batch = model.prepare(PROMPTS[:2], images=[images[0], None])
    clean = model(batch)
    for layer, head in [(0, 1), (cfg.n_layers - 1, cfg.n_heads - 1)]:
        ablated = model.run_with_hooks(
            batch, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero_head_hook(head))]
        )
        handle = o_proj(model, reference, layer).register_forward_pre_hook(
            zero_slice_pre_hook(head, cfg.d_head)
        )
        try:
            expected = hf_logits(reference, batch)
        finally:
            handle.remove()
        real = batch.attention_mask.bool()
        assert (ablated - expected)[real].abs().max().item() <= TOL
        assert (ablated - clean).abs().max().item() > 1e-4, "the ablation should change the logits"


def hf_generate(reference: torch.nn.Module, batch, n: int) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        out = reference.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            **batch.model_kwargs,
            max_new_tokens=n,
            do_sample=False,
        )
    return out[:, batch.input_ids.shape[1] :]


@pytest.mark.parametrize("mode", ["plain", "reading_hook", "ablation_hook"])
def test_greedy_generation_matches_hf(pair, images, mode: str) -> None:  # type: ignore[no-untyped-def]
    model, reference = pair
    batch = model.prepare(PROMPTS, images=[images[0], None, images[2]])
    hooks = []
    handle = None
    seen_steps: list[int] = []
    if mode == "reading_hook":

        def read(z, hook):  # type: ignore[no-untyped-def]
            seen_steps.append(z.shape[1])
            return None

        hooks = [("blocks.0.attn.hook_z", read)]
    elif mode == "ablation_hook":
        layer, head = model.cfg.n_layers - 1, 0
        hooks = [(f"blocks.{layer}.attn.hook_z", zero_head_hook(head))]
        handle = o_proj(model, reference, layer).register_forward_pre_hook(
            zero_slice_pre_hook(head, model.cfg.d_head)
        )
    try:
        expected = hf_generate(reference, batch, 32)
    finally:
        if handle is not None:
            handle.remove()
    got = model.generate_tokens(batch, max_new_tokens=32, fwd_hooks=hooks)
    assert got.tokens.shape == expected.shape
    assert torch.equal(got.tokens, expected)
    if mode == "reading_hook":
        assert seen_steps[0] == batch.input_ids.shape[1] and set(seen_steps[1:]) == {1}
        assert len(seen_steps) == expected.shape[1]


@pytest.mark.parametrize(("family", "backend"), CASES)
def test_bf16_runs_end_to_end(images, family: str, backend: str) -> None:  # type: ignore[no-untyped-def]
    model = load_vlm(build_tiny_checkpoint(family), dtype=torch.bfloat16, backend=backend)
    batch = model.prepare(PROMPTS[:2], images=[images[0], None])
    assert (
        batch.model_kwargs.get("pixel_values") is None
        or batch.model_kwargs["pixel_values"].dtype == torch.bfloat16
    )
    logits, cache = model.run_with_cache(batch, names_filter="blocks.0.attn.hook_z")
    assert torch.isfinite(logits.float()).all()
    assert cache["blocks.0.attn.hook_z"].dtype == torch.bfloat16
    texts = model.generate(batch, max_new_tokens=4)
    assert len(texts) == 2


def test_exactly_one_bos_per_row(pair, images) -> None:  # type: ignore[no-untyped-def]
    """Parity on identical ids cannot see a doubled BOS (chat template + tokenizer both adding one)."""
    model, _ = pair
    bos = model.tokenizer.bos_token_id
    if bos is None:
        pytest.skip("this tokenizer has no BOS token")
    batch = model.prepare(PROMPTS, images=[images[0], None, images[1]])
    counts = (batch.input_ids == bos).sum(-1).tolist()
    assert counts == [1, 1, 1]


@pytest.mark.parametrize("family", [f for f in FAMILIES if family_for(f).bridge])
def test_collected_activations_are_identical_on_both_backends(family: str, images) -> None:  # type: ignore[no-untyped-def]
    from sahs_lens import collect_head_activations
    from sahs_lens.data import Sample

    path = build_tiny_checkpoint(family)
    samples = [
        Sample(p, im, i % 2, "test", f"s{i}")
        for i, (p, im) in enumerate(zip(PROMPTS, [images[0], None, images[2]], strict=True))
    ]
    acts = {
        backend: collect_head_activations(
            load_vlm(path, backend=backend), samples, batch_size=2, progress=False
        )
        for backend in ("hf", "bridge")
    }
    assert torch.equal(acts["hf"].z, acts["bridge"].z)
    assert acts["hf"].provenance["backend"] == "hf" and acts["bridge"].provenance["backend"] == "bridge"
    acts["hf"].check_compatible(acts["bridge"])  # the backend is recorded, not compared
