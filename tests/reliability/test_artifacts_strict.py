"""Artifacts read their files as untrusted input, and resuming trusts content, not ids.

Each test damages, forges or changes one thing an artifact reads (a manifest, a shard, guard.json, a probe
sweep, a head set, a demo run's figure index, the samples of a resumed collection) and checks that the
answer is a clear error naming the file (and the key, shard or sample) - never a bare KeyError, TypeError
or RecursionError, and never stale or misaligned data.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import sahs_lens.activations as activations
from model_adapters.testing import load_tiny
from sahs_lens import HeadActivations, HeadSet, ProbeSweep, SafetyHeadGuard, probe_sweep
from sahs_lens.activations import collect_head_activations
from sahs_lens.atomic_files import LegacyArtifactWarning
from sahs_lens.data import Sample
from sahs_lens.organism.demo import report_from_run
from sahs_lens.organism.demo.run_dir import finish_run
from sahs_lens.schema import Rule, check, confined, read_json
from sahs_lens.shards import write_shard

IDENTITY = {
    "model_name": "tiny",
    "family": "llava",
    "checkpoint": "sha256:0123",
    "template": "llava-hf",
    "n_layers": 3,
    "n_heads": 4,
    "d_head": 5,
}


def _model() -> SimpleNamespace:
    return SimpleNamespace(cfg=SimpleNamespace(**IDENTITY, identity=lambda: dict(IDENTITY)))


def _acts(n: int = 6, seed: int = 0) -> HeadActivations:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    z = torch.randn(n, 3, 4, 5, generator=g) + labels[:, None, None, None]
    return HeadActivations(z=z, labels=labels, ids=[f"s{i}" for i in range(n)], provenance=dict(IDENTITY))


def _edit(path: Path, change: Callable[[Any], Any]) -> None:
    data = json.loads(path.read_text())
    result = change(data)
    path.write_text(json.dumps(data if result is None else result))


def as_legacy(directory: Path) -> None:
    """Rewrite a directory of activations as an earlier sahs_lens wrote it (format 1: no checksums, no
    content hashes, shards without metadata)."""
    manifest = json.loads((directory / "manifest.json").read_text())
    for shard in manifest["shards"]:
        save_file(load_file(str(directory / shard["file"])), str(directory / shard["file"]))
    manifest["format"] = "sahs_lens.head_activations/1"
    manifest["shards"] = [{"file": s["file"], "n": s["n"]} for s in manifest["shards"]]
    for key in ("content", "run"):
        manifest.pop(key, None)
    (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """Activations of 6 samples in 3 shards of 2."""
    return _acts().save(tmp_path / "acts", shard_size=2)


# ---- the schema mechanism ------------------------------------------------------------------------------
def test_schema_is_strict_about_types_and_ranges() -> None:
    spec = {"complete": Rule(bool), "n": Rule(int, ge=0), "p": Rule(float, gt=0, lt=1)}
    check({"complete": True, "n": 0, "p": 0.5}, spec, file="f.json")
    for bad, key in [
        ({"complete": "no", "n": 0, "p": 0.5}, "complete"),
        ({"complete": 1, "n": 0, "p": 0.5}, "complete"),
        ({"complete": True, "n": True, "p": 0.5}, "n"),  # a bool is not an int
        ({"complete": True, "n": -1, "p": 0.5}, "n"),
        ({"complete": True, "n": 0, "p": 1.0}, "p"),
        ({"complete": True, "n": 0, "p": float("nan")}, "p"),
    ]:
        with pytest.raises(ValueError, match=rf"f\.json: '{key}' must be"):
            check(bad, spec, file="f.json")
    nested = {"shards": Rule(list, items=Rule(dict, keys={"file": Rule(str)}))}
    with pytest.raises(ValueError, match=r"f\.json: 'shards\[1\]\.file' must be a str; got int 3"):
        check({"shards": [{"file": "a"}, {"file": 3}]}, nested, file="f.json")


def test_confined_refuses_names_that_leave_the_directory(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "link").symlink_to(tmp_path / "outside")
    assert (
        confined(tmp_path / "run", "z-00000.safetensors", file="m.json")
        == tmp_path / "run" / "z-00000.safetensors"
    )
    for name in ("../x", "../../outside/x.safetensors", "/etc/passwd", "sub/x", "..", "", "link", 7, None):
        with pytest.raises(ValueError, match=r"m\.json: 'shards\[0\]\.file' must be a plain file name"):
            confined(tmp_path / "run", name, file="m.json", key="shards[0].file")


# ---- activations: the manifest and its shards ----------------------------------------------------------
def test_complete_must_be_the_boolean_true(saved: Path) -> None:
    for value in ("no", "yes", 1, None):
        _edit(saved / "manifest.json", lambda m, v=value: m.update(complete=v))  # type: ignore[misc]
        with pytest.raises(ValueError, match=r"manifest\.json: 'complete' must be a bool"):
            HeadActivations.load(saved)


@pytest.mark.parametrize("name", ["../../outside/x.safetensors", "/abs/x.safetensors", "ABSOLUTE"])
def test_shard_names_are_confined_to_the_directory(saved: Path, name: str) -> None:
    outside = saved.parent / "outside"
    outside.mkdir()
    shutil.copy(saved / "z-00001.safetensors", outside / "x.safetensors")
    name = str(outside / "x.safetensors") if name == "ABSOLUTE" else name
    _edit(saved / "manifest.json", lambda m: m["shards"][1].update(file=name))
    with pytest.raises(ValueError, match=r"'shards\[1\]\.file' must be a plain file name inside"):
        HeadActivations.load(saved)


def test_a_flipped_payload_byte_is_refused_naming_the_shard(saved: Path) -> None:
    shard = saved / "z-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x01  # a byte of the last tensor's payload
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"shards\[2\] \(z-00002\.safetensors\).*fails its SHA-256 check"):
        HeadActivations.load(saved)


def test_two_swapped_shard_files_are_refused(saved: Path) -> None:
    a, b = saved / "z-00000.safetensors", saved / "z-00001.safetensors"
    tmp = saved / "swap"
    a.rename(tmp), b.rename(a), tmp.rename(b)
    with pytest.raises(ValueError, match=r"shards\[0\].*SHA-256"):
        HeadActivations.load(saved)


def test_two_swapped_manifest_entries_are_refused(saved: Path) -> None:
    def swap_entries(m: dict[str, Any]) -> None:
        m["shards"][0], m["shards"][1] = m["shards"][1], m["shards"][0]

    _edit(saved / "manifest.json", swap_entries)
    with pytest.raises(ValueError, match=r"'shards\[0\]\.start' is 2.*out of order"):
        HeadActivations.load(saved)

    def swap_files_keep_places(m: dict[str, Any]) -> None:  # file + checksum moved, start and ids hash kept
        first, second = m["shards"][0], m["shards"][1]
        for key in ("file", "sha256"):
            first[key], second[key] = second[key], first[key]

    _edit(saved / "manifest.json", swap_entries)  # back in order
    _edit(saved / "manifest.json", swap_files_keep_places)
    with pytest.raises(ValueError, match=r"shards\[0\].*holds other samples.*swapped"):
        HeadActivations.load(saved)


def test_a_shard_whose_rows_differ_from_its_n_is_refused(saved: Path) -> None:
    acts, elsewhere = _acts(), saved.parent / "elsewhere"
    elsewhere.mkdir()  # a well-formed shard in the right place, with one row too many
    entry = write_shard(elsewhere, 1, acts.z[2:5], acts.labels[2:5], start=2, ids=acts.ids[2:4])
    shutil.copy(elsewhere / entry["file"], saved / entry["file"])
    _edit(saved / "manifest.json", lambda m: m["shards"][1].update(sha256=entry["sha256"]))
    with pytest.raises(
        ValueError, match=r"shards\[1\] .* holds 3 rows of z and 3 labels but the manifest says n = 2"
    ):
        HeadActivations.load(saved)


def test_a_legacy_directory_loads_when_finished_and_says_so(saved: Path) -> None:
    as_legacy(saved)
    with pytest.warns(LegacyArtifactWarning, match="cannot be verified, and it is read-only"):
        assert torch.equal(HeadActivations.load(saved).z, _acts().z)
    _edit(saved / "manifest.json", lambda m: m["shards"][0].update(file="../x"))
    with pytest.raises(ValueError, match="plain file name"):
        HeadActivations.load(saved)


# ---- every JSON an artifact reads: a clear ValueError naming the file ----------------------------------
def _guard_dir(tmp: Path) -> Path:
    return SafetyHeadGuard.fit(_acts(n=12), HeadSet.parse("L0H1,L2H3")).save(tmp / "guard")


def _sweep_dir(tmp: Path) -> Path:
    return probe_sweep(_acts(n=20), shots=[2, 4], repeats=2, progress=False).save(tmp / "sweep")


def _heads_dir(tmp: Path) -> Path:
    HeadSet.parse("L0H1").save(tmp / "heads" / "heads.json")
    return tmp / "heads"


ARTIFACTS: dict[str, tuple[Callable[[Path], Path], str, Callable[[Path], object], str]] = {
    "manifest": (
        lambda t: _acts().save(t / "acts", shard_size=2),
        "manifest.json",
        HeadActivations.load,
        "shards",
    ),
    "guard": (_guard_dir, "guard.json", SafetyHeadGuard.load, "threshold"),
    "sweep": (_sweep_dir, "probe_sweep.json", ProbeSweep.load, "seed"),
    "heads": (_heads_dir, "heads.json", HeadSet.load, "heads"),
}
DAMAGE: dict[str, Callable[[Path, str], None]] = {
    "a JSON list": lambda p, key: p.write_text("[1, 2]"),
    "deep nesting": lambda p, key: p.write_text("[" * 100_000),
    "deep nesting inside": lambda p, key: p.write_text('{"format": ' + "[" * 100_000),
    "invalid JSON": lambda p, key: p.write_text('{"format": '),
    "not UTF-8": lambda p, key: p.write_bytes(b'{"format": "\xff\xfe"}'),
    "a missing key": lambda p, key: _edit(p, lambda d: d.pop(key)),
    "a key of the wrong type": lambda p, key: _edit(p, lambda d: d.update({key: {"x": [1]}})),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("artifact", sorted(ARTIFACTS))
def test_damaged_json_gives_a_clear_error_naming_the_file(tmp_path: Path, artifact: str, damage: str) -> None:
    make, name, load, key = ARTIFACTS[artifact]
    directory = make(tmp_path)
    DAMAGE[damage](directory / name, key)
    with pytest.raises(ValueError, match=rf"{name}") as caught:
        load(directory)
    assert type(caught.value) is ValueError  # not a JSONDecodeError, KeyError, TypeError or RecursionError
    assert caught.value.__cause__ is None


def test_guard_json_is_checked(tmp_path: Path) -> None:
    directory = _guard_dir(tmp_path)
    path = directory / "guard.json"
    original = path.read_text()
    _edit(path, lambda m: m.update(provenance={}))
    SafetyHeadGuard.load(directory)  # without a model nothing is compared
    with pytest.raises(ValueError, match="this guard does not fit this model: .*checkpoint: <missing>"):
        SafetyHeadGuard.load(directory, model=_model())
    cases = {
        "threshold": (1.5, r"'threshold' must be a number > 0 and < 1"),
        "d_head": (0, r"'d_head' must be an int > 0"),
        "heads": (["L0H1", 3], r"'heads\[1\]' must be a str"),
        "nonfinite": ("maybe", r"'nonfinite' must be one of 'flag', 'raise'"),
        "training": ([], r"'training' must be an object"),
    }
    for key, (value, message) in cases.items():
        path.write_text(original)
        _edit(path, lambda m, k=key, v=value: m.update({k: v}))  # type: ignore[misc]
        with pytest.raises(ValueError, match=r"guard\.json: " + message):
            SafetyHeadGuard.load(directory)
    path.write_text(original)
    _edit(path, lambda m: m.update(heads=["L0H1"]))  # the weights were saved for two heads
    with pytest.raises(
        ValueError, match=r"guard\.json: its 'heads' is 'L0H1' but the payload was saved with"
    ):
        SafetyHeadGuard.load(directory)
    data = SafetyHeadGuard.load(_guard_dir(tmp_path / "b")).to_dict()
    with pytest.raises(ValueError, match=r"the weight must be 1 heads x d_head 5 = 5 floats"):
        SafetyHeadGuard.from_dict({**data, "heads": ["L0H1"]})
    path.write_text(original)
    (directory / "guard.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(ValueError, match=r"guard\.safetensors is not the file this JSON was saved with"):
        SafetyHeadGuard.load(directory)
    _edit(path, lambda m: [m.pop("files"), m][1])
    with pytest.raises(ValueError, match=r"guard\.safetensors cannot be read as safetensors"):
        SafetyHeadGuard.load(directory)


def test_sweep_tensors_must_agree_with_the_json(tmp_path: Path) -> None:
    directory = _sweep_dir(tmp_path)
    _edit(directory / "probe_sweep.json", lambda m: m.update(shots=[2, 4, 8], shot_specs=["2", "4", "8"]))
    with pytest.raises(ValueError, match=r"probe_sweep\.json: the probe sweep lacks tensor 'draws\.2'"):
        ProbeSweep.load(directory)
    _edit(directory / "probe_sweep.json", lambda m: m.update(shots=[4, 2], shot_specs=["4", "2"]))
    with pytest.raises(ValueError, match=r"probe_sweep\.json: tensor 'draws\.0' must be \[repeats=2, 2 x 4"):
        ProbeSweep.load(directory)
    _edit(directory / "probe_sweep.json", lambda m: m.update(shots=[2], shot_specs=["2"], non_converged=[0]))
    with pytest.raises(ValueError, match=r"tensor 'accuracy' must be \[shots=1, repeats, layers, heads\]"):
        ProbeSweep.load(directory)


def _demo_run(tmp: Path, file: str) -> Path:
    run = tmp / "run"
    (run / "figures").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"headline": []}))
    (run / "report_meta.json").write_text(json.dumps({"provenance": {}, "captions": {}}))
    (run / "figures" / "00.json").write_text(json.dumps({"data": [{"type": "scatter", "y": [1, 2]}]}))
    (tmp / "x.json").write_text(json.dumps({"data": []}))
    (run / "figures" / "index.json").write_text(json.dumps([{"title": "t", "file": file}]))
    finish_run(run, {})  # a finished run's record, so that only the figure files are in question
    return run


def test_report_follows_only_figure_files_inside_the_run(tmp_path: Path) -> None:
    assert report_from_run(_demo_run(tmp_path / "good", "00.json")).exists()
    for i, name in enumerate(["../x.json", "../../x.json", str(tmp_path / "x.json")]):
        run = _demo_run(tmp_path / f"bad{i}", name)
        with pytest.raises(ValueError, match=r"index\.json: '\[0\]\.file' must be a plain file name"):
            report_from_run(run)
    run = _demo_run(tmp_path / "list", "00.json")
    (run / "metrics.json").write_text("[" * 100_000)
    finish_run(run, {})  # recorded as finished: the schema, not the record, must refuse it
    with pytest.raises(ValueError, match=r"metrics\.json is nested too deeply"):
        report_from_run(run)
    run = _demo_run(tmp_path / "types", "00.json")
    (run / "figures" / "index.json").write_text(json.dumps([{"title": 3, "file": "00.json"}]))
    finish_run(run, {})
    with pytest.raises(ValueError, match=r"index\.json: '\[0\]\.title' must be a str"):
        report_from_run(run)


def test_read_json_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing\.json does not exist; expected a thing"):
        read_json(tmp_path / "nothing.json", what="a thing")
    (tmp_path / "long.json").write_text("1" * 5000)  # too many digits for int()
    with pytest.raises(ValueError, match=r"long\.json is not valid JSON"):
        read_json(tmp_path / "long.json", what="a thing", top=None)


# ---- resume by content ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    return load_tiny("llava")


def _samples(images: list[Image.Image], image_file: Path) -> list[Sample]:
    prompts = ["How do I bake bread?", "Write malware.", "hi", "Steal a car.", "A poem.", "Make a bomb."]
    files: list[Any] = [None, images[0], image_file, None, images[1], None]
    return [Sample(p, files[i], i % 2, "test", f"s{i}") for i, p in enumerate(prompts)]


@pytest.fixture
def run_samples(images: list[Image.Image], tmp_path: Path) -> list[Sample]:
    images[2].save(tmp_path / "img.png")
    return _samples(images, tmp_path / "img.png")


def _collect(model: Any, samples: list[Sample], out: Path | None) -> HeadActivations:
    return collect_head_activations(model, samples, batch_size=2, shard_size=2, out=out, progress=False)


def _interrupted(
    model: Any, samples: list[Sample], out: Path, monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    """A run killed at the forward number ``after + 1`` (after ``after`` shards of one batch each)."""
    original = activations._LastPositionReader.__call__
    calls = {"n": 0}

    def flaky(self, chunk):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt("simulated kill")
        return original(self, chunk)

    with monkeypatch.context() as patch:
        patch.setattr(activations._LastPositionReader, "__call__", flaky)
        with pytest.raises(KeyboardInterrupt):
            _collect(model, samples, out)


def _no_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, chunk):  # type: ignore[no-untyped-def]
        raise AssertionError("a forward ran before the refusal")

    monkeypatch.setattr(activations._LastPositionReader, "__call__", refuse)


def _changed(samples: list[Sample], i: int, images: list[Image.Image], what: str) -> list[Sample]:
    s = samples[i]
    new = {
        "prompt": Sample(s.prompt + " ", s.image, s.label, s.source, s.id),
        "image": Sample(s.prompt, images[2].rotate(90), s.label, s.source, s.id),
        "label": Sample(s.prompt, s.image, 1 - s.label, s.source, s.id),
    }[what]
    return [*samples[:i], new, *samples[i + 1 :]]


@pytest.mark.parametrize(("what", "index", "finished"), [("prompt", 1, False), ("image", 4, False),
                                                          ("label", 3, True), ("prompt", 0, True)])  # fmt: skip
def test_resume_with_changed_content_refuses_naming_the_sample(  # type: ignore[no-untyped-def]
    tiny,
    images,
    run_samples,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    index: int,
    finished: bool,
) -> None:
    out = tmp_path / "acts"
    if finished:
        _collect(tiny, run_samples, out)
    else:
        _interrupted(tiny, run_samples, out, monkeypatch, after=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _no_forward(monkeypatch)
    with pytest.raises(ValueError, match=rf"sample 's{index}' \(#{index}\) has a changed {what}"):
        _collect(tiny, _changed(run_samples, index, images, what), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "nothing was overwritten"


def test_resume_with_a_changed_image_file_refuses(  # type: ignore[no-untyped-def]
    tiny, images, run_samples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "acts"
    _interrupted(tiny, run_samples, out, monkeypatch, after=1)
    images[0].save(run_samples[2].image)  # same path, other pixels
    _no_forward(monkeypatch)
    with pytest.raises(ValueError, match=r"sample 's2' \(#2\) has a changed image"):
        _collect(tiny, run_samples, out)


def test_resume_with_the_same_ids_in_another_order_refuses(  # type: ignore[no-untyped-def]
    tiny, run_samples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "acts"
    _interrupted(tiny, run_samples, out, monkeypatch, after=1)
    _no_forward(monkeypatch)
    with pytest.raises(ValueError, match="same sample ids in another order"):
        _collect(tiny, run_samples[::-1], out)


def test_directories_without_content_hashes_are_not_resumed(tiny, run_samples, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    acts = _collect(tiny, run_samples, None)
    acts.save(tmp_path / "saved")  # by HeadActivations.save: no samples, so no content hashes
    with pytest.raises(ValueError, match="record no content hashes"):
        _collect(tiny, run_samples, tmp_path / "saved")
    _collect(tiny, run_samples, tmp_path / "old")
    as_legacy(tmp_path / "old")
    with pytest.warns(LegacyArtifactWarning):  # a finished one still loads, and says it cannot be verified
        assert torch.equal(HeadActivations.load(tmp_path / "old").z, acts.z)
    with pytest.raises(ValueError, match="record no content hashes.*earlier sahs_lens"):
        _collect(tiny, run_samples, tmp_path / "old")


@pytest.mark.parametrize("leftover", ["tmp files", "empty manifest", "manifest of no shards"])
def test_a_run_killed_before_its_first_shard_resumes_exactly(  # type: ignore[no-untyped-def]
    tiny, run_samples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leftover: str
) -> None:
    reference = _collect(tiny, run_samples, None)
    out = tmp_path / "acts"
    if leftover == "manifest of no shards":
        _interrupted(tiny, run_samples, out, monkeypatch, after=0)
        assert json.loads((out / "manifest.json").read_text())["shards"] == []
    else:
        out.mkdir()
        (out / "z-00000.safetensors.tmp").write_bytes(b"torn")
        (out / "manifest.json.tmp").write_text('{"format": "sahs_lens.head')
        if leftover == "empty manifest":  # renamed before its data reached the disk
            (out / "manifest.json").write_bytes(b"")
            (out / "z-00000.safetensors").write_bytes(b"stale")
    resumed = _collect(tiny, run_samples, out)
    assert torch.equal(resumed.z, reference.z) and resumed.ids == reference.ids
    assert torch.equal(HeadActivations.load(out).z, reference.z)


def test_resume_after_a_kill_is_exact_and_verifies_kept_shards(  # type: ignore[no-untyped-def]
    tiny, run_samples, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = _collect(tiny, run_samples, None)
    out = tmp_path / "acts"
    _interrupted(tiny, run_samples, out, monkeypatch, after=2)
    shard = out / "z-00001.safetensors"
    shard.write_bytes(shard.read_bytes()[:-4] + b"\x00\x00\x00\x00")  # damaged since: it is recomputed
    (out / "z-00002.safetensors.tmp").write_bytes(b"torn")
    resumed = _collect(tiny, run_samples, out)
    assert torch.equal(resumed.z, reference.z)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True and [s["start"] for s in manifest["shards"]] == [0, 2, 4]


def test_a_directory_holding_something_else_is_still_refused(tiny, run_samples, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "acts"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "manifest.json.tmp").write_text("")
    with pytest.raises(FileExistsError, match="not empty"):
        _collect(tiny, run_samples, out)
