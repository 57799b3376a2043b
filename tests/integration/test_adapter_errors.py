"""Bad input to model_adapters gets a clear error, and nothing is left behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from model_adapters import family_for, load_vlm, supported_families
from model_adapters.testing import build_tiny_checkpoint, load_tiny


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_tiny("llava")


def test_image_count_must_match_prompt_count(model, images) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="got 3 images for 2 prompts; pass one image"):
        model.prepare(["a", "b"], images=images[:3])
    with pytest.raises(ValueError, match="single image for 2 prompts"):
        model.prepare(["a", "b"], images=images[0])


def test_template_that_cannot_place_an_image(model, images) -> None:  # type: ignore[no-untyped-def]
    raw = model.with_template("raw")
    with pytest.raises(ValueError, match="cannot place an image"):
        raw.prepare(["Describe this picture."], images=[images[0]])
    # with the image token written by the user it works
    batch = raw.prepare(["USER: <image>\nDescribe this picture. ASSISTANT:"], images=[images[0]])
    assert batch.model_kwargs["pixel_values"].shape[0] == 1


def test_unknown_template_lists_the_known_ones(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="llava-hf, raw, vicuna_v1"):
        model.with_template("alpaca")


def test_corrupt_and_missing_image_files_are_named(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    with pytest.raises(ValueError, match="broken.png"):
        model.prepare(["Describe it."], images=[bad])
    with pytest.raises(ValueError, match="missing.jpg does not exist"):
        model.prepare(["Describe it."], images=[tmp_path / "missing.jpg"])
    with pytest.raises(TypeError, match="file paths, PIL images or None"):
        model.prepare(["Describe it."], images=[42])


def test_unknown_architecture_lists_supported_families(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="llava"):
        family_for("FooVisionForConditionalGeneration")
    assert "llava" in supported_families() and "language_model" in supported_families()


def test_unknown_vlm_architecture_loads_by_structure_with_a_warning(tmp_path: Path, images) -> None:  # type: ignore[no-untyped-def]
    """An image-text-to-text checkpoint whose architecture no family names loads as ``generic_vlm``, with a
    warning that names what was assumed, and agrees with Hugging Face (logits, prepare = its processor)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = build_tiny_checkpoint("llava", tmp_path / "ck")
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["FooVisionForConditionalGeneration"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="FooVisionForConditionalGeneration has no family.*generic"):
        model = load_vlm(path)
    assert model.cfg.family == "generic_vlm"
    batch = model.prepare(["Describe it.", "hi"], images=[images[0], None])
    processor = AutoProcessor.from_pretrained(path)
    conversations = [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": images[0]}, {"type": "text", "text": "Describe it."}],
            }
        ],
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    ]
    expected = processor.apply_chat_template(
        conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        padding=True, padding_side="left",
    )  # fmt: skip
    assert torch.equal(batch.input_ids, expected["input_ids"])
    assert torch.equal(batch.model_kwargs["pixel_values"], expected["pixel_values"])
    reference = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="eager").eval()
    positions = (batch.attention_mask.cumsum(-1) - 1).masked_fill(batch.attention_mask == 0, 1)
    with torch.no_grad():
        hf = reference(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=positions,
                       **batch.model_kwargs).logits  # fmt: skip
    real = batch.attention_mask.bool()
    assert (model(batch) - hf)[real].abs().max().item() <= 1e-5


def test_a_model_type_nothing_knows_is_refused_with_the_list(tmp_path: Path) -> None:
    path = build_tiny_checkpoint("llava", tmp_path / "ck")
    config = json.loads((path / "config.json").read_text())
    config["architectures"] = ["FooVisionModel"]
    (path / "config.json").write_text(json.dumps(config))
    from transformers import AutoConfig

    loaded = AutoConfig.from_pretrained(path)
    loaded.model_type = "foo_vision"  # as a config of an architecture transformers does not know
    with pytest.raises(
        ValueError, match="unsupported model family or architecture 'FooVisionModel'.*language_model"
    ):
        load_vlm(path, hf_model=_Stub(loaded))


class _Stub(torch.nn.Module):
    def __init__(self, config) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.config = config


def test_missing_checkpoint_directory() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_vlm("./no/such/checkpoint")


