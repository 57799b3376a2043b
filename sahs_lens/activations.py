"""Collect every attention head's output at the decision position, one prefill forward per batch.

The SAHs feature of a prompt is ``blocks.{l}.attn.hook_z[:, -1]`` for every layer ``l``: what each head
wrote (before the output projection) at the last prompt position, the position whose logits give the first
generated token. No generation is needed. Batches are left-padded, so the last column is every row's
decision position.

``collect_head_activations`` reads that column through ``sahs_lens.decision.DecisionReader`` (the same
reader the guard uses): one small hook per layer keeps only the last column (never the whole cache), and
the forward pass stops right after the deepest layer it needs, so collection costs at most one forward.

With ``out=`` results stream to disk as safetensors shards (``sahs_lens.shards``); an interrupted run
started again resumes after the last verified shard and ends with exactly the tensors an uninterrupted run
gives. Resuming trusts content, not names: the manifest records per sample a SHA-256 of its prompt and of
its image (the file's bytes for a path; mode, size and RGB pixels for a PIL image) and its label, and a run
whose samples changed in any of these (or came in another order) is refused, naming the first changed
sample, before any forward runs. Stale rows are never returned.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from model_adapters import HookedVLM
from model_adapters.hook_names import HOOK_Z
from model_adapters.images import open_image
from sahs_lens._version import __version__
from sahs_lens.decision import POSITION_RULE, DecisionReader
from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import HeadSet
from sahs_lens.schema import sha256_file
from sahs_lens.shards import (
    MANIFEST,
    SHARD_PATTERN,
    is_legacy,
    read_manifest,
    read_shard,
    shard_name,
    write_manifest,
    write_shard,
)


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
        out: a directory to stream shards to; an unfinished run there is resumed, a finished one is loaded
            (both only when the samples' prompts, images and labels are those the run recorded; a directory
            written by an earlier sahs_lens without content hashes is never resumed: use a new out=).
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
    content = sample_content(samples)
    extra = {"run": run, "content": content}
    shards, complete = _resume_point(directory, provenance, ids, sources, run, content)
    done = len(shards)
    if complete and done == n_shards:
        return HeadActivations.load(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if done == 0:  # a manifest before the first shard: a run killed from here on can be resumed
        write_manifest(directory, provenance=provenance, shards=[], ids=ids, sources=sources,
                       complete=False, extra=extra)  # fmt: skip
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
        shards.append(write_shard(directory, s, z, labels[lo:hi], start=lo, ids=ids[lo:hi]))
        write_manifest(directory, provenance=provenance, shards=shards, ids=ids, sources=sources,
                       complete=s == n_shards - 1, extra=extra)  # fmt: skip
    bar.close()
    if done == n_shards:  # every shard was there but the manifest did not say complete
        write_manifest(directory, provenance=provenance, shards=shards, ids=ids, sources=sources,
                       complete=True, extra=extra)  # fmt: skip
    return HeadActivations.load(directory)


def sample_content(samples: Sequence[SampleLike]) -> dict[str, list[Any]]:
    """Per sample, the SHA-256 of its prompt and of its image (None without one), and its label.

    A path's image hash is the hash of the file's bytes; a PIL image's covers its mode, size and RGB
    pixels (what the model sees). Recorded in the manifest so that resuming compares content, not ids.
    """
    prompts, images = [], []
    for sample in samples:
        prompts.append(hashlib.sha256(sample.prompt.encode("utf-8", "surrogatepass")).hexdigest())
        images.append(_image_digest(sample))
    return {"prompt_sha256": prompts, "image_sha256": images, "labels": [int(s.label) for s in samples]}


def _image_digest(sample: SampleLike) -> str | None:
    image = sample.image
    if image is None:
        return None
    if isinstance(image, Image.Image):
        rgb = open_image(image)
        digest = hashlib.sha256(f"pil:{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
        digest.update(rgb.tobytes() if rgb is not None else b"")
        return digest.hexdigest()
    if isinstance(image, str | Path):
        try:
            return sha256_file(image)
        except OSError as error:
            raise ValueError(
                f"sample {sample.id!r}: cannot read image file {image} ({type(error).__name__}: {error}); "
                "check the path"
            ) from None
    raise TypeError(
        f"sample {sample.id!r}: image must be a path, a PIL image or None; got {type(image).__name__}"
    )


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


_LEFTOVER = re.compile(r"^(manifest\.json|z-\d{5}\.safetensors)\.tmp$")


def _resume_point(
    directory: Path,
    provenance: dict[str, Any],
    ids: list[str],
    sources: list[str],
    run: dict[str, Any],
    content: dict[str, list[Any]],
) -> tuple[list[dict[str, Any]], bool]:
    """The manifest entries of the shards in ``directory`` that can be kept, and whether it is complete.

    Raises if ``directory`` holds anything but this run: another run's files, other samples (by content),
    or a directory written before content hashes existed. ``*.tmp`` files of a killed write are ignored;
    an empty ``manifest.json`` (a crash before its data reached the disk) counts as no manifest.
    """
    manifest_path = directory / MANIFEST
    torn = manifest_path.is_file() and manifest_path.stat().st_size == 0
    if not manifest_path.exists() or torn:
        if directory.exists():
            others = [
                p.name
                for p in directory.iterdir()
                if not (
                    _LEFTOVER.match(p.name) or (torn and (p.name == MANIFEST or SHARD_PATTERN.match(p.name)))
                )
            ]
            if others:
                raise FileExistsError(
                    f"{directory} is not empty and holds no activations manifest (found {sorted(others)[:3]}); "
                    "choose an empty or new directory"
                )
        return [], False
    manifest = read_manifest(directory)
    fix = "nothing was overwritten. Use another out= directory, or delete this one to start over"
    if is_legacy(manifest) or "content" not in manifest:
        raise ValueError(
            f"{directory} holds activations that record no content hashes (written by an earlier sahs_lens "
            f"or by HeadActivations.save), so resuming cannot tell whether they belong to these samples; {fix}"
        )
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
        same = sorted(manifest["ids"]) == sorted(ids)
        differences.append("the same sample ids in another order" if same else "the sample ids differ")
    elif manifest["sources"] != sources:
        differences.append("the sample sources differ")
    if differences:
        raise ValueError(
            f"{directory} holds activations from a different run ({'; '.join(differences)}); {fix}"
        )
    recorded = manifest["content"]
    keys = {"prompt_sha256": "prompt", "image_sha256": "image", "labels": "label"}
    for i, sample_id in enumerate(ids):
        changed = [name for key, name in keys.items() if recorded[key][i] != content[key][i]]
        if changed:
            raise ValueError(
                f"{directory} holds activations of other content: sample {sample_id!r} (#{i}) has a changed "
                f"{' and '.join(changed)} since that run began, so its stored activations would be stale; {fix}"
            )
    kept: list[dict[str, Any]] = []
    shard_size = run["shard_size"]
    for s, shard in enumerate(manifest["shards"]):
        expected_n = min(shard_size, len(ids) - s * shard_size)
        if shard["file"] != shard_name(s) or shard["n"] != expected_n:
            break
        try:
            read_shard(directory, manifest, s)
        except ValueError:  # damaged since it was written: recompute it and what follows
            break
        kept.append(shard)
    return kept, bool(manifest["complete"]) and len(kept) == len(manifest["shards"])
