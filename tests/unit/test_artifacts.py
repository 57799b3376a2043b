"""Every artifact behaves alike: save refuses to overwrite unless asked, load reads it back exactly, to_dict
and from_dict round-trip, and an artifact that cannot say which model made it is used on no model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model_adapters.identity import check_identity, identity_mismatches
from sahs_lens import HeadActivations, HeadSet, SafetyHeadGuard

MODEL_IDENTITY = {
    "model_name": "tiny",
    "family": "llava",
    "checkpoint": "sha256:0123",
    "template": "llava-hf",
    "n_layers": 3,
    "n_heads": 4,
    "d_head": 5,
}


def _acts(n: int = 12, seed: int = 0) -> HeadActivations:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    z = torch.randn(n, 3, 4, 5, generator=g) + labels[:, None, None, None] * 0.5
    return HeadActivations(
        z=z,
        labels=labels,
        ids=[f"s{i}" for i in range(n)],
        sources=["test"] * n,
        provenance=dict(MODEL_IDENTITY),
    )


def _model(**changes: object) -> SimpleNamespace:
    return SimpleNamespace(
        cfg=SimpleNamespace(**{**MODEL_IDENTITY, **changes}, identity=lambda: {**MODEL_IDENTITY, **changes})
    )


def _guard() -> SafetyHeadGuard:
    return SafetyHeadGuard.fit(_acts(), HeadSet.parse("L0H1,L2H3"))


def test_head_set_round_trips_and_refuses_to_overwrite(tmp_path: Path) -> None:
    heads = HeadSet.parse("L2H3,L0H1,L1H0")
    assert HeadSet.from_dict(heads.to_dict()) == heads
    file = heads.save(tmp_path / "heads.json")
    assert HeadSet.load(file) == heads and list(HeadSet.load(file)) == list(heads)  # order kept
    with pytest.raises(FileExistsError, match="overwrite=True"):
        heads.save(file)
    HeadSet.parse("L0H0").save(file, overwrite=True)
    assert HeadSet.load(file) == HeadSet.parse("L0H0")
    assert HeadSet.load(heads.save(tmp_path / "run")) == heads  # a directory holds heads.json
    with pytest.raises(ValueError, match="L2H3"):
        HeadSet.load(file.parent / "run", model=_model(n_layers=2))
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="a head set is"):
        HeadSet.load(tmp_path / "bad.json")


def test_head_activations_round_trip(tmp_path: Path) -> None:
    acts = _acts()
    again = HeadActivations.from_dict(json.loads(json.dumps(acts.to_dict())))
    assert torch.equal(again.z, acts.z) and torch.equal(again.labels, acts.labels)
    assert (again.ids, again.sources, again.provenance) == (acts.ids, acts.sources, acts.provenance)
    acts.save(tmp_path / "acts")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        acts.save(tmp_path / "acts")
    loaded = HeadActivations.load(tmp_path / "acts", model=_model())
    assert torch.equal(loaded.z, acts.z) and loaded.provenance == acts.provenance
    with pytest.raises(ValueError, match="checkpoint: 'sha256:0123' vs 'sha256:ffff'"):
        HeadActivations.load(tmp_path / "acts", model=_model(checkpoint="sha256:ffff"))


def test_guard_round_trips_and_refuses_to_overwrite(tmp_path: Path) -> None:
    guard = _guard()
    again = SafetyHeadGuard.from_dict(json.loads(json.dumps(guard.to_dict())))
    assert torch.equal(again.weight, guard.weight) and again.bias == guard.bias
    assert (again.heads, again.threshold, again.provenance, again.training) == (
        guard.heads,
        guard.threshold,
        guard.provenance,
        guard.training,
    )
    guard.save(tmp_path / "guard")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        guard.save(tmp_path / "guard")
    guard.threshold = 0.7
    guard.save(tmp_path / "guard", overwrite=True)
    loaded = SafetyHeadGuard.load(tmp_path / "guard", model=_model())
    assert loaded.threshold == 0.7 and torch.equal(loaded.score(_acts(seed=1)), guard.score(_acts(seed=1)))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"family": "gemma3"}, "family"),
        ({"checkpoint": "sha256:ffff"}, "checkpoint"),
        ({"template": "raw"}, "template"),
        ({"d_head": 8}, "d_head"),
        ({"n_heads": 8}, "n_heads"),
    ],
)
def test_guard_refuses_a_model_that_differs_in_any_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=f"this guard does not fit this model: .*{field}"):
        _guard().check_model(_model(**change))  # type: ignore[arg-type]


def test_a_missing_provenance_field_is_a_mismatch(tmp_path: Path) -> None:
    guard = _guard()
    guard.save(tmp_path / "guard")
    meta = json.loads((tmp_path / "guard" / "guard.json").read_text())
    meta["provenance"] = {}
    (tmp_path / "guard" / "guard.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="checkpoint: <missing> vs 'sha256:0123'"):
        SafetyHeadGuard.load(tmp_path / "guard", model=_model())
    assert identity_mismatches({}, {}) == []  # two hand-made artifacts with no model: nothing to compare
    with pytest.raises(ValueError, match="family: <missing> vs 'llava'"):
        check_identity({}, MODEL_IDENTITY, what="an artifact")