def test_unknown_hook_name_suggests_nearest(model) -> None:  # type: ignore[no-untyped-def]
    batch = model.prepare(["hi"])
    with pytest.raises(ValueError, match="did you mean 'blocks.1.attn.hook_z'"):
        model.run_with_hooks(batch, fwd_hooks=[("blocks.1.attn.hook_zz", lambda z, hook: z)])
    with (
        pytest.raises(ValueError, match="unknown hook name"),
        model.hooks([("blocks.9.attn.hook_z", lambda z, hook: z)]),
    ):
        pass
    with pytest.raises(ValueError, match="unknown hook name"):
        model.run_with_cache(batch, names_filter="blocks.0.atn.hook_z")


def test_prompt_longer_than_context() -> None:
    model = load_tiny("llava", max_positions=40)
    with pytest.raises(ValueError, match="the model's context is 40 tokens"):
        model.prepare(["word " * 60])


def count_hooks(model) -> int:  # type: ignore[no-untyped-def]
    return sum(len(hp.fwd_hooks) for hp in model.hook_dict.values())


def test_hook_that_raises_leaves_no_hook_attached(model) -> None:  # type: ignore[no-untyped-def]
    batch = model.prepare(["hi"])
    before = count_hooks(model)

    def boom(z, hook):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.run_with_hooks(batch, fwd_hooks=[("blocks.0.attn.hook_z", boom)])
    with pytest.raises(RuntimeError, match="boom"):
        model.generate(batch, max_new_tokens=3, fwd_hooks=[("blocks.1.attn.hook_z", boom)])
    assert count_hooks(model) == before
    clean = model(batch)
    assert torch.isfinite(clean).all()


def test_loading_never_spawns_a_subprocess(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    path = build_tiny_checkpoint("llava", tmp_path / "ck")
    # a checkpoint without a processor makes the bridge try `pip install torchvision`: it must not
    (path / "processor_config.json").unlink()
    calls: list[object] = []

    def forbidden(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        raise AssertionError(f"subprocess spawned: {args}")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(subprocess, "check_call", forbidden)
    monkeypatch.setattr(subprocess, "run", forbidden)
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(build_tiny_checkpoint("llava"))
    model = load_vlm(path, processor=processor)
    model.generate(model.prepare(["hi"]), max_new_tokens=2)
    assert calls == []


def test_install_pulls_no_vision_extras_for_torch() -> None:
    """The install must not bring the torch vision package: its registry wheel breaks the CPU torch."""
    import importlib.util

    assert importlib.util.find_spec("torch" + "vision") is None


# ---- backends, hub ids, devices (issue: one seam for every model) -------------------------------------


def test_unknown_backend_lists_the_backends() -> None:
    with pytest.raises(ValueError, match="unknown backend 'tl'; choose one of auto, bridge, hf"):
        load_vlm(build_tiny_checkpoint("llava"), backend="tl")


def test_bridge_for_a_family_it_cannot_wrap_suggests_hf() -> None:
    from model_adapters.backends import choose_backend
    from model_adapters.registry import Family

    orphan = Family("orphan", ("OrphanForConditionalGeneration",), {}, "chat", bridge=False)
    with pytest.raises(ValueError, match="cannot wrap the orphan family.*supports .*llava.*backend='hf'"):
        choose_backend("bridge", orphan, full_hooks=False)
    assert choose_backend("auto", orphan, full_hooks=True) == "hf"
    assert choose_backend("auto", family_for("llava"), full_hooks=True) == "bridge"
    assert choose_backend("auto", family_for("llava"), full_hooks=False) == "hf"


def test_auto_backend_and_repr_name_the_backend() -> None:
    path = build_tiny_checkpoint("llava")
    assert load_vlm(path).backend == "hf" and "backend=hf" in repr(load_vlm(path))
    full = load_vlm(path, full_hooks=True)
    assert full.backend == "bridge" and "blocks.0.hook_resid_pre" in full.hook_names
    with pytest.raises(AttributeError, match="'hf' backend, which has no TransformerBridge"):
        load_vlm(path).bridge  # noqa: B018


@pytest.mark.parametrize(
    "hub_id", ["llava-hf/llava-1.5-7b-hf", "llava-hf/llava-v1.6-mistral-7b-hf", "org/model"]
)
def test_a_hub_id_is_read_as_a_hub_id(hub_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError) as info:
        load_vlm(hub_id)
    message = str(info.value)
    assert f"{hub_id!r} is read as a Hugging Face hub id" in message
    assert "not in the local Hugging Face cache" in message and "HF_HUB_OFFLINE is set" in message
    assert "local checkpoint directory" in message and "does not exist" not in message
    assert f"hf download {hub_id}" in message and "--model /models/" in message  # the CLI's words too


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("gpu", "not a device name"),
        ("cuda", "asks for CUDA"),
        ("cuda:3", "CUDA"),
        ("mps", "MPS"),
    ],
)
def test_a_device_this_machine_lacks_is_a_clear_error(device: str, message: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=message):
        load_vlm(build_tiny_checkpoint("llava"), device=device)


