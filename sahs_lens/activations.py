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

Under ``torchrun`` (``sahs_lens.distributed``) the same call is data-parallel: the ranks first check that
they all got the same model, samples and arguments, then each takes a deterministic share of the shards
still missing (the shards a single process would write, so batches are composed the same way) and records
them in its own ``progress-RRRRR.json``; rank 0 finally writes the manifest one process would have written.
The directory is then identical, file for file, to a single-process run. Resuming after any rank was
killed reads every verified shard, whichever world size wrote it, and shares out only the rest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from model_adapters import HookedVLM
from model_adapters.hook_names import HOOK_Z
from sahs_lens._version import __version__
from sahs_lens.content import SampleLike, sample_content
from sahs_lens.decision import POSITION_RULE, DecisionReader
from sahs_lens.distributed import World, current_world, fingerprint
from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import HeadSet
from sahs_lens.schema import sha256_file
from sahs_lens.shards import (
    FORMAT,
    MANIFEST,
    SHARD_PATTERN,
    is_legacy,
    progress_name,
    read_manifest,
    read_progress,
    read_shard,
    remove_progress,
    shard_name,
    write_manifest,
    write_progress,
    write_shard,
)


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
    distributed: bool = True,
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
        progress: show a progress bar (under torchrun: on rank 0).
        distributed: under torchrun (a process group, or ``WORLD_SIZE`` > 1), share the work between the
            ranks (``sahs_lens.distributed``; every rank must call it then); ``False``: this process
            collects everything on its own.

    Returns:
        ``HeadActivations`` with ``z`` of shape ``[n_samples, n_layers, n_heads, d_head]``.

    Example:
        >>> acts = collect_head_activations(model, samples, batch_size=8, out="runs/acts")
    """
    samples = list(samples)
    _check_samples(samples)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1; got {batch_size!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:  # int8 stored zeros
        raise ValueError(
            f"dtype (of the stored features) must be a floating dtype, e.g. torch.float16; got {dtype!r}"
        )
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
    world = current_world() if distributed else World()
    run = {"batch_size": batch_size, "shard_size": shard_size, "n_samples": len(samples)}
    content = sample_content(samples)
    if world.size > 1:
        progress = progress and world.is_main
        _check_ranks_agree(world, model, provenance, run, [ids, sources, content])

    if out is None:
        starts = range(0, len(samples), batch_size)
        mine = world.share(starts)
        total = sum(min(batch_size, len(samples) - lo) for lo in mine)
        bar = tqdm(total=total, desc="collecting hook_z", disable=not progress, unit="sample")
        batches: dict[int, Tensor] = {}
        for lo in mine:  # one process: every batch; under torchrun: this rank's, then gathered in order
            batches[lo] = reader(samples[lo : lo + batch_size])
            bar.update(len(batches[lo]))
        bar.close()
        if world.size > 1:
            batches = {lo: z for share in world.gather(batches) for lo, z in share.items()}
        z = torch.cat([batches[lo] for lo in starts])
        acts = HeadActivations(z=z, labels=labels, ids=ids, sources=sources, provenance=provenance)
        acts.check_finite()
        return acts

    directory = Path(out)
    extra = {"run": run, "content": content}
    if world.size > 1 or read_progress(directory):  # several ranks, or a run of several to resume
        job = _Job(directory, provenance, ids, sources, labels, run, content, samples)
        return collect_ranked(world, job, reader, progress=progress)
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


@dataclass
class _Job:
    """One collection into a directory, as every rank computes it (``collect_ranked``)."""

    directory: Path
    provenance: dict[str, Any]
    ids: list[str]
    sources: list[str]
    labels: Tensor
    run: dict[str, Any]
    content: dict[str, list[Any]]
    samples: list[Any]

    @property
    def shard_size(self) -> int:
        return int(self.run["shard_size"])

    @property
    def n_shards(self) -> int:
        return math.ceil(len(self.ids) / self.shard_size)

    def rows(self, s: int) -> tuple[int, int]:
        return s * self.shard_size, min(len(self.ids), (s + 1) * self.shard_size)

    def fingerprint(self) -> str:
        """What a progress record must match: the run, minus the package version (as ``_resume_point``)."""
        prov = {k: v for k, v in self.provenance.items() if k != "package_version"}
        return fingerprint([prov, self.run, self.ids, self.sources, self.content])

    def write_manifest(self, shards: list[dict[str, Any]], complete: bool) -> None:
        write_manifest(self.directory, provenance=self.provenance, shards=shards, ids=self.ids,
                       sources=self.sources, complete=complete, extra={"run": self.run, "content": self.content})  # fmt: skip


def collect_ranked(
    world: World, job: _Job, reader: _LastPositionReader, *, progress: bool
) -> HeadActivations:
    """Collect ``job`` with this rank's share of its unfinished shards; the same directory as one process.

    Every rank reads what the directory holds (``_resume_point`` for ``manifest.json``, plus the verified
    shards of every ``progress-*.json``, whichever world size wrote them), the ranks check that they all see
    the same, and the shards still missing are shared out (``World.share``). Each rank writes its shards
    and its progress record; at the end rank 0 writes the complete manifest and removes the records.
    """
    directory = job.directory
    done, complete, own = world.all_ok(lambda: _ranked_state(job))
    shared = "it must be one directory on a filesystem every rank shares (the same path on every machine)"
    world.agree({"finished shards": fingerprint([sorted(done), complete])}, what=f"what {directory} holds",
                fix=shared)  # fmt: skip
    if not complete:

        def start() -> None:
            if world.is_main:
                directory.mkdir(parents=True, exist_ok=True)
                if not (directory / MANIFEST).is_file() or (directory / MANIFEST).stat().st_size == 0:
                    job.write_manifest([], complete=False)  # the run's identity, before any shard

        world.all_ok(start)
        world.barrier()
        seen = world.all_ok(lambda: _visible_manifest(directory, shared))
        world.agree({"manifest.json": seen}, what=f"the manifest in {directory}", fix=shared)
    mine = world.share([s for s in range(job.n_shards) if s not in done])
    entries = dict(own.get(progress_name(world.rank), {}))
    new: dict[int, dict[str, Any]] = {}
    total = sum(job.rows(s)[1] - job.rows(s)[0] for s in mine)
    bar = tqdm(total=total, desc="collecting hook_z", disable=not progress, unit="sample")
    for s in mine:
        lo, hi = job.rows(s)
        parts = []
        for b in range(lo, hi, job.run["batch_size"]):
            parts.append(reader(job.samples[b : min(hi, b + job.run["batch_size"])]))
            bar.update(len(parts[-1]))
        z = torch.cat(parts)
        _check_finite_chunk(z, job.ids[lo:hi])
        new[s] = entries[s] = write_shard(directory, s, z, job.labels[lo:hi], start=lo, ids=job.ids[lo:hi])
        write_progress(directory, world.rank, run_fingerprint=job.fingerprint(), shards=entries)
    bar.close()
    gathered = world.gather(new)  # every rank's new shards, so rank 0 never trusts a stale record

    def finish() -> None:
        if not world.is_main:
            return
        if not complete:
            finished = dict(done)
            for share in gathered:
                finished.update(share)
            job.write_manifest([finished[s] for s in range(job.n_shards)], complete=True)
        remove_progress(directory)

    world.all_ok(finish)
    return HeadActivations.load(directory)


def _visible_manifest(directory: Path, shared: str) -> str:
    if not (directory / MANIFEST).is_file():
        raise FileNotFoundError(
            f"{directory / MANIFEST}, written by rank 0, is not visible on this rank: {shared}"
        )
    return sha256_file(directory / MANIFEST)


def _ranked_state(job: _Job) -> tuple[dict[int, dict[str, Any]], bool, dict[str, dict[int, dict[str, Any]]]]:
    """``(finished shards by index, complete, each progress record's verified shards)`` of ``job``'s directory.

    A record's entry is kept only when its file verifies (``read_shard``: SHA-256, place, shape) and sits
    where this run puts shard ``index``; anything else is recomputed.
    """
    directory = job.directory
    shards, complete = _resume_point(directory, job.provenance, job.ids, job.sources, job.run, job.content)
    done = dict(enumerate(shards))
    own: dict[str, dict[int, dict[str, Any]]] = {}
    for name, record in read_progress(directory).items():
        if record["run_fingerprint"] != job.fingerprint():
            raise ValueError(
                f"{directory / name} records shards of another run than {directory / MANIFEST} describes; "
                "nothing was overwritten. Delete the directory to start over, or use another out= directory"
            )
        kept: dict[int, dict[str, Any]] = {}
        for entry in record["shards"]:
            s, rest = entry["index"], {k: v for k, v in entry.items() if k != "index"}
            lo, hi = job.rows(s)
            if (
                s >= job.n_shards
                or rest["file"] != shard_name(s)
                or (rest["start"], rest["n"]) != (lo, hi - lo)
            ):
                continue
            try:
                read_shard(directory, {"format": FORMAT, "ids": job.ids, "shards": [rest]}, 0)
            except ValueError:  # damaged since it was written: recompute it
                continue
            kept[s] = rest
        own[name] = kept
        done.update(kept)
    return done, complete and len(done) == job.n_shards, own


def _check_ranks_agree(
    world: World, model: HookedVLM, provenance: dict[str, Any], run: dict[str, Any], samples: list[Any]
) -> None:
    """Refuse, on every rank and before any forward or write, unless all ranks got the same job."""
    model_keys = {*model.cfg.identity(), "model_dtype", "d_model"}
    world.agree(
        {
            "the model": fingerprint({k: v for k, v in provenance.items() if k in model_keys}),
            "the samples (ids, sources, prompts, images, labels)": fingerprint(samples),
            "the arguments (dtype, heads, dataset, batch and shard size, version)": fingerprint(
                [{k: v for k, v in provenance.items() if k not in model_keys}, run]
            ),
        },
        what="what to collect",
        fix="start every rank with the same --model, --data and options (nothing was written)",
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
    bad = [s for s in samples if isinstance(s.label, str) or s.label not in (0, 1)]  # 0.5 is no 0
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
