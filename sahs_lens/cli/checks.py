"""Checks that run before any work: numeric options (as argparse types) and output paths.

A command fails here, in a second and with a message that names the option, instead of after minutes of
computation (a ``--out`` that is a file) or silently (``patch --n -1`` sliced away one pair).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "check_new_dir",
    "check_new_file",
    "check_outputs",
    "fraction",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "shot_count",
]


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number; got {text!r}") from None


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0 (seeds)."""
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more; got {text}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0; got {text}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a rate strictly between 0 and 1 (``0.05`` is 5%)."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie between 0 and 1 (0.05 means 5%); got {text}")
    return value


def shot_count(text: str) -> int | str:
    """An argparse type: training samples per class, a count (``8``) or a share of the pool (``10%``)."""
    if text.endswith("%"):
        share = _number(text[:-1])
        if not 0 < share <= 100:
            raise argparse.ArgumentTypeError(f"a percentage must lie in (0, 100]; got {text}")
        return text
    return positive_int(text)


def check_new_file(path: str | Path, flag: str = "--out") -> Path:
    """``path`` must not exist yet (a file to write): else a FileExistsError naming ``flag``."""
    path = Path(path)
    if path.is_dir():
        raise FileExistsError(f"{flag} {path} is a directory; give the name of a new file")
    if path.exists():
        raise FileExistsError(f"{flag} {path} already exists; choose another {flag} or delete the file first")
    if path.parent.exists() and not path.parent.is_dir():
        raise FileExistsError(f"{flag} {path}: {path.parent} is a file, not a directory")
    return path


def check_outputs(directory: str | Path, names: Sequence[str], flag: str = "--out") -> Path:
    """``directory`` must be a directory (or not exist yet) that holds none of ``names`` (what a command
    writes there): else a FileExistsError naming ``flag``, before the command computes anything."""
    directory = Path(directory)
    for parent in (directory, *directory.parents):
        if parent.exists() and not parent.is_dir():
            raise FileExistsError(f"{flag} {directory}: {parent} is a file; give a directory")
        if parent.exists():
            break
    present = [name for name in names if (directory / name).exists()]
    if present:
        raise FileExistsError(
            f"{flag} {directory} already holds {', '.join(present)} from an earlier run; choose another "
            f"{flag} or delete {'it' if len(present) == 1 else 'them'} first"
        )
    return directory


def check_new_dir(directory: str | Path, what: str, flag: str = "--out") -> Path:
    """``directory`` must not exist or be empty (``what`` is written there): else a FileExistsError."""
    directory = check_outputs(directory, [], flag)
    if directory.is_dir() and any(directory.iterdir()):
        raise FileExistsError(
            f"{flag} {directory} is not empty; {what} needs a new or empty directory (choose another {flag})"
        )
    return directory
