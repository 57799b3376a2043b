"""Reading an artifact's JSON as untrusted input: one reader, one schema check, one path rule.

An artifact (activations, a probe sweep, a guard, a demo run) is read back from disk, and what is on disk
is not necessarily what sahs_lens wrote: a crash can leave a file half-written, a copy can flip a byte,
someone can hand-edit a key, and a directory shared with (or downloaded from) someone else may have been
written by an attacker. A guard is a safety component, so its files are read the way a server reads a
request:

- ``read_json``: a missing file, bytes that are not UTF-8, text that is not JSON, a top level of the wrong
  kind, or nesting deep enough to exhaust Python's recursion all become one clear ``ValueError`` (or
  ``FileNotFoundError``) that names the file and says what was expected, never a bare ``KeyError``,
  ``TypeError`` or ``RecursionError`` from deep inside the loader;
- ``check``: a small declarative schema (``Rule`` per key: type, optional, range, choices, nested keys,
  list items). A ``bool`` must be exactly ``true``/``false`` (``"no"`` or ``1`` is refused, so
  ``"complete": "no"`` never counts as complete), an ``int`` is never a ``bool``, and a float is finite
  unless a rule says otherwise. Errors name the file and the key path (``shards[2].file``) with the
  expected and the given value. Keys a rule does not name are left alone, so a newer writer may add some;
- ``confined``: a file name read from JSON is a plain name inside its directory: no absolute path, no
  ``..``, no separator, and (after resolving links) still inside the directory. Without it a manifest could
  make the loader read ``/etc/passwd`` or ``../../outside/x.safetensors``;
- ``sha256_file``: the checksum recorded next to each payload file and verified before the payload is used.

>>> check({"n": 3, "complete": True}, {"n": Rule(int, ge=0), "complete": Rule(bool)}, file="m.json")
>>> check({"n": -1}, {"n": Rule(int, ge=0)}, file="m.json")
Traceback (most recent call last):
...
ValueError: m.json: 'n' must be an int >= 0; got int -1 (the file is damaged or was not written by sahs_lens)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SHA256_HEX", "Rule", "check", "confined", "read_json", "sha256_file"]

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
"""A SHA-256 digest as lower-case hex (what ``hashlib.sha256().hexdigest()`` gives)."""

_DAMAGED = "the file is damaged or was not written by sahs_lens"
_NAMES = {bool: "a bool", int: "an int", float: "a number", str: "a str", list: "a list", dict: "an object"}


@dataclass(frozen=True)
class Rule:
    """What one JSON value must be.

    Args:
        kind: ``bool``, ``int``, ``float`` (any finite JSON number), ``str``, ``list`` or ``dict``.
        optional: the key may be absent.
        nullable: ``null`` is accepted too.
        ge, gt, le, lt: bounds for numbers (``gt=0, lt=1`` for a probability strictly inside (0, 1)).
        choices: the only values accepted (e.g. a format string).
        pattern: a regular expression a ``str`` must match in full.
        finite: refuse NaN and infinities (floats only; default True).
        keys: for ``dict``, the rules of its keys (a nested spec).
        items: for ``list``, the rule every element follows.
    """

    kind: type
    optional: bool = False
    nullable: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    pattern: re.Pattern[str] | None = None
    finite: bool = True
    keys: Mapping[str, Rule] | None = field(default=None)
    items: Rule | None = None

    def describe(self) -> str:
        """``'an int >= 0'``, ``'a number > 0 and < 1'``, ``"one of 'flag', 'raise'"``, ..."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = _NAMES.get(self.kind, self.kind.__name__)
        if self.items is not None:
            text += f" (each item {self.items.describe()})"
        bounds = [
            f"{op} {value:g}"
            for op, value in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if value is not None
        ]
        if bounds:
            text += " " + " and ".join(bounds)
        if self.pattern is SHA256_HEX:
            text += " (a hex SHA-256 digest)"
        elif self.pattern is not None:
            text += f" matching {self.pattern.pattern!r}"
        return text + (" or null" if self.nullable else "")


