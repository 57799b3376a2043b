"""The pieces of data parallelism that need no second process: worlds, shares, fingerprints, checks,
progress records, and shards that are the same bytes whoever writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sahs_lens.distributed import World, current_world, env_world, fingerprint
from sahs_lens.shards import read_manifest, read_shard, write_manifest, write_shard

_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_one_process_is_a_world_of_one(clean_env: pytest.MonkeyPatch) -> None:
    assert env_world() == (0, 1, 0)
    world = current_world()
    assert (world.rank, world.size, world.is_main) == (0, 1, True)
    assert world.share([3, 1, 2]) == [3, 1, 2] and world.gather("x") == ["x"]
    world.agree({"a": "1"}, what="x", fix="y")  # nothing to compare with
    world.barrier()


def test_shares_are_disjoint_deterministic_and_cover_everything() -> None:
    items = list(range(11))
    shares = [World(rank=r, size=4).share(items) for r in range(4)]
    assert shares[1] == [1, 5, 9] and shares[3] == [3, 7]
    assert sorted(i for share in shares for i in share) == items
    assert World(rank=5, size=8).share([0, 1, 2]) == []  # more ranks than work: an idle rank


def test_malformed_launcher_variables_are_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WORLD_SIZE", "2")
    clean_env.setenv("RANK", "2")
    with pytest.raises(ValueError, match="0 <= RANK < WORLD_SIZE"):
        env_world()
    clean_env.setenv("RANK", "one")
    with pytest.raises(ValueError, match="RANK='one' is not an integer"):
        env_world()
    clean_env.setenv("RANK", "1")
    with pytest.raises(ValueError, match="MASTER_ADDR and MASTER_PORT is not"):
        current_world()  # WORLD_SIZE without a launcher: say how to start the job


def test_all_ok_reraises_in_a_world_of_one() -> None:
    def fail() -> None:
        raise FileExistsError("boom")

    with pytest.raises(FileExistsError, match="boom"):
        World().all_ok(fail)
    assert World().all_ok(lambda: 3) == 3


def test_fingerprint_is_canonical() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert len(fingerprint(None)) == 64


def _header(path: Path) -> bytes:
    raw = path.read_bytes()
    return raw[8 : 8 + int.from_bytes(raw[:8], "little")]


def test_shards_are_the_same_bytes_whoever_writes_them(tmp_path: Path) -> None:
    z, labels = torch.randn(3, 2, 4, 8), torch.tensor([0, 1, 1])
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    entry = write_shard(a, 0, z, labels, start=0, ids=["x", "y", "z"])
    assert write_shard(b, 0, z, labels, start=0, ids=["x", "y", "z"]) == entry
    header = json.loads(_header(a / entry["file"]))
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])  # not safetensors' hash order
    write_manifest(a, provenance={}, shards=[entry], ids=["x", "y", "z"], sources=["s"] * 3, complete=True)
    got_z, got_labels = read_shard(a, read_manifest(a), 0)
    assert torch.equal(got_z, z) and torch.equal(got_labels, labels)


def test_progress_of_another_run_is_refused(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    from model_adapters.testing import load_tiny
    from sahs_lens.activations import collect_head_activations
    from sahs_lens.data import Sample

    model = load_tiny("llava")
    samples = [Sample(f"prompt {i}", None, i % 2, "t", f"s{i}") for i in range(4)]
    out = tmp_path / "acts"
    collect_head_activations(model, samples, batch_size=1, shard_size=1, out=out, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.update(complete=False, shards=[])
    (out / "manifest.json").write_text(json.dumps(manifest))
    record = {"format": "sahs_lens.head_activations.progress/1", "rank": 0, "run_fingerprint": "0" * 64,
              "shards": []}  # fmt: skip
    (out / "progress-00000.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="records shards of another run"):
        collect_head_activations(model, samples, batch_size=1, shard_size=1, out=out, progress=False)
