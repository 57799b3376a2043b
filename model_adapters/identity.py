"""Which model an artifact belongs to: one identity record and one comparison for every artifact.

Activations, probe sweeps and guards are only meaningful on the model that produced them: a guard fitted
on LLaVA's layer-12 head outputs scores nonsense on another checkpoint, another template or another family.
Every artifact therefore carries a *provenance* record (a JSON dictionary), and before it is used with a
model (or with another artifact) the fields below are compared, all in one place:

- ``family``, ``checkpoint`` (a fingerprint of the weights' files), ``template``: the model and its prompt;
- ``n_layers``, ``n_heads``, ``d_head``: the shape of the head outputs the artifact reads.

A field missing on one side counts as a mismatch: an artifact that cannot say which model made it is used
on no model (a model always states every field). Between two artifacts, a field that *both* lack is not
compared (features made by hand, with no model at all, can still be combined with each other). (``model_name`` is recorded but not compared: the same checkpoint loaded from two paths is
the same model.)

>>> mine = {"family": "llava", "checkpoint": "ab12", "template": "llava-hf", "n_layers": 2, "n_heads": 4}
>>> identity_mismatches(mine, {**mine, "n_layers": 4, "d_head": 16})
['n_layers: 2 vs 4', 'd_head: <missing> vs 16']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

IDENTITY_FIELDS: tuple[str, ...] = ("family", "checkpoint", "template", "n_layers", "n_heads", "d_head")
"""The provenance fields an artifact must share with the model (or artifact) it is used with."""

_MISSING = "<missing>"


def identity_of(record: Mapping[str, Any]) -> dict[str, Any]:
    """The identity fields of a provenance record (``None`` where a field is absent)."""
    return {key: record.get(key) for key in IDENTITY_FIELDS}


def identity_mismatches(
    mine: Mapping[str, Any], theirs: Mapping[str, Any], fields: tuple[str, ...] = IDENTITY_FIELDS
) -> list[str]:
    """``["field: mine vs theirs", ...]`` for every field that differs; missing on one side differs."""
    diffs = []
    for key in fields:
        a, b = mine.get(key), theirs.get(key)
        if a is None and b is None:
            continue
        if a is None or b is None or a != b:
            diffs.append(
                f"{key}: {_MISSING if a is None else repr(a)} vs {_MISSING if b is None else repr(b)}"
            )
    return diffs


def check_identity(
    mine: Mapping[str, Any],
    theirs: Mapping[str, Any],
    *,
    what: str,
    fix: str = "make it again with this model",
    fields: tuple[str, ...] = IDENTITY_FIELDS,
) -> None:
    """Raise ``ValueError`` naming every identity field in which ``mine`` and ``theirs`` differ.

    ``mine`` is the artifact's provenance, ``theirs`` the model's (``HookedVLM.cfg.identity()``) or another
    artifact's provenance; ``what`` names the artifact in the message and ``fix`` says what to do.
    """
    diffs = identity_mismatches(mine, theirs, fields)
    if diffs:
        raise ValueError(f"{what} does not fit this model: {'; '.join(diffs)}; {fix}")
