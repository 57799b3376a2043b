"""Errors that used to come from deep inside torch, transformers or accelerate now come from the door.

Each case is a reproducer of the reliability issue ("Errors from deep inside", plus its vague messages):
what used to be an ``IndexError``, an ``AttributeError``, a shape ``RuntimeError`` or a message naming
an internal argument is now a ``ValueError`` or ``TypeError`` that says what was given, what was
expected and what to do, raised before any long work.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from model_adapters import VLMInputs, load_vlm
from model_adapters.hook_names import hook_z_name
from model_adapters.testing import build_tiny_checkpoint
from sahs_lens import HeadSet
from sahs_lens.cli import main
from sahs_lens.interventions import ablation_curve, patch_heads

from .conftest import Guarded


# ---- hooks, patches, batches ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["hf", "bridge"])
def test_a_hook_that_returns_the_wrong_shape_is_named(backend: str) -> None:
    model = load_vlm(build_tiny_checkpoint("llava"), backend=backend)
    batch = model.prepare(["hello there"])
    for bad, what in (
        (lambda z, hook: z[:, :, :1], r"a tensor of shape \(1, \d+, 1, 16\)"),
        (lambda z, hook: [z], "list"),
    ):
        with pytest.raises(
            ValueError, match=rf"a hook on blocks\.0\.attn\.hook_z returned {what}; a hook must return"
        ):
            model.run_with_hooks(batch, fwd_hooks=[(hook_z_name(0), bad)])
    reference = model(batch)  # the model is as it was: no hook left behind
    assert torch.equal(
        model.run_with_hooks(batch, fwd_hooks=[(hook_z_name(0), lambda z, hook: None)]), reference
    )


def test_patch_heads_with_a_source_of_too_few_heads(llava: Guarded) -> None:
    model = llava.model
    cfg = model.cfg
    source = torch.zeros(1, cfg.n_layers, cfg.n_heads - 1, cfg.d_head)
    with (
        pytest.raises(ValueError, match=r"the patch source has shape .* but this model's heads need"),
        patch_heads(model, HeadSet([(0, cfg.n_heads - 1)]), source),
    ):
        pass


def test_a_batch_prepared_by_another_model(llava: Guarded) -> None:
    model = llava.model
    batch = model.prepare(["hello"])
    foreign = VLMInputs(batch.input_ids.clone(), batch.attention_mask, prompts=["hello"])
    foreign.input_ids[0, -1] = model.cfg.d_vocab + 5  # a token of a larger vocabulary
    with pytest.raises(
        ValueError, match=r"outside this model's vocabulary of \d+: it was prepared by another model"
    ):
        model(foreign)
    hand_made = VLMInputs(batch.input_ids.float(), batch.attention_mask)
    with pytest.raises(ValueError, match="expected integer token ids"):
        model(hand_made)


def test_a_processor_of_another_family_is_refused_at_load() -> None:
    from transformers import AutoProcessor, AutoTokenizer

    other = AutoProcessor.from_pretrained(build_tiny_checkpoint("gemma3"))
    with pytest.raises(
        ValueError, match=r"processor= is a Gemma3Processor whose image token .* belongs to another model"
    ):
        load_vlm(build_tiny_checkpoint("llava"), processor=other)
    with pytest.raises(ValueError, match="which has no image token"):
        load_vlm(
            build_tiny_checkpoint("llava"),
            processor=AutoTokenizer.from_pretrained(build_tiny_checkpoint("llama_lm")),
        )


def test_attach_hf_on_what_is_not_a_hugging_face_model(llava: Guarded) -> None:
    guard = llava.guards[0]
    with (
        pytest.raises(TypeError, match="this is a HookedVLM: use guard.generate"),
        guard.attach_hf(llava.model),  # type: ignore[arg-type]
    ):
        pass
    with (
        pytest.raises(TypeError, match="needs a Hugging Face model .* got Linear"),
        guard.attach_hf(nn.Linear(2, 2)),
    ):
        pass


# ---- device maps ------------------------------------------------------------------------------------------
def _load_mapped(**kwargs: object) -> None:
    load_vlm(build_tiny_checkpoint("llava"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"device_map": {"no.such.module": "cpu"}},
            r"device_map names 'no\.such\.module', which is not a module of this model; .*top-level modules: 'model', 'lm_head'",
        ),
        (
            {"device_map": {"model.vision_tower": "cpu", "lm_head": "cpu"}},
            r"leaves \d+ parameters without a device \(e\.g\. model\.multi_modal_projector",
        ),
        (
            {"device_map": "auto", "max_memory": {0: "1GiB", "cpu": "1GiB"}},
            r"max_memory key 0: this machine has no CUDA device",
        ),
        (
            {"device_map": "auto", "max_memory": {"cpu": "lots"}},
            r"max_memory\['cpu'\] = 'lots': a byte count or a size like '20GiB'",
        ),
    ],
)
def test_device_maps_are_checked_against_the_model_before_loading(
    kwargs: dict[str, object], message: str
) -> None:
    if torch.cuda.is_available() and "max_memory" in kwargs and 0 in kwargs["max_memory"]:  # type: ignore[operator]
        pytest.skip("this machine has a GPU 0")
    with pytest.raises(ValueError, match=message):
        _load_mapped(**kwargs)


def test_an_offload_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="offload_folder .* is a file; give a directory"):
        _load_mapped(device_map={"": "cpu"}, offload_folder=tmp_path / "a_file")


def test_a_whole_model_map_and_a_complete_map_still_load() -> None:
    model = load_vlm(build_tiny_checkpoint("llava"), device_map={"": "cpu"})
    assert model.cfg.n_layers > 0


# ---- the command line and the library's settings --------------------------------------------------------
def test_ablate_mean_without_a_reference_says_so_before_loading(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ablate", "--heads", "L0H0,L0H1", "--ks", "1", "--data", "harmful_text:test@2", "--mode", "mean",
            "--out", "/nonexistent/never-written"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--mode mean takes the heads' values from reference prompts: give --reference DIR" in err
    assert "Traceback" not in err


def test_ablation_curve_checks_its_mode_before_the_baseline_pass(
    llava: Guarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sahs_lens.interventions as interventions

    def no_generation(*args: object, **kwargs: object) -> None:
        raise AssertionError("generated before the mode was checked")

    monkeypatch.setattr(interventions, "generate_all", no_generation)
    samples = [type("S", (), {"prompt": "x", "image": None, "label": 1})()]
    with pytest.raises(ValueError, match="mode='mean' takes its values from reference prompts"):
        ablation_curve(llava.model, samples, HeadSet([(0, 0)]), ks=[1], mode="mean")


def test_an_empty_model_directory(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"holds no config\.json \(it is empty\): it is not a Hugging Face checkpoint"
    ):
        load_vlm(tmp_path)


def test_compare_names_its_own_setting(llava: Guarded) -> None:
    from sahs_lens.detectors.compare import compare as compare_detectors

    with pytest.raises(ValueError, match=r"target_fpr must be a number strictly between 0 and 1; got 1\.5"):
        compare_detectors(None, [], [], detectors="text_only", target_fpr=1.5)
    with pytest.raises(ValueError, match=r"bootstrap must be an int >= 0; got -1"):
        compare_detectors(None, [], [], detectors="text_only", bootstrap=-1)


def test_two_csv_files_of_the_same_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "prompts.csv").write_text("prompt\nhow do I bake bread?\n")
    specs = [f"csv:{tmp_path / f}/prompts.csv:prompt:0" for f in ("a", "b")]
    argv = ["extract", "--data", specs[0], "--data", specs[1], "--out", str(tmp_path / "acts")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "both give a sample with id 'prompts:" in err and "Rename one of the files" in err
    assert not (tmp_path / "acts").exists()


def test_a_torn_progress_file_says_it_can_be_deleted(tmp_path: Path) -> None:
    from sahs_lens.shards import read_progress

    (tmp_path / "progress-00001.json").write_text('{"format": "sahs_lens.head_act')
    with pytest.raises(
        ValueError, match=r"progress-00001\.json is not valid JSON.*delete .* and run the same command again"
    ):
        read_progress(tmp_path)
