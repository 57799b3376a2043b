"""Writing an artifact of several files so that a crash never leaves a mix of two saves.

A guard is ``guard.safetensors`` (its weights) plus ``guard.json`` (its heads, threshold and provenance);
a probe sweep is ``probe_sweep.safetensors`` plus ``probe_sweep.json``. Writing them one after the other
in place has a window: a save killed between the two files leaves the new weights beside the old JSON,
which names other heads and another threshold, and loads without a word. Two rules close it:

1. **Every file is written atomically**: into ``NAME.tmp`` in the same directory, flushed to disk
   (``fsync``), then renamed over ``NAME``. A rename within one file system is atomic, so a reader sees the
   old file or the new one, never half of either; a crash leaves at most a stale ``NAME.tmp``, which no
   reader looks at.
2. **The JSON is written last and binds the payload**: it records ``"files": {name: sha256}`` for each
   payload file, and ``check_bound`` verifies every checksum before the payload is used. The new
   weights beside the old JSON fail that check (a message naming both files says to save again).

The payload also carries what it must agree with in its own safetensors metadata (``bound_metadata``):
the artifact's format and, for a guard, its heads in order. That binds in the other direction: editing
the JSON's ``heads`` (each head's weights would multiply another head's features) or stripping its
``files`` entry to pass as an older, unbound save is refused, because the weights say otherwise. Files
saved before binding existed (no ``files`` entry and no metadata) still load, with a warning that says
nothing binds them (``LegacyArtifactWarning``); saving them again binds them.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> digest = write_atomic(d / "x.bin", b"payload")
>>> check_bound(d, {"x.bin": digest}, where="x.json")
>>> _ = write_atomic(d / "x.bin", b"other payload")
>>> check_bound(d, {"x.bin": digest}, where="x.json")
Traceback (most recent call last):
...
ValueError: x.json: x.bin is not the file this JSON was saved with (its SHA-256 differs): the two files come from different saves (an interrupted save, or one file replaced); save it again
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sahs_lens.schema import SHA256_HEX, confined, sha256_file

__all__ = [
    "LegacyArtifactWarning",
    "bound_metadata",
    "check_bound",
    "payload_metadata",
    "write_atomic",
    "write_json_atomic",
]


class LegacyArtifactWarning(UserWarning):
    """An artifact saved before its files were bound together loaded; nothing checks that they belong."""


def write_atomic(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (``.tmp``, fsync, rename); the SHA-256 of what was written."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    _fsync_directory(path.parent)
    return hashlib.sha256(data).hexdigest()


def write_json_atomic(path: Path, data: Any, *, indent: int = 2) -> str:
    """``write_atomic`` of ``data`` as JSON (with a final newline)."""
    return write_atomic(path, (json.dumps(data, indent=indent) + "\n").encode("utf-8"))


def check_bound(
    directory: Path,
    files: Any,
    *,
    where: str,
    expected: tuple[str, ...] = (),
    read: Mapping[str, bytes] | None = None,
) -> None:
    """Raise ``ValueError`` unless each file of ``files`` (``{name: sha256}``) is in ``directory`` unchanged.

    ``expected``: names that must be among ``files`` (the payloads this kind of artifact always has).
    ``read``: payloads already read (``{name: bytes}``); their bytes are checked, not the file again, so
    that what is verified is exactly what is then loaded (a save in between cannot slip in).
    """
    if not isinstance(files, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and SHA256_HEX.match(v) for k, v in files.items()
    ):
        raise ValueError(
            f"{where}: 'files' must map file names to SHA-256 digests (64 lower-case hex); got {files!r:.120} "
            "(the file is damaged or was not written by sahs_lens)"
        )
    missing = [name for name in expected if name not in files]
    if missing:
        raise ValueError(f"{where}: 'files' does not bind {', '.join(missing)}; save it again")
    for name, digest in files.items():
        path = confined(directory, name, file=where, key=f"files.{name}")
        if (read is None or name not in read) and not path.is_file():
            raise ValueError(f"{where}: {name} is missing from {directory}; save it again")
        actual = hashlib.sha256(read[name]).hexdigest() if read and name in read else sha256_file(path)
        if actual != digest:
            raise ValueError(
                f"{where}: {name} is not the file this JSON was saved with (its SHA-256 differs): the two files "
                "come from different saves (an interrupted save, or one file replaced); save it again"
            )


def bound_metadata(
    meta: Mapping[str, Any],
    payload_metadata: Mapping[str, str] | None,
    binding: Mapping[str, str],
    *,
    where: str,
) -> None:
    """Check the JSON ``meta`` against what its payload's safetensors metadata records.

    ``binding`` is what this JSON would make the payload record (``{"format": ..., "heads": ...}``). A
    payload that records a binding must agree with it key for key; a JSON without ``files`` next to a
    payload that records a binding is a stripped (downgraded) file and is refused. With neither, the
    artifact predates binding: it loads with a ``LegacyArtifactWarning``.
    """
    recorded = {k: v for k, v in (payload_metadata or {}).items() if k in binding}
    if "files" not in meta:
        if recorded:
            raise ValueError(
                f"{where} has no 'files' entry but its payload was written by a binding save: the JSON was "
                "edited or belongs to an older save, and its checks cannot be switched off; save it again"
            )
        warnings.warn(
            f"{where} was saved by an earlier sahs_lens: nothing binds its files together, so a mix of two "
            "saves cannot be detected; save it again to bind them",
            LegacyArtifactWarning,
            stacklevel=3,
        )
        return
    for key, value in binding.items():
        if recorded.get(key) != value:
            raise ValueError(
                f"{where}: its {key!r} is {value!r:.120} but the payload was saved with "
                f"{recorded.get(key)!r:.120}: the JSON was edited after the save; save it again"
            )


def payload_metadata(raw: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (``{}`` when there is none); ``ValueError`` for a header
    that cannot be read."""
    try:
        size = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + size])
        meta = header.get("__metadata__") or {}
        return {str(k): str(v) for k, v in meta.items()}
    except (ValueError, AttributeError, RecursionError):
        raise ValueError("unreadable safetensors header") from None


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
