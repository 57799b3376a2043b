"""``HeadActivations``: every attention head's output at the decision position, with where it came from.

The paper's feature for a prompt is, for every head of the language model, the head's output before the
output projection (``blocks.{l}.attn.hook_z``) at the last prompt position: the position whose logits give
the first generated token. Stacked over samples this is one tensor ``z`` of shape
``[n_samples, n_layers, n_heads, d_head]``; with it travel the labels (1 = malicious, 0 = benign), the
sample ids and sources, and a provenance record (model, checkpoint, template, hook, position rule, dtype,
package version) that lets every later step refuse features from a different model.

On disk a ``HeadActivations`` is a directory of safetensors shards plus ``manifest.json``
(``sahs_lens.shards``); nothing in it executes code on load, and nothing is used before it is checked:
the manifest's schema, every shard's SHA-256 and place, and every count.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from model_adapters.hook_names import HOOK_Z
from model_adapters.identity import IDENTITY_FIELDS, check_identity
from sahs_lens.atomic_files import LegacyArtifactWarning
from sahs_lens.decision import POSITION_RULE
from sahs_lens.heads import Head, HeadSet
from sahs_lens.shards import (
    FORMAT,
    LEGACY_FORMAT,
    MANIFEST,
    is_legacy,
    read_manifest,
    read_shard,
    write_manifest,
    write_shard,
)

# Provenance fields that must agree before features from one run can be used with another run: the model's
# identity (model_adapters.identity) and how the features were read.
ARTIFACT_FIELDS = (*IDENTITY_FIELDS, "hook", "position_rule")


@dataclass
class HeadActivations:
    """Per-head features at the decision position.

    Attributes:
        z: ``[n_samples, n_layers, n_heads, d_head]`` head outputs (``hook_z``) at the last prompt position.
        labels: ``[n_samples]`` int64, 1 = malicious, 0 = benign.
        ids: one string id per sample (defaults to ``"0", "1", ...``).
        sources: one dataset/source name per sample (defaults to ``"unknown"``).
        provenance: how the features were made; see ``IDENTITY_FIELDS``.

    Example (bring your own features):
        >>> acts = HeadActivations(z=torch.randn(10, 2, 4, 8), labels=torch.tensor([0, 1] * 5))
        >>> acts.n_layers, acts.n_heads, acts.d_head
        (2, 4, 8)
    """

    z: Float[Tensor, "n layer head_index d_head"]
    labels: Int[Tensor, " n"]
    ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.z, Tensor) or self.z.ndim != 4:
            shape = tuple(self.z.shape) if isinstance(self.z, Tensor) else type(self.z).__name__
            raise ValueError(f"z must be a tensor [n_samples, n_layers, n_heads, d_head]; got {shape}")
        labels = torch.as_tensor(self.labels)
        if labels.ndim != 1 or labels.shape[0] != self.z.shape[0]:
            raise ValueError(
                f"labels must be one per sample: z has {self.z.shape[0]} samples, labels has shape "
                f"{tuple(labels.shape)}"
            )
        if labels.is_floating_point() and not torch.all(labels == labels.round()):
            raise ValueError("labels must be 0 (benign) or 1 (malicious); got fractional values")
        labels = labels.long()
        bad = sorted(set(labels.unique().tolist()) - {0, 1})
        if bad:
            raise ValueError(f"labels must be 0 (benign) or 1 (malicious); got also {bad}")
        self.labels = labels
        n = self.z.shape[0]
        if not self.ids:
            self.ids = [str(i) for i in range(n)]
        if not self.sources:
            self.sources = ["unknown"] * n
        if len(self.ids) != n or len(self.sources) != n:
            raise ValueError(
                f"ids ({len(self.ids)}) and sources ({len(self.sources)}) must have one entry per sample ({n})"
            )
        self.ids = [str(i) for i in self.ids]
        self.sources = [str(s) for s in self.sources]
        prov = {
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_head": self.d_head,
            "hook": HOOK_Z,
            "position_rule": POSITION_RULE,
        }
        prov.update(self.provenance)
        self.provenance = prov

    # ---- shape ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.z.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.z.shape[0])

    @property
    def n_layers(self) -> int:
        return int(self.z.shape[1])

    @property
    def n_heads(self) -> int:
        return int(self.z.shape[2])

    @property
    def d_head(self) -> int:
        return int(self.z.shape[3])

    def __repr__(self) -> str:
        n_pos = int(self.labels.sum())
        model = self.provenance.get("model_name", "?")
        return (
            f"HeadActivations({self.n_samples} samples ({n_pos} malicious), {self.n_layers} layers x "
            f"{self.n_heads} heads x d_head {self.d_head}, model={model!r})"
        )

    # ---- selection -----------------------------------------------------------------------------------
    def select(self, index: Sequence[int] | Tensor | slice) -> HeadActivations:
        """A new ``HeadActivations`` with the chosen samples (indices, a bool mask or a slice)."""
        if isinstance(index, slice):
            idx = torch.arange(self.n_samples)[index]
        else:
            idx = torch.as_tensor(index)
            if idx.dtype == torch.bool:
                idx = idx.nonzero().flatten()
        idx = idx.long()
        keep = idx.tolist()
        return HeadActivations(
            z=self.z[idx],
            labels=self.labels[idx],
            ids=[self.ids[i] for i in keep],
            sources=[self.sources[i] for i in keep],
            provenance=dict(self.provenance),
        )

    def features(self, heads: HeadSet | Sequence[Head]) -> Float[Tensor, "n k_times_d_head"]:
        """The concatenated features of ``heads`` in their order: ``[n_samples, len(heads) * d_head]``."""
        heads = heads if isinstance(heads, HeadSet) else HeadSet(heads)
        if len(heads) == 0:
            raise ValueError("the head set is empty; select at least one head (e.g. rank_heads(sweep, k=32))")
        heads.check_fits(self.n_layers, self.n_heads)
        layers = torch.tensor([h.layer for h in heads])
        idx = torch.tensor([h.head for h in heads])
        return self.z[:, layers, idx].reshape(self.n_samples, -1)

    @staticmethod
    def concat(parts: Sequence[HeadActivations]) -> HeadActivations:
        """Stack several ``HeadActivations`` of the same model along the sample axis."""
        if not parts:
            raise ValueError("nothing to concatenate: pass at least one HeadActivations")
        first = parts[0]
        for other in parts[1:]:
            first.check_compatible(other)
        prov = dict(first.provenance)
        datasets = [p.provenance.get("dataset") for p in parts if p.provenance.get("dataset")]
        if datasets:
            prov["dataset"] = "+".join(dict.fromkeys(str(d) for d in datasets))
        return HeadActivations(
            z=torch.cat([p.z for p in parts]),
            labels=torch.cat([p.labels for p in parts]),
            ids=[i for p in parts for i in p.ids],
            sources=[s for p in parts for s in p.sources],
            provenance=prov,
        )

    # ---- provenance checks ---------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """The provenance fields compared before these features are used with a model or another run."""
        return {k: self.provenance.get(k) for k in ARTIFACT_FIELDS}

    def check_compatible(
        self, other: HeadActivations | dict[str, Any], *, what: str = "these activations"
    ) -> None:
        """Raise ``ValueError`` naming each identity field that differs; a missing field counts as differing.

        ``other`` is another run's activations or an artifact's provenance (a probe's, a guard's): the
        model identity (``model_adapters.IDENTITY_FIELDS``) is compared, and the hook and position rule too
        when ``other`` records them.
        """
        theirs = other.identity() if isinstance(other, HeadActivations) else other
        fields = tuple(k for k in ARTIFACT_FIELDS if k in IDENTITY_FIELDS or k in theirs)
        check_identity(
            self.provenance,
            theirs,
            what=what,
            fix="they come from a different model or setup: collect activations again with the model you want",
            fields=fields,
        )

    def check_finite(self) -> None:
        """Raise ``ValueError`` naming the samples whose features hold NaN or inf (e.g. fp16 overflow)."""
        if bool(torch.isfinite(self.z).all()):  # one pass in the common case
            return
        bad = (~torch.isfinite(self.z)).flatten(1).any(1).nonzero().flatten().tolist()
        if bad:
            names = ", ".join(self.ids[i] for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise ValueError(
                f"{len(bad)} sample(s) have NaN or inf activations ({names}); this is usually fp16 overflow: "
                "collect again with dtype=torch.float32"
            )

    # ---- disk ----------------------------------------------------------------------------------------
    def save(self, directory: str | Path, *, shard_size: int = 1024, overwrite: bool = False) -> Path:
        """Write safetensors shards + ``manifest.json`` to ``directory``; refuses to overwrite by default."""
        directory = Path(directory)
        if (directory / MANIFEST).exists() and not overwrite:
            raise FileExistsError(
                f"{directory} already holds activations; pass overwrite=True or choose another directory"
            )
        directory.mkdir(parents=True, exist_ok=True)
        shards = []
        n_shards = max(1, math.ceil(self.n_samples / shard_size))
        for s in range(n_shards):
            lo, hi = s * shard_size, min(self.n_samples, (s + 1) * shard_size)
            shards.append(
                write_shard(directory, s, self.z[lo:hi], self.labels[lo:hi], start=lo, ids=self.ids[lo:hi])
            )
        write_manifest(
            directory,
            provenance=self.provenance,
            shards=shards,
            ids=self.ids,
            sources=self.sources,
            complete=True,
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path, model: Any = None) -> HeadActivations:
        """Read a directory written by ``save`` or by ``collect_head_activations(out=...)``.

        Everything is checked before it is used: the manifest's schema (``complete`` must be the boolean
        true), every shard file name (confined to ``directory``), every shard's SHA-256, place and row
        count; a check that fails raises ``ValueError`` naming the file and the shard. A directory from an
        earlier sahs_lens (format ``.../1``, without checksums) still loads when it is finished.
        With ``model=`` (a ``HookedVLM``), refuse activations that another model or setup produced.
        """
        acts = cls._read(Path(directory))
        if model is not None:
            acts.check_compatible(model.cfg.identity(), what=f"the activations in {directory}")
        return acts

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (``z`` and ``labels`` as nested lists); ``from_dict`` rebuilds it exactly."""
        return {
            "format": FORMAT,
            "z": self.z.tolist(),
            "z_dtype": str(self.z.dtype).replace("torch.", ""),
            "labels": self.labels.tolist(),
            "ids": list(self.ids),
            "sources": list(self.sources),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadActivations:
        """Rebuild activations from ``to_dict`` output."""
        if not isinstance(data, dict) or data.get("format") not in (FORMAT, LEGACY_FORMAT):
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not sahs_lens head activations (format {found!r}, expected {FORMAT!r})")
        return cls(
            z=torch.tensor(data["z"], dtype=getattr(torch, str(data["z_dtype"]))),
            labels=torch.tensor(data["labels"], dtype=torch.long),
            ids=list(data["ids"]),
            sources=list(data["sources"]),
            provenance=dict(data["provenance"]),
        )

    @classmethod
    def _read(cls, directory: Path) -> HeadActivations:
        manifest = read_manifest(directory)
        where = directory / MANIFEST
        if manifest["complete"] is not True:
            raise ValueError(
                f"{directory} holds an unfinished collection ({sum(s['n'] for s in manifest['shards'])} samples "
                "so far); run collect_head_activations again with the same out= to finish it"
            )
        if not manifest["shards"]:
            raise ValueError(f"{where} lists no shards; the activations are damaged: collect again")
        parts = [read_shard(directory, manifest, i) for i in range(len(manifest["shards"]))]
        shape = tuple(parts[0][0].shape[1:])
        for i, (z, _) in enumerate(parts):
            if tuple(z.shape[1:]) != shape:
                raise ValueError(
                    f"shard shards[{i}] of {directory} has z of shape {tuple(z.shape)}, the first shard "
                    f"[n, {', '.join(map(str, shape))}]; the shards do not belong together: collect again"
                )
        provenance = manifest["provenance"]
        for key, size in zip(("n_layers", "n_heads", "d_head"), shape, strict=True):
            if key in provenance and provenance[key] != size:
                raise ValueError(
                    f"{where}: provenance {key} is {provenance[key]!r} but the shards hold {size}; collect again"
                )
        labels = torch.cat([p[1] for p in parts]).long()
        recorded = manifest.get("content", {}).get("labels")
        if recorded is not None and labels.tolist() != recorded:
            first = next(i for i, (a, b) in enumerate(zip(labels.tolist(), recorded, strict=True)) if a != b)
            raise ValueError(
                f"{directory}: the label of sample {manifest['ids'][first]!r} in its shard differs from the "
                "manifest's; the activations are damaged: collect again"
            )
        if is_legacy(manifest):
            warnings.warn(
                f"{where} is format {LEGACY_FORMAT!r} (an earlier sahs_lens, without checksums): its shards "
                "cannot be verified, and it is read-only (never resumed); save it again to check it from now on",
                LegacyArtifactWarning,
                stacklevel=3,
            )
        return cls(
            z=torch.cat([p[0] for p in parts]),
            labels=labels,
            ids=manifest["ids"],
            sources=manifest["sources"],
            provenance=provenance,
        )
