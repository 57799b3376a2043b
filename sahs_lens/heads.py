"""Attention heads as values: ``Head(layer, head)`` and an ordered ``HeadSet``.

A *head* is one attention head of the language model, addressed by its layer and its index inside the
layer; in TransformerLens terms its output lives in ``blocks.{layer}.attn.hook_z[:, :, head]``. A
``HeadSet`` is an ordered selection of heads (the order is the ranking: the first head is the best).
Heads print as ``L12H5`` and parse back from that form, so a head set can travel through a command line,
a JSON file or a notebook cell without losing anything.

>>> heads = HeadSet.parse("L12H5, L3H0")
>>> str(heads)
'L12H5,L3H0'
>>> heads[0]
Head(layer=12, head=5)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from model_adapters.hook_names import hook_z_name
from sahs_lens.atomic_files import write_json_atomic
from sahs_lens.schema import read_json

_HEAD_PATTERN = re.compile(r"^\s*L(\d+)H(\d+)\s*$", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Head:
    """One attention head: ``layer`` and ``head`` index (both from 0)."""

    layer: int
    head: int

    def __post_init__(self) -> None:
        if not isinstance(self.layer, int) or not isinstance(self.head, int):
            raise TypeError(f"Head(layer, head) takes two ints; got {self.layer!r}, {self.head!r}")
        if self.layer < 0 or self.head < 0:
            raise ValueError(f"Head indices count from 0; got layer={self.layer}, head={self.head}")

    def __str__(self) -> str:
        return f"L{self.layer}H{self.head}"

    @property
    def hook_name(self) -> str:
        """The TransformerLens hook that carries this head's output, ``blocks.{layer}.attn.hook_z``."""
        return hook_z_name(self.layer)

    @classmethod
    def parse(cls, text: str) -> Head:
        """Parse ``"L12H5"`` (case-insensitive) into ``Head(12, 5)``."""
        match = _HEAD_PATTERN.match(text)
        if match is None:
            raise ValueError(f"cannot read {text!r} as a head; write heads as L<layer>H<head>, e.g. 'L12H5'")
        return cls(int(match.group(1)), int(match.group(2)))


class HeadSet(Sequence[Head]):
    """An ordered, duplicate-free selection of heads (best first when it comes from a ranking)."""

    def __init__(self, heads: Iterable[Head | tuple[int, int] | str] = ()) -> None:
        items: list[Head] = []
        seen: set[Head] = set()
        for item in heads:
            head = _as_head(item)
            if head in seen:
                raise ValueError(f"head {head} appears twice in the head set; list each head once")
            seen.add(head)
            items.append(head)
        self._heads: tuple[Head, ...] = tuple(items)

    @classmethod
    def parse(cls, text: str) -> HeadSet:
        """Parse a comma- or space-separated list such as ``"L12H5, L3H0"``."""
        parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
        return cls(Head.parse(p) for p in parts)

    @overload
    def __getitem__(self, index: int) -> Head: ...
    @overload
    def __getitem__(self, index: slice) -> HeadSet: ...
    def __getitem__(self, index: int | slice) -> Head | HeadSet:
        if isinstance(index, slice):
            return HeadSet(self._heads[index])
        return self._heads[index]

    def __len__(self) -> int:
        return len(self._heads)

    def __iter__(self) -> Iterator[Head]:
        return iter(self._heads)

    def __contains__(self, item: object) -> bool:
        return item in self._heads

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HeadSet):
            return self._heads == other._heads
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._heads)

    def __str__(self) -> str:
        return ",".join(str(h) for h in self._heads)

    def __repr__(self) -> str:
        return f"HeadSet({str(self)!r})"

    @property
    def layers(self) -> list[int]:
        """The distinct layers touched, in increasing order."""
        return sorted({h.layer for h in self._heads})

    def by_layer(self) -> dict[int, list[int]]:
        """``{layer: [head, ...]}`` in ranking order within each layer."""
        out: dict[int, list[int]] = {}
        for h in self._heads:
            out.setdefault(h.layer, []).append(h.head)
        return out

    def check_fits(self, n_layers: int, n_heads: int) -> None:
        """Raise ``ValueError`` naming the heads that do not exist in a model of this shape."""
        bad = [str(h) for h in self._heads if h.layer >= n_layers or h.head >= n_heads]
        if bad:
            raise ValueError(
                f"heads {', '.join(bad)} do not exist in a model with {n_layers} layers x {n_heads} heads; "
                f"valid heads run from L0H0 to L{n_layers - 1}H{n_heads - 1}"
            )

    def to_list(self) -> list[str]:
        return [str(h) for h in self._heads]

    def to_dict(self) -> dict[str, Any]:
        """``{"heads": ["L12H5", ...]}``; ``from_dict`` rebuilds the same set in the same order."""
        return {"heads": self.to_list()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadSet:
        if not isinstance(data, dict) or not isinstance(data.get("heads"), list):
            raise ValueError(
                f'a head set is {{"heads": ["L12H5", ...]}}; got {type(data).__name__} {data!r:.80}'
            )
        bad = [h for h in data["heads"] if not isinstance(h, str)]
        if bad:
            raise ValueError(f'a head set is {{"heads": ["L12H5", ...]}} (strs); got also {bad[0]!r:.40}')
        return cls(Head.parse(h) for h in data["heads"])

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``{"heads": ["L12H5", ...]}`` to a ``.json`` file, or to ``heads.json`` in a directory.

        Refuses to replace an existing file unless ``overwrite=True``; returns the file written.
        """
        file = _heads_file(path)
        if file.exists() and not overwrite:
            raise FileExistsError(f"{file} already exists; pass overwrite=True or choose another path")
        file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(file, self.to_dict())
        return file

    @classmethod
    def load(cls, path: str | Path, model: Any = None) -> HeadSet:
        """Read a file written by ``save`` (or a directory holding ``heads.json``).

        With ``model=`` (a ``HookedVLM``), refuse heads that do not exist in that model.
        """
        file = _heads_file(path)
        if not file.exists():
            raise FileNotFoundError(f"no head set at {file}; write one with HeadSet.save")
        data = read_json(file, what='a head set (JSON like {"heads": ["L12H5"]})', top=None)
        try:
            heads = cls.from_dict(data)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{file}: {error}") from None
        if model is not None:
            heads.check_fits(model.cfg.n_layers, model.cfg.n_heads)
        return heads


def _heads_file(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" or (path.exists() and not path.is_dir()) else path / "heads.json"


def _as_head(item: Head | tuple[int, int] | str) -> Head:
    if isinstance(item, Head):
        return item
    if isinstance(item, str):
        return Head.parse(item)
    if isinstance(item, tuple) and len(item) == 2:
        return Head(int(item[0]), int(item[1]))
    raise TypeError(f"cannot use {item!r} as a head; pass Head(layer, head), (layer, head) or 'L<l>H<h>'")