def check(data: Any, spec: Mapping[str, Rule], *, file: str | Path, path: str = "") -> None:
    """Raise ``ValueError`` naming ``file`` and the key path unless ``data`` follows ``spec``.

    ``spec`` maps each key of the object to its ``Rule``; keys not in ``spec`` are not checked.

    Example:
        >>> shard = {"file": Rule(str), "n": Rule(int, ge=0)}
        >>> check({"shards": [{"file": "a", "n": 1}]}, {"shards": Rule(list, items=Rule(dict, keys=shard))},
        ...       file="manifest.json")
    """
    if not isinstance(data, dict):
        where = f"{path!r} must be" if path else "its top level must be"
        raise ValueError(f"{file}: {where} an object; got {_given(data)} ({_DAMAGED})")
    for key, rule in spec.items():
        where = f"{path}.{key}" if path else key
        if key not in data:
            if not rule.optional:
                raise ValueError(
                    f"{file}: required key {where!r} is missing (expected {rule.describe()}; {_DAMAGED})"
                )
            continue
        _check_value(data[key], rule, file=file, path=where)


def _check_value(value: Any, rule: Rule, *, file: str | Path, path: str) -> None:
    if value is None and rule.nullable:
        return
    problem = _problem(value, rule)
    if problem:
        raise ValueError(f"{file}: {path!r} must be {rule.describe()}; got {problem} ({_DAMAGED})")
    if rule.keys is not None:
        check(value, rule.keys, file=file, path=path)
    if rule.items is not None:
        for i, item in enumerate(value):
            _check_value(item, rule.items, file=file, path=f"{path}[{i}]")


def _problem(value: Any, rule: Rule) -> str | None:
    """What is wrong with ``value`` at this level (its type, range, choice or pattern), or None."""
    kind = rule.kind
    if kind is bool:
        ok = value is True or value is False
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        return _given(value)
    if kind is float and rule.finite and not math.isfinite(value):
        return _given(value)
    if rule.choices is not None and value not in rule.choices:
        return _given(value)
    if kind in (int, float):
        bounds = (
            (rule.ge, lambda v, b: v >= b),
            (rule.gt, lambda v, b: v > b),
            (rule.le, lambda v, b: v <= b),
            (rule.lt, lambda v, b: v < b),
        )
        if not all(bound is None or test(value, bound) for bound, test in bounds):
            return _given(value)  # NaN fails every comparison: refused
    if rule.pattern is not None and not rule.pattern.fullmatch(value):
        return _given(value)
    return None


def read_json(path: str | Path, *, what: str, top: type | None = dict) -> Any:
    """Parse the JSON file ``path``; every way it can fail is a ``ValueError`` naming the file.

    Args:
        path: the file.
        what: what the file should be, for messages (``"an activations manifest"``).
        top: the kind the top level must be (``dict``: a JSON object; ``list``; None: anything).

    Raises:
        FileNotFoundError: there is no such file.
        ValueError: not UTF-8, not JSON, nested too deeply, or a top level of another kind.

    Example:
        >>> read_json("run/acts/manifest.json", what="an activations manifest")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist; expected {what} there") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory; expected {what} (a JSON file) there") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {error.start}); expected {what} ({_DAMAGED})"
        ) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(
            f"{path} is nested too deeply to be {what} (JSON nesting exhausted the recursion limit; {_DAMAGED})"
        ) from None
    except ValueError as error:  # json.JSONDecodeError, and integers too long to convert
        raise ValueError(f"{path} is not valid JSON ({error}); expected {what} ({_DAMAGED})") from None
    if top is not None and not isinstance(data, top):
        raise ValueError(
            f"{path} is not {what}: its top level must be {_NAMES.get(top, top.__name__)}; got "
            f"{_given(data)} ({_DAMAGED})"
        )
    return data


def confined(directory: str | Path, name: Any, *, file: str | Path, key: str = "file") -> Path:
    """The path of ``name`` inside ``directory``, where ``name`` was read from key ``key`` of ``file``.

    ``name`` must be a plain file name: a non-empty str with no path separator, not ``.`` or ``..``, not
    absolute, and (after resolving symbolic links) still inside ``directory``; anything else raises
    ``ValueError`` naming ``file`` and ``key``.

    Example:
        >>> confined("run/acts", "z-00000.safetensors", file="manifest.json").name
        'z-00000.safetensors'
    """
    directory = Path(directory)
    plain = (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and not any(sep in name for sep in ("/", "\\", "\0"))
        and not Path(name).is_absolute()
        and not re.match(r"^[A-Za-z]:", name)  # a Windows drive
    )
    if plain:
        target = (directory / name).resolve()
        root = directory.resolve()
        if target != root and target.is_relative_to(root):
            return directory / name
    raise ValueError(
        f"{file}: {key!r} must be a plain file name inside {directory} (no directories, no '..', not "
        f"absolute, no link leading out); got {_given(name)}. Refusing to read outside the artifact's directory"
    )


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes, as lower-case hex (as ``sha256sum`` prints it)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _given(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
