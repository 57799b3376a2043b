"""Past one process: ``torchrun`` extraction equals one process bit for bit, killed ranks resume, ranks that
disagree are refused, probe sweeps shard heads, and device maps (accelerate, CPU + disk) change nothing.

Every ``torchrun`` here runs on the CPU with gloo, one thread per rank, on the bundled organism.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sahs_lens.head_activations import HeadActivations

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# 24 shards of 2 samples: enough work per rank that a rank can be killed in the middle of it
DATA = ["--data", "harmful_text:train@24", "--data", "figstep_benign:train@24", "--batch-size", "2",
        "--shard-size", "2"]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))  # fmt: skip
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _torchrun(n: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", *args]


def _extract(out: Path, ranks: int = 0) -> subprocess.CompletedProcess[str]:
    command = ["-m", "sahs_lens", "extract", *DATA, "--out", str(out)]
    argv = _torchrun(ranks, *command) if ranks else [sys.executable, *command]
    return subprocess.run(argv, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=240)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single") / "acts"
    done = _extract(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_torchrun_extract_equals_one_process(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "acts"
    done = _extract(out, ranks=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(2 ranks)" in done.stdout and done.stdout.count("HeadActivations(") == 1  # rank 0 reports
    assert _files(out) == _files(reference)  # the same files, byte for byte: no progress records left
    one, two = HeadActivations.load(reference), HeadActivations.load(out)
    assert two.ids == one.ids and two.sources == one.sources and len(two) == 48
    assert torch.equal(two.labels, one.labels) and torch.equal(two.z, one.z)


def test_torchrun_probe_equals_one_process(reference: Path, tmp_path: Path) -> None:
    """``sahs-lens probe`` under torchrun: the ranks share the heads, rank 0 alone writes, and what it
    writes equals a one-process run's sweep and heads."""
    probe = ["-m", "sahs_lens", "probe", "--acts", str(reference), "--shots", "2", "4", "--repeats", "3",
             "--k", "4"]  # fmt: skip
    one = subprocess.run([sys.executable, *probe, "--out", str(tmp_path / "one")], env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=240)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(_torchrun(2, *probe, "--out", str(tmp_path / "two")), env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=240)  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("top 4 heads") == 1  # rank 0 reports and writes
    assert (tmp_path / "two" / "heads.json").read_bytes() == (tmp_path / "one" / "heads.json").read_bytes()
    assert _files(tmp_path / "two" / "sweep") == _files(tmp_path / "one" / "sweep")


def _kill_one_rank(out: Path) -> tuple[int, dict[str, int]]:
    """Start a 2-rank extract, SIGKILL rank 1 once it has finished a shard; torchrun then stops rank 0."""
    command = _torchrun(2, "-m", "sahs_lens", "extract", *DATA, "--out", str(out))
    launcher = subprocess.Popen(command, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    record = out / "progress-00001.json"
    deadline = time.monotonic() + 180
    while not record.is_file() and time.monotonic() < deadline and launcher.poll() is None:
        time.sleep(0.005)
    victim = _rank_pid(launcher.pid, rank=1)
    os.kill(victim, signal.SIGKILL)
    launcher.communicate(timeout=120)
    kept = {}
    for progress in _progress(out).values():
        kept.update({e["file"]: (out / e["file"]).stat().st_ino for e in progress["shards"]})
    return launcher.returncode, kept


def _rank_pid(parent: int, rank: int) -> int:
    """The pid of the worker with ``RANK=rank`` among the children of the torchrun process ``parent``."""
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"no rank {rank} under torchrun pid {parent}")


def _progress(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("progress-*.json"))}


@pytest.mark.parametrize("resume_ranks", [2, 0], ids=["resume-2-ranks", "resume-1-process"])
def test_killed_rank_resumes(reference: Path, tmp_path: Path, resume_ranks: int) -> None:
    out = tmp_path / "acts"
    code, kept = _kill_one_rank(out)
    assert code != 0  # the job failed: one of its ranks was killed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False and kept, "the kill came too late: nothing left to resume"
    assert len(kept) < 24, "the kill came too late: every shard was already written"
    done = _extract(out, ranks=resume_ranks)  # the same world size, or another one
    assert done.returncode == 0, done.stderr[-3000:]
    assert _files(out) == _files(reference)
    assert {name: (out / name).stat().st_ino for name in kept} == kept  # finished shards were not redone