def test_an_architecture_with_no_hookable_attention_says_what_is_missing() -> None:
    from torch import nn

    from model_adapters.structure import find_language_model

    class NoAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))

    with pytest.raises(ValueError, match=r"self_attn\.o_proj.*supported_families"):
        find_language_model(NoAttention())


def test_hf_backend_cache_names_the_hook_an_analysis_needs() -> None:
    model = load_vlm(build_tiny_checkpoint("llava"), backend="hf")
    batch = model.prepare(["hi"])
    _, cache = model.run_with_cache(batch, names_filter=lambda n: n.endswith("hook_z"), pos_slice=-1)
    assert tuple(cache["blocks.0.attn.hook_z"].shape) == (1, 1, model.cfg.n_heads, model.cfg.d_head)
    for analysis in ("stack_head_results", "accumulated_resid", "decompose_resid", "logit_attrs"):
        with pytest.raises(NotImplementedError, match=f"{analysis} needs .*backend='bridge'"):
            getattr(cache, analysis)()
    _, full = load_vlm(build_tiny_checkpoint("llava"), backend="bridge").run_with_cache(batch)
    assert full.stack_head_results(layer=-1).shape[0] > 0  # the bridge has what the analysis needs


def test_more_images_in_a_raw_prompt_than_given(images) -> None:  # type: ignore[no-untyped-def]
    raw = load_tiny("llava").with_template("raw")
    with pytest.raises(ValueError, match="2 image tokens .* 1 image"):
        raw.prepare(["USER: <image> <image> two? ASSISTANT:"], images=[images[0]])


@pytest.mark.parametrize(
    ("family", "processor_class", "video"),
    [
        ("internvl", "InternVLProcessor", {"video_processor_type": "InternVLVideoProcessor", "size": {"height": 32, "width": 32}}),
        ("smolvlm", "SmolVLMProcessor", {"video_processor_type": "SmolVLMVideoProcessor", "num_frames": 64}),
        ("qwen2_5_vl", "Qwen2_5_VLProcessor", {"video_processor_type": "Qwen2VLVideoProcessor"}),
        ("qwen3_vl", "Qwen3VLProcessor", {"video_processor_type": "Qwen3VLVideoProcessor"}),
    ],
)  # fmt: skip
def test_a_processor_that_needs_torchvision_falls_back_to_images_only(
    family: str, processor_class: str, video: dict[str, object], tmp_path: Path, images
) -> None:  # type: ignore[no-untyped-def]
    """Real InternVL / SmolVLM checkpoints name a processor with a video part that needs torchvision."""
    import shutil

    real = tmp_path / family
    shutil.copytree(build_tiny_checkpoint(family), real)
    config = json.loads((real / "processor_config.json").read_text())
    config["processor_class"] = processor_class
    config.pop("image_placeholder_token", None)
    (real / "processor_config.json").write_text(json.dumps(config))
    (real / "video_preprocessor_config.json").write_text(json.dumps(video))
    with pytest.warns(UserWarning, match="needs torchvision.*image-only processor"):
        model = load_vlm(real, backend="hf")
    tiny = load_vlm(build_tiny_checkpoint(family), backend="hf")
    a = model.prepare(["Describe this image.", "hi"], images=[images[0], None])
    b = tiny.prepare(["Describe this image.", "hi"], images=[images[0], None])
    assert torch.equal(a.input_ids, b.input_ids)
    assert all(torch.equal(a.model_kwargs[k], b.model_kwargs[k]) for k in b.model_kwargs)


@pytest.mark.parametrize("backend", ["hf", "bridge"])
def test_hooked_vlm_offers_the_surface_the_method_uses(backend: str) -> None:
    from model_adapters import VLM

    assert isinstance(load_vlm(build_tiny_checkpoint("llava"), backend=backend), VLM)


def test_loading_without_torchvision_does_not_advise_installing_it() -> None:
    """transformers' PIL fallback is kept; its advice to install torchvision (which the README warns breaks
    CPU installs) is not printed."""
    import subprocess
    import sys

    code = "from model_adapters.testing import load_tiny; load_tiny('llava')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Install torchvision" not in done.stderr + done.stdout
