"""How ``HeadActivations`` lie on disk: safetensors shards, and a manifest that vouches for every one of them.

A directory of activations is ``manifest.json`` plus shards ``z-00000.safetensors``, ``z-00001...``, each
holding ``z [n, layer, head_index, d_head]`` and ``labels [n]`` for a contiguous run of samples. The
manifest lists the shards in order, and for each one records:

- ``file`` (a plain name, confined to the directory: ``sahs_lens.schema.confined``) and ``n``, its rows;
- ``start``, the index of its first sample, and ``ids_sha256``, a hash of the ids of its samples: the same
  two values are written into the shard's own safetensors metadata, so a shard in the wrong place (two
  files swapped, two entries swapped) is recognised;
- ``sha256``, the checksum of the file, verified before the file is used: a flipped byte or a torn write
  refuses with a message naming the shard.

A collection (``collect_head_activations(out=...)``) also records ``content``: per sample a SHA-256 of its
prompt and of its image and its label, so that a resumed run can tell whether its samples are still the
ones whose rows are on disk. Every write is atomic (a ``.tmp`` file, fsync, rename), so a run killed at
any moment leaves either the old file or the new one, plus at most a stale ``*.tmp`` that the next run
ignores.

A collection spread over several processes (``sahs_lens.distributed``) also keeps, while it runs, one
``progress-RRRRR.json`` per rank: the manifest entries (plus their shard ``index``) of the shards that rank
has finished, and a fingerprint of the run they belong to. Shards need not finish in order there; when all
ranks are done, rank 0 writes the one ``manifest.json`` a single process would have written and removes
the progress files, so the finished directory is the same file for file.

Directories written before checksums existed (format ``sahs_lens.head_activations/1``) still load when
finished, with a ``LegacyArtifactWarning`` (nothing in them can be verified beyond shapes and counts), but
are never resumed. Setting a checked manifest's format back to ``/1`` does not switch its checks off: a
manifest or shard that carries what only format 2 writes (checksums, ``start``, ``content``, the shards'
``ids_sha256`` metadata) under format ``/1`` is refused as a downgrade. Sample ids are unique.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from torch import Tensor

from sahs_lens._version import __version__
from sahs_lens.atomic_files import payload_metadata
from sahs_lens.schema import SHA256_HEX, Rule, check, confined, read_json, sha256_file

MANIFEST = "manifest.json"
FORMAT = "sahs_lens.head_activations/2"
LEGACY_FORMAT = "sahs_lens.head_activations/1"
SHARD_PATTERN = re.compile(r"^z-\d{5}\.safetensors$")

_SHARD = {
    "file": Rule(str),
    "n": Rule(int, ge=0),
    "start": Rule(int, ge=0),
    "sha256": Rule(str, pattern=SHA256_HEX),
    "ids_sha256": Rule(str, pattern=SHA256_HEX),
}
PROGRESS_FORMAT = "sahs_lens.head_activations.progress/1"
PROGRESS_PATTERN = re.compile(r"^progress-\d{5}\.json$")
_PROGRESS = {
    "format": Rule(str, choices=(PROGRESS_FORMAT,)),
    "rank": Rule(int, ge=0),
    "run_fingerprint": Rule(str, pattern=SHA256_HEX),
    "shards": Rule(list, items=Rule(dict, keys={"index": Rule(int, ge=0), **_SHARD})),
}
_LEGACY_SHARD = {"file": Rule(str), "n": Rule(int, ge=0)}
_CONTENT = {
    "prompt_sha256": Rule(list, items=Rule(str, pattern=SHA256_HEX)),
    "image_sha256": Rule(list, items=Rule(str, pattern=SHA256_HEX, nullable=True)),
    "labels": Rule(list, items=Rule(int, choices=(0, 1))),
}
_RUN = {"batch_size": Rule(int, ge=1), "shard_size": Rule(int, ge=1), "n_samples": Rule(int, ge=0)}


def _manifest_rules(legacy: bool) -> dict[str, Rule]:
    return {
        "format": Rule(str, choices=(FORMAT, LEGACY_FORMAT)),
        "package_version": Rule(str, optional=True),
        "complete": Rule(bool),
        "provenance": Rule(dict),
        "shards": Rule(list, items=Rule(dict, keys=_LEGACY_SHARD if legacy else _SHARD)),
        "ids": Rule(list, items=Rule(str)),
        "sources": Rule(list, items=Rule(str)),
        "run": Rule(dict, optional=True, keys=_RUN),
        "content": Rule(dict, optional=True, keys=_CONTENT),
    }


def shard_name(index: int) -> str:
    return f"z-{index:05d}.safetensors"


def ids_digest(ids: Sequence[str]) -> str:
    """SHA-256 of a list of sample ids (JSON, ASCII-escaped, so any str hashes)."""
    return hashlib.sha256(json.dumps(list(ids)).encode("ascii")).hexdigest()


def is_legacy(manifest: dict[str, Any]) -> bool:
    return bool(manifest["format"] == LEGACY_FORMAT)


def write_shard(
    directory: Path, index: int, z: Tensor, labels: Tensor, *, start: int, ids: Sequence[str]
) -> dict[str, Any]:
    """Atomically write shard ``index`` (rows ``start .. start + len(z)``); its manifest entry."""
    name = shard_name(index)
    id_hash = ids_digest(ids)
    tmp = directory / (name + ".tmp")
    raw = _canonical(
        save_bytes(
            {"z": z.contiguous(), "labels": labels.contiguous()},
            metadata={"start": str(start), "ids_sha256": id_hash},
        )
    )
    with tmp.open("wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    digest = sha256_file(tmp)
    tmp.replace(directory / name)
    return {"file": name, "n": int(z.shape[0]), "start": start, "ids_sha256": id_hash, "sha256": digest}


def write_manifest(
    directory: Path,
    *,
    provenance: dict[str, Any],
    shards: list[dict[str, Any]],
    ids: list[str],
    sources: list[str],
    complete: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    """Atomically (write, fsync, rename) record which shards are finished."""
    manifest = {
        "format": FORMAT,
        "package_version": __version__,
        "complete": complete,
        "provenance": provenance,
        "shards": shards,
        "ids": ids,
        "sources": sources,
    }
    if extra:
        manifest.update(extra)
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    _fsync(tmp)
    tmp.replace(directory / MANIFEST)


_FORMAT_2_ONLY = ("run", "content")
_SHARD_FORMAT_2_ONLY = ("sha256", "start", "ids_sha256")


def read_manifest(directory: Path) -> dict[str, Any]:
    """Read and check ``manifest.json``: its schema, and that shards, ids and content agree in length."""
    path = directory / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"no {MANIFEST} in {directory}; is this a directory of saved activations?")
    manifest = read_json(path, what="an activations manifest (written by collect_head_activations or save)")
    if manifest.get("format") not in (FORMAT, LEGACY_FORMAT):
        raise ValueError(
            f"{path} is not a sahs_lens activations manifest (format {manifest.get('format')!r}, expected "
            f"{FORMAT!r})"
        )
    if is_legacy(manifest):
        _refuse_downgrade(manifest, path)
    check(manifest, _manifest_rules(is_legacy(manifest)), file=path)
    seen: set[str] = set()
    for sample_id in manifest["ids"]:
        if sample_id in seen:
            raise ValueError(
                f"{path}: sample id {sample_id!r:.80} is listed twice; ids are unique (collection refuses "
                "duplicates), so the manifest is damaged: collect again"
            )
        seen.add(sample_id)
    shards = manifest["shards"]
    total = sum(s["n"] for s in shards)
    n_ids = len(manifest["ids"])
    if total > n_ids or (manifest["complete"] and total != n_ids):
        raise ValueError(
            f"{path}: 'ids' has {n_ids} entries but the shards hold {total} samples; the manifest is "
            "damaged: collect again"
        )
    lengths = {"sources": len(manifest["sources"])}
    lengths.update({f"content.{k}": len(v) for k, v in manifest.get("content", {}).items()})
    if "run" in manifest:
        lengths["run.n_samples"] = manifest["run"]["n_samples"]
    for key, length in lengths.items():
        if length != n_ids:
            raise ValueError(
                f"{path}: {key!r} has {length} entries but 'ids' has {n_ids}; the manifest is damaged: "
                "collect again"
            )
    names = [s["file"] for s in shards]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(
            f"{path}: shard file {dup!r} is listed twice; the manifest is damaged: collect again"
        )
    if not is_legacy(manifest):
        start = 0
        for i, shard in enumerate(shards):
            if shard["start"] != start:
                raise ValueError(
                    f"{path}: 'shards[{i}].start' is {shard['start']} but the shards before it hold {start} "
                    "samples: the shards are out of order or missing; collect again"
                )
            start += shard["n"]
    return dict(manifest)


def _refuse_downgrade(manifest: dict[str, Any], path: Path) -> None:
    """A format-1 manifest holding what only format 2 writes was downgraded by hand: refuse it."""
    shards = manifest.get("shards")
    found = [key for key in _FORMAT_2_ONLY if key in manifest]
    if isinstance(shards, list):
        found += sorted({k for s in shards if isinstance(s, dict) for k in _SHARD_FORMAT_2_ONLY if k in s})
    if found:
        raise ValueError(
            f"{path} says format {LEGACY_FORMAT!r} but holds {', '.join(found)}, which only format {FORMAT!r} "
            "writes: its format was changed by hand, and that cannot switch its checks off. Restore "
            f"'format': {FORMAT!r} (or collect again)"
        )


def read_shard(directory: Path, manifest: dict[str, Any], index: int) -> tuple[Tensor, Tensor]:
    """``(z, labels)`` of shard ``index`` of ``manifest``, verified; ``ValueError`` naming it otherwise.

    Checks: the name stays inside ``directory``; the file's SHA-256, start and ids hash match the manifest
    (format 2); the file holds ``z [n, L, H, D]`` (floating) and ``labels [n]`` (integers) with ``n`` rows.
    """
    entry = manifest["shards"][index]
    where = f"{directory / MANIFEST}"
    path = confined(directory, entry["file"], file=where, key=f"shards[{index}].file")
    name = f"shard shards[{index}] ({entry['file']}) of {directory}"
    if not path.is_file():
        raise ValueError(f"{name} is missing; the activations are incomplete: collect again")
    raw = path.read_bytes()
    if not is_legacy(manifest):
        if hashlib.sha256(raw).hexdigest() != entry["sha256"]:
            raise ValueError(
                f"{name} fails its SHA-256 check: the file changed after it was written (damaged, truncated "
                "or replaced); collect again (or restore the file)"
            )
        meta = _metadata(raw, name)
        lo = entry["start"]
        expected = {"start": str(lo), "ids_sha256": ids_digest(manifest["ids"][lo : lo + entry["n"]])}
        if meta != expected or entry["ids_sha256"] != expected["ids_sha256"]:
            raise ValueError(
                f"{name} holds other samples than the manifest says (it records {meta}, the manifest "
                f"expects {expected}): shards were swapped or moved; collect again"
            )
    elif _metadata(raw, name):
        raise ValueError(
            f"{name} was written by format {FORMAT!r} (it records its samples), but the manifest says "
            f"{LEGACY_FORMAT!r}: the manifest's format was changed by hand; restore it (or collect again)"
        )
    try:
        tensors = load_bytes(raw)
    except Exception as error:  # safetensors raises its own error types for malformed files
        raise ValueError(f"{name} cannot be read as safetensors ({error}); collect again") from None
    z, labels = tensors.get("z"), tensors.get("labels")
    n = entry["n"]
    if z is None or labels is None or z.ndim != 4 or not z.is_floating_point():
        raise ValueError(
            f"{name} must hold 'z' [n, layer, head, d_head] (float) and 'labels' [n]; collect again"
        )
    if labels.ndim != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"{name}: 'labels' must be a 1-D integer tensor; got {labels.dtype} {tuple(labels.shape)}"
        )
    if z.shape[0] != n or labels.shape[0] != n:
        raise ValueError(
            f"{name} holds {z.shape[0]} rows of z and {labels.shape[0]} labels but the manifest says n = {n}; "
            "collect again"
        )
    return z, labels


def progress_name(rank: int) -> str:
    return f"progress-{rank:05d}.json"


def write_progress(
    directory: Path, rank: int, *, run_fingerprint: str, shards: dict[int, dict[str, Any]]
) -> None:
    """Atomically record the shards rank ``rank`` has finished (``index -> manifest entry``)."""
    entries = [{"index": index, **shards[index]} for index in sorted(shards)]
    record = {"format": PROGRESS_FORMAT, "rank": rank, "run_fingerprint": run_fingerprint, "shards": entries}
    tmp = directory / (progress_name(rank) + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    _fsync(tmp)
    tmp.replace(directory / progress_name(rank))


def read_progress(directory: Path) -> dict[str, dict[str, Any]]:
    """Every ``progress-*.json`` of ``directory`` (file name -> record), each checked against its schema.

    An empty file (a crash before its data reached the disk) counts as absent.
    """
    records: dict[str, dict[str, Any]] = {}
    if not directory.is_dir():
        return records
    for path in sorted(directory.iterdir()):
        if not PROGRESS_PATTERN.match(path.name) or path.stat().st_size == 0:
            continue
        try:
            record = read_json(path, what="a per-rank progress record (written by a distributed collection)")
            check(record, _PROGRESS, file=path)
        except ValueError as error:
            raise ValueError(
                f"{error}. It only records which shards one rank had finished: delete {path} and run the same "
                "command again (that rank's unrecorded shards are collected again; nothing else is lost)"
            ) from None
        records[path.name] = record
    return records


def remove_progress(directory: Path) -> None:
    """Delete the progress records (and their ``.tmp`` leftovers) once ``manifest.json`` is complete."""
    for path in directory.iterdir():
        if PROGRESS_PATTERN.match(path.name.removesuffix(".tmp")):
            path.unlink(missing_ok=True)


def _canonical(raw: bytes) -> bytes:
    """``raw`` with its ``__metadata__`` keys sorted: safetensors writes them in hash order, which changes
    from process to process, and a shard must be the same bytes whichever process (or rank) wrote it."""
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    if len(text) > size:  # cannot happen: the same keys and values, reordered
        raise RuntimeError("safetensors header grew when its metadata was sorted")
    return raw[:8] + text.ljust(size) + raw[8 + size :]


def _metadata(raw: bytes, name: str) -> dict[str, str]:
    """The shard's own record of its place (``start``, ``ids_sha256``) from its safetensors metadata."""
    try:
        meta = payload_metadata(raw)
    except ValueError:
        raise ValueError(f"{name} has an unreadable safetensors header; collect again") from None
    return {k: meta[k] for k in ("start", "ids_sha256") if k in meta}


def _fsync(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
