"""Artifacts cannot mix or be downgraded: an interrupted save, an edited JSON or a format set back by hand
is refused at load with a message that says what happened and what to do (``sahs_lens.atomic_files``).

The cases are the reproducers of the reliability issue: a save killed between its two files, ``guard.json``
with its heads reordered, a sweep whose accuracies are NaN or 7.0, a manifest set back to format 1 (which
once switched every SHA-256 check off), and a manifest listing one sample id twice.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import sahs_lens.guard.detector as guard_module
import sahs_lens.probes.sweep as sweep_module
from sahs_lens import HeadActivations, HeadSet, ProbeSweep, SafetyHeadGuard, probe_sweep
from sahs_lens.atomic_files import LegacyArtifactWarning, write_atomic
from sahs_lens.schema import sha256_file

from .test_artifacts_strict import _acts, _edit, as_legacy


class Killed(BaseException):
    """What a SIGKILL between two writes looks like from the inside: nothing after it runs."""


def _kill_before_json(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed

    monkeypatch.setattr(module, "write_json_atomic", killed)


def _guard(seed: int, heads: str = "L0H1,L2H3") -> SafetyHeadGuard:
    return SafetyHeadGuard.fit(_acts(n=12, seed=seed), HeadSet.parse(heads))


def _sweep(seed: int = 0) -> ProbeSweep:
    return probe_sweep(_acts(n=20, seed=seed), shots=[2, 4], repeats=2, seed=seed, progress=False)


# ---- the guard and the sweep ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("module", "make", "load", "payload"),
    [
        (
            guard_module,
            lambda seed: _guard(seed, "L0H1,L2H3" if seed == 0 else "L1H0,L2H2"),
            SafetyHeadGuard.load,
            "guard.safetensors",
        ),
        (sweep_module, lambda seed: _sweep(seed), ProbeSweep.load, "probe_sweep.safetensors"),
    ],
    ids=["guard", "sweep"],
)
def test_a_save_killed_between_its_files_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: Any, make: Any, load: Any, payload: str
) -> None:
    old = make(0).save(tmp_path / "a")
    with monkeypatch.context() as patch:
        _kill_before_json(patch, module)
        with pytest.raises(Killed):
            make(1).save(old, overwrite=True)  # the new payload is in place, the JSON is not
    with pytest.raises(
        ValueError, match=rf"{re.escape(payload)} is not the file this JSON was saved with.*save it again"
    ):
        load(old)
    assert not list(old.glob("*.tmp"))
    new = make(1)
    new.save(old, overwrite=True)  # saving again mends it
    assert load(old) == new if module is sweep_module else torch.equal(load(old).weight, new.weight)


def test_reordered_heads_in_guard_json_are_refused(tmp_path: Path) -> None:
    directory = _guard(0).save(tmp_path / "g")
    _edit(directory / "guard.json", lambda m: m.update(heads=m["heads"][::-1]))
    with pytest.raises(
        ValueError, match=r"its 'heads' is 'L2H3,L0H1' but the payload was saved with 'L0H1,L2H3'"
    ):
        SafetyHeadGuard.load(directory)


def test_stripping_the_binding_does_not_switch_it_off(tmp_path: Path) -> None:
    directory = _guard(0).save(tmp_path / "g")
    _edit(directory / "guard.json", lambda m: [m.pop("files"), m][1])
    with pytest.raises(
        ValueError, match=r"has no 'files' entry but its payload was written by a binding save"
    ):
        SafetyHeadGuard.load(directory)


def test_a_guard_saved_before_binding_loads_and_says_so(tmp_path: Path) -> None:
    guard = _guard(0)
    directory = guard.save(tmp_path / "g")
    save_file(
        load_file(str(directory / "guard.safetensors")), str(directory / "guard.safetensors")
    )  # no metadata
    _edit(directory / "guard.json", lambda m: [m.pop("files"), m][1])
    with pytest.warns(LegacyArtifactWarning, match="nothing binds its files together"):
        assert torch.equal(SafetyHeadGuard.load(directory).weight, guard.weight)


# ---- the probe sweep -----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [math.nan, 7.0, -0.5, math.inf])
def test_a_sweep_whose_metrics_leave_0_1_is_refused(tmp_path: Path, value: float) -> None:
    data = _sweep().to_dict()
    data["tensors"]["accuracy"]["values"][0][0][1][2] = value
    with pytest.raises(
        ValueError,
        match=rf"tensor 'accuracy' holds {value!r}, but a probe's accuracy is a number in \[0, 1\]",
    ):
        ProbeSweep.from_dict(data)
    # on disk, with tensors and JSON that agree (the binding rewritten too): still refused
    directory = _sweep().save(tmp_path / "s")
    tensors = load_file(str(directory / "probe_sweep.safetensors"))
    tensors["accuracy"][0, 0, 1, 2] = value
    save_file(
        tensors, str(directory / "probe_sweep.safetensors"), metadata={"format": sweep_module.SWEEP_FORMAT}
    )
    digest = sha256_file(directory / "probe_sweep.safetensors")
    _edit(directory / "probe_sweep.json", lambda m: m.update(files={"probe_sweep.safetensors": digest}))
    with pytest.raises(ValueError, match=r"tensor 'accuracy' holds .*run the sweep again"):
        ProbeSweep.load(directory)


# ---- activations -------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return _acts().save(tmp_path / "acts", shard_size=2)


def test_setting_the_format_back_does_not_switch_the_checksums_off(saved: Path) -> None:
    replaced = _acts(seed=7)
    save_file(
        {"z": replaced.z[:2].contiguous(), "labels": replaced.labels[:2].contiguous()},
        str(saved / "z-00000.safetensors"),
    )
    _edit(saved / "manifest.json", lambda m: m.update(format="sahs_lens.head_activations/1"))
    with pytest.raises(
        ValueError, match=r"says format 'sahs_lens\.head_activations/1' but holds .*sha256.*changed by hand"
    ):
        HeadActivations.load(saved)


def test_a_downgraded_manifest_beside_checked_shards_is_refused(saved: Path) -> None:
    def strip(
        m: dict[str, Any],
    ) -> None:  # every format-2 key removed from the manifest, shards left as written
        m["format"] = "sahs_lens.head_activations/1"
        m["shards"] = [{"file": s["file"], "n": s["n"]} for s in m["shards"]]

    _edit(saved / "manifest.json", strip)
    with pytest.raises(
        ValueError, match=r"z-00000\.safetensors.*written by format .*manifest's format was changed by hand"
    ):
        HeadActivations.load(saved)


def test_a_true_legacy_directory_still_loads(saved: Path) -> None:
    as_legacy(saved)
    with pytest.warns(LegacyArtifactWarning):
        assert torch.equal(HeadActivations.load(saved).z, _acts().z)


def test_a_manifest_with_a_duplicate_id_is_refused(saved: Path) -> None:
    _edit(saved / "manifest.json", lambda m: m["ids"].__setitem__(3, m["ids"][1]))
    with pytest.raises(ValueError, match=r"sample id 's1' is listed twice"):
        HeadActivations.load(saved)


# ---- the mechanism --------------------------------------------------------------------------------------
def test_write_atomic_leaves_the_old_file_when_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.json"
    write_atomic(path, b'{"old": 1}')

    def killed(fd: int) -> None:
        raise Killed

    monkeypatch.setattr("sahs_lens.atomic_files.os.fsync", killed)
    with pytest.raises(Killed):
        write_atomic(path, b'{"new": 2}')
    assert json.loads(path.read_text()) == {"old": 1}
    monkeypatch.undo()
    HeadSet.parse("L0H1").save(path, overwrite=True)  # a stale .tmp does not stop the next write
    assert HeadSet.load(path).to_list() == ["L0H1"]