WORKER = r"""
import dataclasses, json, sys
from pathlib import Path
import torch
from safetensors.torch import save_file
from sahs_lens.activations import collect_head_activations
from sahs_lens.distributed import current_world
from sahs_lens.head_activations import HeadActivations
from sahs_lens.organism import load_organism, organism_samples
from sahs_lens.probes import probe_sweep

out = Path(sys.argv[1])
world = current_world()
report = {"rank": world.rank}
model = load_organism()
samples = organism_samples("harmful_text:train")[:3] + organism_samples("benign_text:train")[:3]

# more ranks than samples: the idle rank returns the same activations
acts = collect_head_activations(model, samples[:1], batch_size=1, out=out / "one", progress=False)
report["one"] = [len(acts), acts.ids]

# in memory: batches shared out and gathered in order
acts = collect_head_activations(model, samples, batch_size=2, progress=False)
if world.is_main:
    save_file({"z": acts.z}, str(out / "memory.safetensors"))

# ranks given different samples refuse before anything is written
changed = list(samples)
if world.rank == 1:
    changed[2] = dataclasses.replace(samples[2], prompt=samples[2].prompt + " (changed)")
try:
    collect_head_activations(model, changed, batch_size=2, out=out / "refused", progress=False)
    report["refused"] = None
except ValueError as error:
    report["refused"] = str(error)
report["refused_dir_exists"] = (out / "refused").exists()

# a directory that is not shared between the ranks (here: one per rank) is refused
try:
    collect_head_activations(model, samples, batch_size=2, out=out / f"private-{world.rank}", progress=False)
    report["private"] = None
except (FileNotFoundError, ValueError) as error:
    report["private"] = str(error)

# distributed=False: each rank works alone, on its own samples
alone = collect_head_activations(model, changed, batch_size=2, out=out / f"alone-{world.rank}", progress=False,
                                 distributed=False)  # fmt: skip
report["alone"] = alone.ids

# a probe sweep with its head batches shared out
torch.manual_seed(0)
z = torch.randn(40, 3, 4, 8) + torch.arange(2).repeat(20)[:, None, None, None] * 0.3
fake = HeadActivations(z=z, labels=torch.arange(2).repeat(20))
sweep = probe_sweep(fake, shots=[2, 5], repeats=3, seed=1, batch_heads=5, progress=False)
if world.is_main:
    save_file({"accuracy": sweep.accuracy, "auroc": sweep.auroc, "f1": sweep.f1}, str(out / "sweep.safetensors"))
    report["non_converged"] = sweep.non_converged
(out / f"report-{world.rank}.json").write_text(json.dumps(report))
"""


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("worker")
    script = out / "worker.py"
    script.write_text(WORKER)
    done = subprocess.run(_torchrun(2, str(script), str(out)), env=_env(), cwd=ROOT, capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _report(worker: Path, rank: int) -> dict:
    return json.loads((worker / f"report-{rank}.json").read_text())


def test_idle_rank_returns_cleanly(worker: Path) -> None:
    assert _report(worker, 0)["one"] == _report(worker, 1)["one"] == [1, [_report(worker, 0)["one"][1][0]]]
    assert sorted(p.name for p in (worker / "one").iterdir()) == ["manifest.json", "z-00000.safetensors"]


def test_ranks_that_disagree_are_refused_before_writing(worker: Path) -> None:
    for rank in (0, 1):
        report = _report(worker, rank)
        assert report["refused"] is not None and "disagree" in report["refused"]
        assert "the samples" in report["refused"] and "rank(s) 1" in report["refused"]
        assert "the model" not in report["refused"]
        assert report["refused_dir_exists"] is False


def test_a_directory_the_ranks_do_not_share_is_refused(worker: Path) -> None:
    for rank in (0, 1):
        message = _report(worker, rank)["private"]
        assert message is not None and "filesystem every rank shares" in message
    assert not list((worker / "private-0").glob("z-*")) and not list((worker / "private-1").glob("z-*"))


def test_distributed_false_lets_each_rank_work_alone(worker: Path) -> None:
    assert (
        _report(worker, 0)["alone"] == _report(worker, 1)["alone"] and len(_report(worker, 0)["alone"]) == 6
    )
    assert (worker / "alone-0" / "manifest.json").read_bytes() != (
        worker / "alone-1" / "manifest.json"
    ).read_bytes()


def test_in_memory_collection_and_probe_sweep_equal_one_process(worker: Path) -> None:
    from safetensors.torch import load_file

    from sahs_lens.activations import collect_head_activations
    from sahs_lens.organism import load_organism, organism_samples
    from sahs_lens.probes import probe_sweep

    model = load_organism()
    samples = organism_samples("harmful_text:train")[:3] + organism_samples("benign_text:train")[:3]
    acts = collect_head_activations(model, samples, batch_size=2, progress=False)
    assert torch.equal(load_file(str(worker / "memory.safetensors"))["z"], acts.z)

    torch.manual_seed(0)
    z = torch.randn(40, 3, 4, 8) + torch.arange(2).repeat(20)[:, None, None, None] * 0.3
    fake = HeadActivations(z=z, labels=torch.arange(2).repeat(20))
    sweep = probe_sweep(fake, shots=[2, 5], repeats=3, seed=1, batch_heads=5, progress=False)
    shared = load_file(str(worker / "sweep.safetensors"))
    for name in ("accuracy", "auroc", "f1"):
        assert torch.equal(shared[name], getattr(sweep, name)), name
    assert _report(worker, 0)["non_converged"] == sweep.non_converged


DISK_MAP = {
    "model.vision_tower": "cpu",
    "model.multi_modal_projector": "cpu",
    "model.language_model.embed_tokens": "cpu",
    "model.language_model.rotary_emb": "cpu",
    "model.language_model.layers.0": "cpu",
    "model.language_model.layers.1": "disk",
    "model.language_model.norm": "disk",
    "lm_head": "cpu",
}


@pytest.mark.parametrize("backend", ["hf", "bridge"])
def test_device_map_with_disk_offload_changes_nothing(backend: str, tmp_path: Path) -> None:
    from model_adapters import load_vlm
    from model_adapters.testing import build_tiny_checkpoint
    from sahs_lens.activations import collect_head_activations
    from sahs_lens.data import Sample
    from sahs_lens.guard import SafetyHeadGuard

    path = build_tiny_checkpoint("llava")
    plain = load_vlm(path, backend=backend)
    mapped = load_vlm(path, backend=backend, device_map=DISK_MAP, offload_folder=tmp_path / "offload")
    offloaded = [n for n, p in mapped.hf_model.named_parameters() if p.device.type == "meta"]
    assert any("layers.1." in n for n in offloaded)  # layer 1 really lives on disk
    assert mapped.cfg.checkpoint == plain.cfg.checkpoint  # the same identity, offloaded or not
    samples = [Sample(f"request number {i} about item {i * 7}", None, i % 2, "t", f"s{i}") for i in range(8)]
    one = collect_head_activations(plain, samples, batch_size=4, progress=False)
    two = collect_head_activations(mapped, samples, batch_size=4, progress=False)
    assert torch.equal(one.z, two.z)
    batch = ["tell me about item 3", "and item 4 please"]
    assert torch.equal(plain(plain.prepare(batch)), mapped(mapped.prepare(batch)))
    assert torch.equal(plain.generate_tokens(batch, max_new_tokens=5).tokens,
                       mapped.generate_tokens(batch, max_new_tokens=5).tokens)  # fmt: skip
    guard = SafetyHeadGuard.fit(one, "L1H0,L0H2")
    assert torch.equal(guard.score_inputs(plain, batch), guard.score_inputs(mapped, batch))
    guarded = guard.generate(mapped, batch, max_new_tokens=5)
    assert guarded.texts == guard.generate(plain, batch, max_new_tokens=5).texts


def test_cli_device_map_flags(tmp_path: Path) -> None:
    out = tmp_path / "acts"
    dmap = tmp_path / "map.json"
    from sahs_lens.organism import ORGANISM_DIR

    n_layers = json.loads((Path(ORGANISM_DIR) / "config.json").read_text())["text_config"][
        "num_hidden_layers"
    ]
    rest = {f"model.language_model.layers.{i}": ("disk" if i % 2 else "cpu") for i in range(2, n_layers)}
    dmap.write_text(
        json.dumps({**DISK_MAP, **rest})
    )  # every layer of the organism placed, every other on disk
    command = [sys.executable, "-m", "sahs_lens", "extract", "--data", "harmful_text:train@4", "--out",
               str(out), "--device-map", str(dmap), "--offload-folder", str(tmp_path / "offload")]  # fmt: skip
    done = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    plain = subprocess.run(command[:7] + [str(tmp_path / "plain")], env=_env(), cwd=ROOT, capture_output=True,
                           text=True, timeout=240)  # fmt: skip
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert _files(out) == _files(tmp_path / "plain")
