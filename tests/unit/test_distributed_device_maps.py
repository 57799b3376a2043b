"""Device maps are checked before anything is loaded: each bad form gets a message that says what to give."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_adapters.device_maps import (
    check_bridge_map,
    check_device_map,
    parse_device_map,
    parse_max_memory,
)

CPU = torch.device("cpu")


def _check(device_map, max_memory=None, offload_folder=None, device=CPU, hf_model=None):  # type: ignore[no-untyped-def]
    return check_device_map(device_map, max_memory, offload_folder, device=device, hf_model=hf_model)


def test_good_maps_become_from_pretrained_arguments(tmp_path: Path) -> None:
    assert _check(None) is None
    budget: dict[int | str, str] = {0: "20GiB", "cpu": "60GiB"} if torch.cuda.is_available() else {"cpu": "60GiB"}
    assert _check("auto", budget) == {"device_map": "auto", "max_memory": budget}  # GPU keys only where GPUs are
    got = _check({"model": "cpu", "lm_head": "disk"}, offload_folder=tmp_path)
    assert got == {"device_map": {"model": "cpu", "lm_head": "disk"}, "offload_folder": str(tmp_path)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device_map": "everywhere"}, "is not a placement"),
        ({"device_map": {"lm_head": "meta"}}, "'meta' holds no weights"),
        ({"device_map": {"lm_head": "disk"}}, "give offload_folder="),
        ({"device_map": {"lm_head": 0}}, "this machine has no CUDA device"),
        ({"device_map": {"lm_head": "gpu"}}, "a target is a GPU index"),
        ({"device_map": None, "max_memory": {0: "1GiB"}}, "only apply with a device_map"),
        ({"device_map": "auto", "max_memory": {"gpu0": "1GiB"}}, "a GPU index, 'cpu'"),
        ({"device_map": "auto", "device": torch.device("cuda")}, "either device"),
        ({"device_map": "auto", "hf_model": torch.nn.Linear(1, 1)}, "with hf_model= place it yourself"),
    ],
)
def test_bad_maps_are_refused_with_a_fix(kwargs: dict, message: str) -> None:
    if kwargs.get("device_map") == {"lm_head": 0} and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match=message):
        _check(**kwargs)


def test_the_bridge_refuses_maps_that_mix_gpus_and_offload() -> None:
    check_bridge_map({"device_map": {"a": "cpu", "b": "disk"}})
    check_bridge_map({"device_map": "auto"})
    with pytest.raises(ValueError, match="Use backend='hf'"):
        check_bridge_map({"device_map": {"a": 0, "b": "cpu"}})


def test_cli_forms(tmp_path: Path) -> None:
    assert parse_device_map("auto") == "auto"
    assert parse_device_map('{"lm_head": 0}') == {"lm_head": 0}
    path = tmp_path / "map.json"
    path.write_text('{"model": "cpu"}')
    assert parse_device_map(str(path)) == {"model": "cpu"}
    with pytest.raises(ValueError, match="as a JSON file or inline JSON"):
        parse_device_map("nowhere.json")
    assert parse_max_memory("0=20GiB, cpu=60GiB") == {0: "20GiB", "cpu": "60GiB"}
    with pytest.raises(ValueError, match="DEVICE=SIZE"):
        parse_max_memory("20GiB")


def test_cli_refuses_a_meta_map_before_loading(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sahs_lens.cli import main

    code = main(["extract", "--data", "harmful_text:train@2", "--out", str(tmp_path / "acts"),
                 "--device-map", '{"lm_head": "meta"}'])  # fmt: skip
    assert code == 2 and "'meta' holds no weights" in capsys.readouterr().err
    assert not (tmp_path / "acts").exists()


def test_cli_refuses_a_device_map_under_torchrun(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sahs_lens.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    code = main(["extract", "--data", "harmful_text:train@2", "--out", str(tmp_path / "acts"),
                 "--device-map", "auto"])  # fmt: skip
    assert code == 2 and "would put every rank's copy on the same devices" in capsys.readouterr().err
