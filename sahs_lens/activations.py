"""Collect every attention head's output at the decision position, one prefill forward per batch.

The SAHs feature of a prompt is ``blocks.{l}.attn.hook_z[:, -1]`` for every layer ``l``: what each head
wrote (before the output projection) at the last prompt position, the position whose logits give the first
generated token. No generation is needed. Batches are left-padded, so the last column is every row's
decision position.

``collect_head_activations`` reads that column through ``sahs_lens.decision.DecisionReader`` (the same
reader the guard uses): one small hook per layer keeps only the last column (never the whole cache), and
the forward pass stops right after the deepest layer it needs, so collection costs at most one forward. With ``out=`` results stream to disk as safetensors
shards; an interrupted run started again resumes after the last complete shard and ends with exactly the
tensors an uninterrupted run gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from model_adapters import HookedVLM
from model_adapters.hook_names import HOOK_Z
from sahs_lens._version import __version__
from sahs_lens.decision import POSITION_RULE, DecisionReader
from sahs_lens.head_activations import (
    MANIFEST,
    HeadActivations,
    read_manifest,
    shard_name,
    write_manifest,
)
from sahs_lens.heads import HeadSet


class SampleLike(Protocol):
    """What collection reads of a sample (``sahs_lens.data.Sample`` and any look-alike)."""

    @property
    def prompt(self) -> str: ...
    @property
    def image(self) -> Any: ...
    @property
    def label(self) -> int: ...
    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...


def collection_provenance(
    model: HookedVLM, *, dtype: torch.dtype, heads: HeadSet | None, dataset: str | None
) -> dict[str, Any]:
    """What a collection records about itself (and what a resumed run must match)."""
    prov: dict[str, Any] = dict(model.cfg.identity())
    prov.update(
        {
            "d_model": model.cfg.d_model,
            "hook": HOOK_Z,
            "position_rule": POSITION_RULE,
            "padding": "left",
            "dtype": str(dtype).replace("torch.", ""),
            "model_dtype": model.cfg.dtype,
            "package_version": __version__,
        }
    )
    if heads is not None:
        prov["heads"] = str(heads)
    if dataset is not None:
        prov["dataset"] = dataset
    return prov


def collect_head_activations(
    model: HookedVLM,
    samples: Sequence[SampleLike],
    *,
    batch_size: int = 8,
    dtype: torch.dtype = torch.float32,
    out: str | Path | None = None,
    heads: HeadSet | None = None,
    shard_size: int | None = None,
    dataset: str | None = None,
    progress: bool = True,
) -> HeadActivations:
    """Every head's ``hook_z`` at the last prompt position, for every sample.

    Args:
        model: the ``HookedVLM`` to read.
        samples: ``Sample`` s (prompt, image or None, label, id, source).
        batch_size: prompts per prefill forward.
        dtype: storage dtype of the features (``torch.float16`` halves memory; NaN/inf are reported).
        out: a directory to stream shards to; an unfinished run there is resumed, a finished one is loaded.
        heads: only collect these heads (the others stay zero; the forward stops after their deepest layer).
        shard_size: samples per shard on disk (default: 16 batches).
        dataset: a name for the data, recorded in the provenance.
        progress: show a progress bar.

    Returns:
        ``HeadActivations`` with ``z`` of shape ``[n_samples, n_layers, n_heads, d_head]``.

    Example:
        >>> acts = collect_head_activations(model, samples, batch_size=8, out="runs/acts")
    """
    samples = list(samples)
    _check_samples(samples)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    cfg = model.cfg
    if heads is not None:
        heads = heads if isinstance(heads, HeadSet) else HeadSet(heads)
        if len(heads) == 0:
            raise ValueError("heads is an empty HeadSet; pass None to collect every head")
        heads.check_fits(cfg.n_layers, cfg.n_heads)
    shard_size = shard_size or batch_size * 16
    if shard_size % batch_size:
        raise ValueError(f"shard_size ({shard_size}) must be a multiple of batch_size ({batch_size})")
    provenance = collection_provenance(model, dtype=dtype, heads=heads, dataset=dataset)
    ids = [str(s.id) for s in samples]
    sources = [str(s.source) for s in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"sample ids must be unique; {dup!r} appears more than once")
    labels = torch.tensor([int(s.label) for s in samples], dtype=torch.long)
    n_shards = math.ceil(len(samples) / shard_size)
    reader = _LastPositionReader(model, heads, dtype)

    if out is None:
        parts = []
        bar = tqdm(total=len(samples), desc="collecting hook_z", disable=not progress, unit="sample")
        for lo in range(0, len(samples), batch_size):
            chunk = samples[lo : lo + batch_size]
            parts.append(reader(chunk))
            bar.update(len(chunk))
        bar.close()
        acts = HeadActivations(
            z=torch.cat(parts), labels=labels, ids=ids, sources=sources, provenance=provenance
        )
        acts.check_finite()
        return acts

    directory = Path(out)
    run = {"batch_size": batch_size, "shard_size": shard_size, "n_samples": len(samples)}
    done = _resume_point(directory, provenance, ids, run)
    if done == n_shards and (directory / MANIFEST).exists() and read_manifest(directory)["complete"]:
        return HeadActivations.load(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shards = [
        {"file": shard_name(s), "n": min(shard_size, len(samples) - s * shard_size)} for s in range(done)
    ]
    bar = tqdm(
        total=len(samples),
        initial=done * shard_size,
        desc="collecting hook_z",
        disable=not progress,
        unit="sample",
    )
    for s in range(done, n_shards):
        lo, hi = s * shard_size, min(len(samples), (s + 1) * shard_size)
        parts = []
        for b in range(lo, hi, batch_size):
            chunk = samples[b : min(hi, b + batch_size)]
            parts.append(reader(chunk))
            bar.update(len(chunk))
        z = torch.cat(parts)
        _check_finite_chunk(z, ids[lo:hi])
        tmp = directory / (shard_name(s) + ".tmp")
        save_file({"z": z.contiguous(), "labels": labels[lo:hi].contiguous()}, str(tmp))
        tmp.replace(directory / shard_name(s))
        shards.append({"file": shard_name(s), "n": hi - lo})
        write_manifest(
            directory,
            provenance=provenance,
            shards=shards,
            ids=ids,
            sources=sources,
            complete=s == n_shards - 1,
            extra={"run": run},
        )
    bar.close()
    return HeadActivations.load(directory)


class _LastPositionReader:
    """Runs prefill forwards through the ``DecisionReader`` and stacks the layers into ``[b, L, H, D]``."""

    def __init__(self, model: HookedVLM, heads: HeadSet | None, dtype: torch.dtype) -> None:
        self.model = model
        self.dtype = dtype
        cfg = model.cfg
        layers = range(cfg.n_layers) if heads is None else heads.layers
        self.reader = DecisionReader(layers, stop_after_last=True)
        self.keep: Tensor | None = None
        if heads is not None:
            keep = torch.zeros(cfg.n_layers, cfg.n_heads, dtype=torch.bool)
            for h in heads:
                keep[h.layer, h.head] = True
            self.keep = keep

    def __call__(self, chunk: Sequence[SampleLike]) -> Tensor:
        cfg = self.model.cfg
        batch = self.model.prepare([s.prompt for s in chunk], images=[s.image for s in chunk])
        buffer = torch.zeros(len(chunk), cfg.n_layers, cfg.n_heads, cfg.d_head, dtype=self.dtype)
        for layer, z in self.reader.read(self.model, batch).items():
            buffer[:, layer] = z.detach().to(device="cpu", dtype=self.dtype)
        if self.keep is not None:
            buffer[:, ~self.keep] = 0
        return buffer


def _check_samples(samples: Sequence[SampleLike]) -> None:
    if not samples:
        raise ValueError("no samples given; pass at least one Sample (see sahs_lens.data.load_bundled)")
    bad = [s for s in samples if int(s.label) not in (0, 1)]
    if bad:
        raise ValueError(
            f"labels must be 0 (benign) or 1 (malicious); sample {bad[0].id!r} has label {bad[0].label!r}"
        )


def _check_finite_chunk(z: Tensor, ids: Sequence[str]) -> None:
    bad = (~torch.isfinite(z.float())).flatten(1).any(1).nonzero().flatten().tolist()
    if bad:
        names = ", ".join(ids[i] for i in bad[:10])
        raise ValueError(
            f"{len(bad)} sample(s) produced NaN or inf activations ({names}); with float16 storage this is "
            "overflow: collect with dtype=torch.float32"
        )


def _resume_point(directory: Path, provenance: dict[str, Any], ids: list[str], run: dict[str, Any]) -> int:
    """How many shards in ``directory`` can be kept; raise if it holds a different run."""
    if not (directory / MANIFEST).exists():
        if directory.exists() and any(directory.iterdir()):
            raise FileExistsError(
                f"{directory} is not empty and holds no activations manifest; choose an empty or new directory"
            )
        return 0
    manifest = read_manifest(directory)
    differences = []
    for key in sorted(set(provenance) | set(manifest["provenance"])):
        if key == "package_version":
            continue
        if manifest["provenance"].get(key) != provenance.get(key):
            differences.append(
                f"{key}: {manifest['provenance'].get(key)!r} there vs {provenance.get(key)!r} now"
            )
    if manifest.get("run") != run:
        differences.append(f"run settings: {manifest.get('run')} there vs {run} now")
    if manifest["ids"] != ids:
        differences.append("the sample ids differ")
    if differences:
        raise ValueError(
            f"{directory} holds activations from a different run ({'; '.join(differences)}); nothing was "
            "overwritten. Use another out= directory, or delete this one to start over"
        )
    kept = 0
    for shard in manifest["shards"]:
        path = directory / shard["file"]
        if not path.exists():
            break
        try:
            n = load_file(str(path))["labels"].shape[0]
        except Exception:  # a torn file from a crash: recompute it
            break
        if n != shard["n"]:
            break
        kept += 1
    return kept
