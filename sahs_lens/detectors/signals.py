"""What the detectors read: every signal of a prompt that lives in one prefill forward, collected once.

A detector of malicious prompts can read the model at several places of the same prefill forward that
produces the first answer token, at the decision position (the last prompt token, ``sahs_lens.decision``):

- ``z``: every head's output before the output projection, ``blocks.{l}.attn.hook_z[:, -1]`` (the SAHs
  feature, read by ``DecisionReader``), ``[n, layer, head_index, d_head]``;
- ``resid``: the residual stream after every layer, ``blocks.{l}.hook_resid_post[:, -1]``, ``[n, layer,
  d_model]`` (the layer probe's and the refusal direction's signal);
- ``logits``: the final logits of the first answer token, ``[n, d_vocab]`` (LVLM-LP's signal);
- ``lens``: the logit lens of each layer's residual (final norm, then the unembedding) compared with a
  refusal vector, one cosine per layer, ``[n, layer]`` (HiddenDetect's signal).

Two signals need no model internals: ``text`` (the prompt string, the lexical control's only input) and
``answers`` (the unguarded model's own greedy answer, which costs a whole generation).

``collect_signals`` runs one forward per batch with exactly the hooks the requested signals need, and times
the prefill, the logit lens and the generation per prompt so that the comparison can report what each
detector costs on top of the forward the model runs anyway.

>>> signals = collect_signals(model, samples, needs={"z", "resid", "logits"})   # doctest: +SKIP
>>> signals.resid.shape                                                         # [n, layer, d_model]
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from model_adapters import HookedVLM
from model_adapters.structure import find_language_model
from sahs_lens.activations import SampleLike, collection_provenance
from sahs_lens.decision import DecisionReader
from sahs_lens.head_activations import HeadActivations
from sahs_lens.interventions import generate_all

__all__ = ["MODEL_SIGNALS", "REFUSAL_WORDS", "SIGNALS", "Signals", "collect_signals", "refusal_token_ids"]

MODEL_SIGNALS = ("z", "resid", "logits", "lens", "answers")
"""The signals that need the model (``text`` needs only the samples)."""
SIGNALS = ("text", *MODEL_SIGNALS)

REFUSAL_WORDS: tuple[str, ...] = (
    "Sorry", "sorry", "Unfortunately", "unfortunately", "cannot", "unable", "refuse", "apologize",
    "illegal", "harmful", "dangerous", "unethical", "warning", "caution", "must", "As",
)  # fmt: skip
"""Words whose first token makes up the refusal vector of the ``lens`` signal (HiddenDetect's idea: refusal
openings and warning words; this list is sahs_lens' own, with "As" and "must" for "As an AI, I must ...")."""

RESID_POST = "blocks.{layer}.hook_resid_post"


@dataclass
class Signals:
    """The signals of some samples (``None`` where not collected), row ``i`` belonging to ``samples[i]``.

    ``timing`` holds milliseconds per prompt: ``prefill`` (the hooked forward), ``lens`` (the logit lens on
    top of it) and ``generate`` (a greedy answer), where measured. ``memo`` lets detectors share work fitted
    on the same training signals (the probe sweep of ``sahs`` and ``sahs_mean``).
    """

    samples: list[Any]
    z: Float[Tensor, "n layer head_index d_head"] | None = None
    resid: Float[Tensor, "n layer d_model"] | None = None
    logits: Float[Tensor, "n d_vocab"] | None = None
    lens: Float[Tensor, "n layer"] | None = None
    answers: list[str] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        return np.array([int(s.label) for s in self.samples], dtype=np.int64)

    @property
    def ids(self) -> list[str]:
        return [str(s.id) for s in self.samples]

    @property
    def prompts(self) -> list[str]:
        return [str(s.prompt) for s in self.samples]

    def has(self, name: str) -> bool:
        return name == "text" or getattr(self, name) is not None

    def head_activations(self) -> HeadActivations:
        """``z`` as ``HeadActivations`` (labels, ids, sources, provenance), for probes, ranking and the guard."""
        if self.z is None:
            raise ValueError("these signals hold no hook_z; collect them with needs={'z', ...}")
        if "heads" not in self.memo:
            self.memo["heads"] = HeadActivations(
                z=self.z,
                labels=torch.as_tensor(self.labels),
                ids=self.ids,
                sources=[str(s.source) for s in self.samples],
                provenance=dict(self.provenance),
            )
        acts: HeadActivations = self.memo["heads"]
        return acts

    @classmethod
    def concat(cls, parts: Sequence[Signals]) -> Signals:
        """The signals of several collections, row after row; a signal is kept where every part has it,
        and each timing is the per-prompt mean over all rows (parts weighted by their size)."""
        if not parts:
            raise ValueError("no signals to concatenate; pass at least one Signals")

        def cat(name: str) -> Tensor | None:
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else torch.cat(values)

        n = sum(len(p) for p in parts)
        shared = set.intersection(*(set(p.timing) for p in parts))
        answers = (
            None if any(p.answers is None for p in parts) else [a for p in parts for a in p.answers or []]
        )
        return cls(
            samples=[s for p in parts for s in p.samples],
            z=cat("z"),
            resid=cat("resid"),
            logits=cat("logits"),
            lens=cat("lens"),
            answers=answers,
            provenance=dict(parts[0].provenance),
            timing={key: sum(p.timing[key] * len(p) for p in parts) / n for key in sorted(shared)},
        )

    def select(self, index: Sequence[int]) -> Signals:
        """The signals of samples ``index`` (in that order); the timing is kept, the memo is not."""
        idx = [int(i) for i in index]
        t = torch.as_tensor(idx, dtype=torch.long)

        def pick(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[t]

        return Signals(
            samples=[self.samples[i] for i in idx],
            z=pick(self.z),
            resid=pick(self.resid),
            logits=pick(self.logits),
            lens=pick(self.lens),
            answers=None if self.answers is None else [self.answers[i] for i in idx],
            provenance=dict(self.provenance),
            timing=dict(self.timing),
        )


def refusal_token_ids(tokenizer: Any, words: Iterable[str] = REFUSAL_WORDS) -> list[int]:
    """The first token of each word, bare and after a space (deduplicated, in order)."""
    ids: list[int] = []
    for word in words:
        for text in (word, " " + word):
            tokens = tokenizer.encode(text, add_special_tokens=False)
            if tokens and int(tokens[0]) not in ids:
                ids.append(int(tokens[0]))
    if not ids:
        raise ValueError(f"none of the refusal words {list(words)} has a token in this tokenizer")
    return ids


def _logit_lens_modules(model: HookedVLM) -> tuple[nn.Module, nn.Module]:
    """The language model's final norm and its unembedding (``ln_final`` and ``W_U`` in TransformerLens)."""
    hf = model.hf_model
    getter = getattr(hf, "get_output_embeddings", None)
    unembed = getter() if callable(getter) else None
    lm = find_language_model(hf)
    parent = hf.get_submodule(lm.path.rsplit(".", 1)[0]) if "." in lm.path else hf
    norm = next(
        (
            getattr(parent, n)
            for n in ("norm", "final_layernorm", "ln_f")
            if isinstance(getattr(parent, n, None), nn.Module)
        ),
        None,
    )
    if unembed is None or norm is None:
        missing = " and ".join(
            n
            for n, m in (("the final norm (ln_final)", norm), ("the unembedding (W_U)", unembed))
            if m is None
        )
        raise ValueError(
            f"the lens signal (hidden_detect) needs {missing} of {type(hf).__name__}, which were not found next "
            f"to its decoder layers ({lm.path}); leave hidden_detect out of --detectors for this model"
        )
    return norm, unembed


def _check_hooks(model: HookedVLM, needs: set[str]) -> None:
    names = set(model.hook_names)
    wanted = []
    if needs & {"resid", "lens"}:
        wanted.append(
            (RESID_POST.format(layer=0), "resid (residual_probe, refusal_direction) and lens (hidden_detect)")
        )
    if "z" in needs:
        wanted.append(("blocks.0.attn.hook_z", "z (sahs, sahs_mean, random_heads, all_heads)"))
    for hook, users in wanted:
        if hook not in names:
            raise ValueError(
                f"the {model.backend} backend of this model gives no {hook.replace('0', '{l}', 1)} hook, which the "
                f"signal {users} reads; load the model with another backend (load_vlm(..., backend='hf') places "
                "hook_z and hook_resid_post) or leave those detectors out"
            )


def collect_signals(
    model: HookedVLM | None,
    samples: Sequence[SampleLike],
    *,
    needs: Iterable[str],
    batch_size: int = 16,
    refusal_words: Sequence[str] = REFUSAL_WORDS,
    max_new_tokens: int = 24,
    progress: bool = True,
) -> Signals:
    """The requested signals of ``samples``: one hooked prefill forward per batch, plus a generation for
    ``answers``.

    Args:
        model: the model (may be ``None`` when only ``text`` is needed).
        samples: ``Sample`` s.
        needs: signal names among ``SIGNALS``.
        batch_size: prompts per forward.
        refusal_words: the words of the refusal vector of ``lens``.
        max_new_tokens: answer length for ``answers``.
        progress: show a progress bar.
    """
    wanted = set(needs)
    unknown = sorted(wanted - set(SIGNALS))
    if unknown:
        raise ValueError(f"unknown signal(s) {unknown}; the signals are {', '.join(SIGNALS)}")
    samples = list(samples)
    signals = Signals(samples=samples)
    forward = wanted & {"z", "resid", "logits", "lens"}
    if not (forward or "answers" in wanted):
        return signals
    if model is None:
        raise ValueError(f"the signals {sorted(wanted - {'text'})} need a model; pass one")
    _check_hooks(model, wanted)
    signals.provenance = collection_provenance(model, dtype=torch.float32, heads=None, dataset=None)
    if forward:
        _forward_signals(model, signals, forward, batch_size, refusal_words, progress)
    if "answers" in wanted:
        started = time.perf_counter()
        signals.answers = generate_all(
            model,
            samples,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            progress=progress,
            desc="answers",
        )
        signals.timing["generate"] = 1000 * (time.perf_counter() - started) / len(samples)
    return signals


@torch.no_grad()
def _forward_signals(
    model: HookedVLM,
    signals: Signals,
    forward: set[str],
    batch_size: int,
    refusal_words: Sequence[str],
    progress: bool,
) -> None:
    cfg = model.cfg
    n_layers = cfg.n_layers
    need_resid = bool(forward & {"resid", "lens"})
    need_logits = bool(forward & {"logits"})
    reader = (
        DecisionReader(range(n_layers), stop_after_last=not (need_resid or need_logits))
        if "z" in forward
        else None
    )
    resid_last: dict[int, Tensor] = {}

    def resid_hook(layer: int) -> Any:
        def hook(x: Float[Tensor, "batch pos d_model"], hook: Any = None) -> None:
            resid_last[layer] = x[:, -1].detach().float()

        return hook

    hooks = list(reader.hooks()) if reader is not None else []
    if need_resid:
        hooks += [(RESID_POST.format(layer=layer), resid_hook(layer)) for layer in range(n_layers)]
    lens_parts: dict[str, Any] = {}
    if "lens" in forward:
        norm, unembed = _logit_lens_modules(model)
        refusal = torch.zeros(cfg.d_vocab)
        refusal[refusal_token_ids(model.tokenizer, refusal_words)] = 1.0
        lens_parts = {"norm": norm, "unembed": unembed, "refusal": refusal}
    z_parts, resid_parts, logit_parts, lens_rows = [], [], [], []
    prefill_s = lens_s = 0.0
    samples = signals.samples
    bar = tqdm(total=len(samples), desc="signals", unit="prompt", disable=not progress)
    for lo in range(0, len(samples), batch_size):
        chunk = samples[lo : lo + batch_size]
        batch = model.prepare([s.prompt for s in chunk], images=[s.image for s in chunk])
        resid_last.clear()
        started = time.perf_counter()
        if reader is not None and not (need_resid or need_logits):
            values = reader.read(model, batch)
            logits = None
        else:
            if reader is not None:
                reader.forget()
            with model.hooks(hooks):
                logits = model(batch)
            values = reader.values if reader is not None else {}
        prefill_s += time.perf_counter() - started
        if reader is not None:
            z_parts.append(
                torch.stack([values[layer].detach().float().cpu() for layer in range(n_layers)], 1)
            )
        if need_resid:
            stacked = torch.stack([resid_last[layer] for layer in range(n_layers)], 1)  # [b, L, d_model]
            resid_parts.append(stacked.cpu())
        if need_logits and logits is not None:
            logit_parts.append(logits[:, -1].detach().float().cpu())
        if lens_parts:
            started = time.perf_counter()
            lens_rows.append(_lens(stacked, lens_parts).cpu())
            lens_s += time.perf_counter() - started
        bar.update(len(chunk))
    bar.close()
    n = len(samples)
    signals.timing["prefill"] = 1000 * prefill_s / n
    if z_parts:
        signals.z = torch.cat(z_parts)
    if resid_parts and "resid" in forward:
        signals.resid = torch.cat(resid_parts)
    if logit_parts:
        signals.logits = torch.cat(logit_parts)
    if lens_rows:
        signals.lens = torch.cat(lens_rows)
        signals.timing["lens"] = 1000 * lens_s / n


def _lens(resid: Float[Tensor, "batch layer d_model"], parts: dict[str, Any]) -> Float[Tensor, "batch layer"]:
    """Cosine between each layer's logit-lens logits and the refusal vector."""
    norm, unembed, refusal = parts["norm"], parts["unembed"], parts["refusal"]
    weight = next(unembed.parameters())
    x = resid.to(device=weight.device, dtype=weight.dtype)
    lens_logits = unembed(norm(x)).float()  # [b, L, vocab]
    reference = refusal.to(lens_logits.device)[: lens_logits.shape[-1]]
    return torch.nn.functional.cosine_similarity(lens_logits, reference.expand_as(lens_logits), dim=-1)
