"""A demo run directory that knows whether it is complete: ``run.json``, written first and last.

A demo run writes about a dozen files over minutes (activations, sweep, heads, guard, figures, report,
metrics). Killed half-way over an earlier run, it used to leave the earlier run's ``report.html`` and
``metrics.json`` beside this run's activations and sweep, with nothing to tell them apart. Now:

1. ``start_run`` first writes ``run.json`` with ``"complete": false`` (atomically), and only then removes
   every artifact of an earlier run: from that moment on, whatever is in the directory is marked
   incomplete. A rerun replaces a run whole; it never keeps half of the old one.
2. ``finish_run``, after the last file, writes ``run.json`` again with ``"complete": true``, the run's
   settings, and the SHA-256 of every file of the run but ``report.html`` (a rendering of the others,
   which ``report_from_run`` rebuilds from them).
3. ``check_run`` (used by ``report_from_run`` and ``sahs-lens report``) refuses a run whose ``run.json``
   says incomplete, and one whose files differ from those it records (a file changed or replaced after the
   run). A directory from before ``run.json`` existed is read with a ``LegacyArtifactWarning``.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

from sahs_lens._version import __version__
from sahs_lens.atomic_files import LegacyArtifactWarning, check_bound, write_json_atomic
from sahs_lens.schema import Rule, check, read_json, sha256_file

__all__ = [
    "RUN_FILES",
    "RUN_JSON",
    "check_run",
    "finish_run",
    "holds_earlier_run",
    "is_run_file",
    "start_run",
]

RUN_JSON = "run.json"
RUN_FORMAT = "sahs_lens.demo_run/1"
RUN_FILES = frozenset(
    {
        "activations",
        "sweep",
        "heads.json",
        "guard",
        "figures",
        "report.html",
        "report_meta.json",
        "metrics.json",
    }
)
"""What a demo run writes into its directory (besides ``run.json``): a rerun removes exactly these."""
_RENDERED = "report.html"

_RULES = {
    "format": Rule(str, choices=(RUN_FORMAT,)),
    "package_version": Rule(str, optional=True),
    "complete": Rule(bool),
    "settings": Rule(dict),
    "files": Rule(dict, optional=True),
}


def is_run_file(name: str) -> bool:
    """Whether ``name`` (an entry of a run directory) is one of the demo's, or a stale ``.tmp`` of one."""
    base = name.removesuffix(".tmp")
    return base == RUN_JSON or base in RUN_FILES


def holds_earlier_run(out: Path) -> bool:
    """Whether ``out`` holds an earlier demo run (complete or not), which a new run replaces whole.

    ``False`` for a missing or empty directory; ``FileExistsError`` for one holding anything else.
    """
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return False
    ours = all(map(is_run_file, present))
    legacy = "activations" in present and ({"figures", "report.html", "metrics.json"} & set(present))
    if ours and (RUN_JSON in present or legacy):  # a run of ours (before run.json: activations + its report)
        return True
    raise FileExistsError(
        f"--out {out} holds {', '.join(present[:5])} and is not an earlier demo run; the demo writes a run "
        "directory of its own: choose a new or empty --out"
    )


def run_state(out: Path) -> str:
    """How an earlier run in ``out`` ended, in words: finished, interrupted, or unknown (before run.json)."""
    path = out / RUN_JSON
    try:
        complete = read_json(path, what="a demo run's record").get("complete") if path.is_file() else None
    except ValueError:
        return "its run.json is unreadable"
    if complete is None:
        return "written by an earlier sahs_lens, so whether it finished is unknown"
    return "it finished" if complete is True else "it was interrupted (run.json says incomplete)"


def start_run(out: Path, settings: dict[str, Any]) -> None:
    """Mark ``out`` incomplete, then remove every artifact an earlier run left there.

    ``FileExistsError`` (before anything is touched) if ``out`` holds anything but an earlier demo run: a
    user's own directory is never cleared."""
    holds_earlier_run(out)
    out.mkdir(parents=True, exist_ok=True)
    _write(out, settings, complete=False)
    for entry in sorted(out.iterdir()):
        if entry.name != RUN_JSON and is_run_file(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def finish_run(out: Path, settings: dict[str, Any]) -> None:
    """Record the SHA-256 of every file the run wrote, and that the run is complete (``run.json``, last)."""
    files = {
        path.relative_to(out).as_posix(): sha256_file(path)
        for name in sorted(RUN_FILES - {_RENDERED})
        for path in _files(out / name)
    }
    _write(out, settings, complete=True, files=files)


def check_run(out: Path) -> dict[str, Any] | None:
    """``run.json`` of a complete, unchanged run; ``ValueError`` if it is incomplete or changed.

    ``None`` (with a ``LegacyArtifactWarning``) for a run written before ``run.json`` existed.
    """
    path = out / RUN_JSON
    if not path.exists():
        warnings.warn(
            f"{out} has no {RUN_JSON} (a demo run of an earlier sahs_lens): whether it is complete cannot be "
            "told; run the demo again to get a run that records it",
            LegacyArtifactWarning,
            stacklevel=3,
        )
        return None
    record = read_json(path, what="a demo run's record (written by sahs-lens demo)")
    check(record, _RULES, file=path)
    if not record["complete"]:
        raise ValueError(
            f'{out} holds an incomplete demo run ({path} says "complete": false: the run was interrupted, '
            f"and what is there may mix two runs); run `sahs-lens demo --out {out}` again to replace it"
        )
    files = record.get("files")
    if files is None:
        raise ValueError(f"{path}: a complete run must list its 'files'; run the demo again")
    for name in files:
        if "/" in name and not all(part not in ("", ".", "..") for part in name.split("/")):
            raise ValueError(f"{path}: file {name!r:.80} is not a path inside the run; run the demo again")
    _check_files(out, files, where=str(path))
    return dict(record)


def _check_files(out: Path, files: dict[str, Any], *, where: str) -> None:
    """Each recorded file unchanged (checked per directory, so names stay confined to their directory)."""
    by_dir: dict[str, dict[str, Any]] = {}
    for name, digest in files.items():
        parent, _, leaf = name.rpartition("/")
        by_dir.setdefault(parent, {})[leaf] = digest
    for parent, entries in by_dir.items():
        try:
            check_bound(out / parent if parent else out, entries, where=where)
        except ValueError as error:
            raise ValueError(
                f"{error}. The demo run in {out} changed after it finished; run the demo again"
            ) from None


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    return []


def _write(
    out: Path, settings: dict[str, Any], *, complete: bool, files: dict[str, str] | None = None
) -> None:
    record: dict[str, Any] = {
        "format": RUN_FORMAT,
        "package_version": __version__,
        "complete": complete,
        "settings": settings,
    }
    if files is not None:
        record["files"] = files
    write_json_atomic(out / RUN_JSON, record)
