"""Causal evidence: remove heads (ablation) or transplant them (patching), and watch the behaviour change.

A probe shows that a head's output *carries* the malicious/benign distinction; it does not show that the
model *uses* it. Interventions do. **Ablation** replaces the selected heads' outputs (``hook_z``) with zero,
with their mean over reference prompts, or with the output of a random reference prompt, and measures what
the model then does: if removing the safety heads lowers the refusal rate on malicious prompts while benign
behaviour (utility) stays, and removing as many random heads does not, the heads are part of the refusal
mechanism. **Patching** copies the selected heads' outputs at the decision position from one set of prompts
(malicious) into another (benign): if refusals appear, those heads are sufficient to carry the signal.

Everything here is a context manager over TransformerLens ``hook_z`` hooks, so it composes with
``model.generate`` (the intervention is active on every decoding step), with
``collect_head_activations``, and with any hook of your own. Hooks are removed when the block exits, also on
error.

>>> with ablate_heads(model, heads, mode="zero"):
...     texts = model.generate(batch, max_new_tokens=64)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from model_adapters import HookedVLM, VLMInputs
from model_adapters.hook_names import hook_z_name
from sahs_lens.evaluation import Judge, RefusalJudge, reject_rate
from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import Head, HeadSet
from sahs_lens.ranking import random_heads
from sahs_lens.refusal_metric import (
    RefusalLogitDiff,
)

AblationMode = Literal["zero", "mean", "resample"]
Positions = Literal["all", "last"]
ABLATION_MODES = ("zero", "mean", "resample")


def _as_headset(heads: HeadSet | Sequence[Head] | str, model: HookedVLM) -> HeadSet:
    if isinstance(heads, str):
        heads = HeadSet.parse(heads)
    heads = heads if isinstance(heads, HeadSet) else HeadSet(heads)
    if len(heads) == 0:
        raise ValueError("the head set is empty; pass at least one head (e.g. HeadSet.parse('L12H5'))")
    heads.check_fits(model.cfg.n_layers, model.cfg.n_heads)
    return heads


def _check_reference(reference: HeadActivations, model: HookedVLM) -> None:
    if not isinstance(reference, HeadActivations):
        raise TypeError(
            f"reference must be HeadActivations (from collect_head_activations); got {type(reference).__name__}"
        )
    reference.check_compatible(model.cfg.identity(), what="the reference activations")
    if (reference.n_layers, reference.n_heads, reference.d_head) != (
        model.cfg.n_layers,
        model.cfg.n_heads,
        model.cfg.d_head,
    ):
        raise ValueError(
            f"reference activations have shape {reference.n_layers}x{reference.n_heads}x{reference.d_head} but "
            f"the model has {model.cfg.n_layers}x{model.cfg.n_heads}x{model.cfg.d_head}"
        )


@contextlib.contextmanager
def ablate_heads(
    model: HookedVLM,
    heads: HeadSet | Sequence[Head] | str,
    mode: AblationMode = "zero",
    reference: HeadActivations | None = None,
    positions: Positions = "all",
    seed: int = 0,
) -> Iterator[HookedVLM]:
    """Replace the outputs of ``heads`` while the block runs.

    Args:
        model: the model to intervene on.
        heads: the heads to remove (a ``HeadSet``, heads, or a string such as ``"L12H5,L3H0"``).
        mode: ``"zero"`` (the paper's default), ``"mean"`` (the heads' mean output over ``reference``) or
            ``"resample"`` (each row gets the output of one reference prompt drawn at random with ``seed``).
        reference: ``HeadActivations`` of reference prompts; required for ``"mean"`` and ``"resample"``.
            They hold outputs at the decision position, so these modes are most faithful with
            ``positions="last"``.
        positions: ``"all"`` positions, or only the ``"last"`` one of every forward pass (the decision
            position at prefill and the newest token on each decoding step).
        seed: the draw of ``"resample"``.

    Example:
        >>> with ablate_heads(model, rank_heads(sweep, k=32), mode="mean", reference=benign_acts):
        ...     texts = model.generate(batch, max_new_tokens=64)
    """
    head_set = _as_headset(heads, model)
    _check_mode(mode, reference, model)
    if positions not in ("all", "last"):
        raise ValueError(f"positions must be 'all' or 'last'; got {positions!r}")
    generator = torch.Generator().manual_seed(seed)
    # one draw of reference rows per batch size, shared by every layer's hook: a row's resampled heads all
    # come from the same reference prompt, in every layer and at every decoding step
    draws: dict[int, Tensor] = {}
    hooks = []
    for layer, layer_heads in head_set.by_layer().items():
        index = torch.tensor(layer_heads)
        value: Tensor | None = None
        if mode == "mean":
            assert reference is not None
            value = reference.z[:, layer, index].float().mean(0)  # [k, d_head]
        elif mode == "resample":
            assert reference is not None
            value = reference.z[:, layer, index]  # [n_ref, k, d_head]
        hooks.append((hook_z_name(layer), _ablation_hook(index, mode, value, positions, generator, draws)))
    with model.hooks(hooks):
        yield model


def _ablation_hook(
    index: Tensor,
    mode: str,
    value: Tensor | None,
    positions: str,
    generator: torch.Generator,
    draws: dict[int, Tensor],
) -> Callable[..., Tensor]:

    def hook(z: Float[Tensor, "batch pos head_index d_head"], hook: Any) -> Tensor:
        idx = index.to(z.device)
        span = slice(None) if positions == "all" else slice(-1, None)
        if mode == "zero":
            z[:, span, idx] = 0.0
        elif mode == "mean":
            assert value is not None
            z[:, span, idx] = value.to(device=z.device, dtype=z.dtype)
        else:
            assert value is not None
            if z.shape[0] not in draws:
                draws[z.shape[0]] = torch.randint(0, value.shape[0], (z.shape[0],), generator=generator)
            z[:, span, idx] = value[draws[z.shape[0]]].to(device=z.device, dtype=z.dtype)[:, None]
        return z

    return hook


@contextlib.contextmanager
def patch_heads(
    model: HookedVLM, heads: HeadSet | Sequence[Head] | str, source: HeadActivations | Tensor
) -> Iterator[HookedVLM]:
    """Transplant the outputs of ``heads`` at the decision position from ``source`` prompts.

    Args:
        model: the model to intervene on.
        heads: the heads to transplant.
        source: ``HeadActivations`` of the source prompts (one row per target row, or a single row that is
            used for every target row), or a tensor ``[n, n_layers, n_heads, d_head]``.

    Only the prefill forward is patched (its last position is the decision position); decoding steps run
    clean, so ``generate`` shows how a transplanted first-token decision plays out.

    Example:
        >>> malicious = collect_head_activations(model, malicious_samples)
        >>> with patch_heads(model, heads, malicious.select(range(8))):
        ...     texts = model.generate(benign_batch, max_new_tokens=32)
    """
    head_set = _as_headset(heads, model)
    if isinstance(source, HeadActivations):
        _check_reference(source, model)
        z_source = source.z
    elif isinstance(source, Tensor) and source.ndim == 4:
        z_source = source
    else:
        raise TypeError("source must be HeadActivations or a tensor [n, n_layers, n_heads, d_head]")
    want = (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_head)
    if tuple(z_source.shape[1:]) != want or z_source.shape[0] == 0:
        raise ValueError(
            f"the patch source has shape {tuple(z_source.shape)}, but this model's heads need "
            f"[n >= 1, n_layers={want[0]}, n_heads={want[1]}, d_head={want[2]}]: collect it from this model "
            "(collect_head_activations)"
        )
    hooks = []
    for layer, layer_heads in head_set.by_layer().items():
        index = torch.tensor(layer_heads)
        hooks.append((hook_z_name(layer), _patch_hook(index, z_source[:, layer, index])))
    with model.hooks(hooks):
        yield model


def _check_mode(mode: str, reference: HeadActivations | None, model: HookedVLM) -> None:
    if mode not in ABLATION_MODES:
        raise ValueError(f"unknown ablation mode {mode!r}; choose one of {', '.join(ABLATION_MODES)}")
    if mode != "zero":
        if reference is None:
            raise ValueError(
                f"mode={mode!r} takes its values from reference prompts; pass reference=HeadActivations "
                "(e.g. collect_head_activations(model, benign_samples)), or use mode='zero'"
            )
        _check_reference(reference, model)


def _patch_hook(index: Tensor, value: Float[Tensor, "n k d_head"]) -> Callable[..., Tensor]:
    def hook(z: Float[Tensor, "batch pos head_index d_head"], hook: Any) -> Tensor:
        if z.shape[1] == 1:  # a decoding step: the decision position was the prefill's last one
            return z
        if value.shape[0] not in (1, z.shape[0]):
            raise ValueError(
                f"patch source has {value.shape[0]} rows but the batch has {z.shape[0]}; pass one source row "
                "per target row, or a single row"
            )
        z[:, -1, index.to(z.device)] = value.to(device=z.device, dtype=z.dtype).expand(z.shape[0], -1, -1)
        return z

    return hook


@dataclass
class PatchingResult:
    """Effect of patching each head alone: ``effect[layer, head]`` = patched metric - clean metric."""

    effect: Float[Tensor, "layer head_index"]
    clean: float
    patched_all: float | None
    metric: str
    heads: HeadSet = field(default_factory=HeadSet)

    def top(self, k: int = 10) -> HeadSet:
        """The ``k`` heads whose transplant moves the metric most (largest effect first)."""
        flat = self.effect.flatten()
        order = torch.argsort(flat, descending=True, stable=True)[:k]
        n_heads = self.effect.shape[1]
        return HeadSet(Head(int(i) // n_heads, int(i) % n_heads) for i in order)


def patching_sweep(
    model: HookedVLM,
    target: VLMInputs,
    source: HeadActivations,
    *,
    metric: Callable[[Tensor], Tensor] | None = None,
    heads: HeadSet | None = None,
    progress: bool = True,
) -> PatchingResult:
    """Patch every head (or ``heads``) alone from ``source`` into ``target`` and measure ``metric``.

    Args:
        model: the model.
        target: the prompts to patch into (e.g. benign prompts), one row per ``source`` row.
        source: decision-position activations of the source prompts (e.g. malicious ones).
        metric: ``logits [batch, pos, d_vocab] -> [batch]``; default ``RefusalLogitDiff.for_model(model)``.
        heads: restrict the sweep to these heads (others get effect 0).
        progress: show a progress bar.

    Returns:
        ``PatchingResult`` with the ``[n_layers, n_heads]`` effect map (mean over rows).
    """
    if len(source) not in (1, len(target)):
        raise ValueError(
            f"source has {len(source)} rows but target has {len(target)}; pass one source row per target row"
        )
    metric = metric or RefusalLogitDiff.for_model(model)
    cfg = model.cfg
    clean = float(metric(model(target)).mean())
    sweep = heads or HeadSet(Head(layer, h) for layer in range(cfg.n_layers) for h in range(cfg.n_heads))
    effect = torch.zeros(cfg.n_layers, cfg.n_heads)
    for head in tqdm(sweep, desc="patching heads", disable=not progress):
        with patch_heads(model, [head], source):
            effect[head.layer, head.head] = float(metric(model(target)).mean()) - clean
    patched_all = None
    if heads is not None:
        with patch_heads(model, heads, source):
            patched_all = float(metric(model(target)).mean()) - clean
    return PatchingResult(
        effect=effect, clean=clean, patched_all=patched_all, metric=type(metric).__name__, heads=sweep
    )


# ---- the ablation curve (the paper's Fig. 5) ---------------------------------------------------------
@dataclass
class AblationCurve:
    """Refusal and utility as the top-k safety heads, or k random heads, are removed.

    ``safety_refusal[i]`` is the refusal rate on the malicious prompts with the top ``ks[i]`` safety heads
    ablated; ``random_refusal[s][i]`` the same with ``ks[i]`` random heads (seed ``seeds[s]``, drawn from the
    heads outside the safety set). ``*_utility`` are the utility scores on the benign prompts.
    ``baseline_*`` are the values with nothing removed. ``*_asr`` are attack success rates on the malicious
    prompts under ``success`` (by default "not refused", i.e. ``1 - refusal``; a stricter criterion, such as
    "answered helpfully", keeps a model that was merely broken from counting as jailbroken).
    """

    ks: list[int]
    baseline_refusal: float
    safety_refusal: list[float]
    random_refusal: list[list[float]]
    baseline_utility: float | None = None
    safety_utility: list[float] | None = None
    random_utility: list[list[float]] | None = None
    seeds: list[int] = field(default_factory=list)
    mode: str = "zero"
    heads: str = ""
    judge: str = ""
    examples: dict[str, list[str]] = field(default_factory=dict)
    baseline_asr: float | None = None
    safety_asr: list[float] = field(default_factory=list)
    random_asr: list[list[float]] = field(default_factory=list)
    success: str = "not refused"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}

    def random_mean(self, what: str = "refusal") -> list[float]:
        """Mean over the random draws, per k, of ``"refusal"``, ``"utility"`` or ``"asr"``."""
        if what not in ("refusal", "utility", "asr"):
            raise ValueError(f"what must be 'refusal', 'utility' or 'asr'; got {what!r}")
        rows = {"refusal": self.random_refusal, "utility": self.random_utility or [], "asr": self.random_asr}[
            what
        ]
        if not rows:
            return []
        return [float(sum(col) / len(col)) for col in zip(*rows, strict=True)]


def generate_all(
    model: HookedVLM,
    samples: Sequence[Any],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 32,
    progress: bool = False,
    desc: str = "generating",
) -> list[str]:
    """Greedy answers for ``samples`` (``.prompt``, ``.image``), in batches."""
    texts: list[str] = []
    bar = tqdm(total=len(samples), desc=desc, disable=not progress, unit="prompt")
    for lo in range(0, len(samples), batch_size):
        chunk = samples[lo : lo + batch_size]
        batch = model.prepare([s.prompt for s in chunk], images=[s.image for s in chunk])
        texts.extend(model.generate(batch, max_new_tokens=max_new_tokens))
        bar.update(len(chunk))
    bar.close()
    return texts


def ablation_curve(
    model: HookedVLM,
    samples: Sequence[Any],
    heads: HeadSet,
    ks: Sequence[int] = (4, 8, 16, 32, 64),
    *,
    random_baseline: bool = True,
    seeds: Sequence[int] = (0, 1, 2),
    utility_samples: Sequence[Any] | None = None,
    utility_fn: Callable[[list[str], Sequence[Any]], float] | None = None,
    success_fn: Callable[[list[str], Sequence[Any]], float] | None = None,
    judge: Judge | None = None,
    mode: AblationMode = "zero",
    reference: HeadActivations | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    progress: bool = True,
) -> AblationCurve:
    """Remove the top-k safety heads, or k random heads, and measure refusal (and utility) for every k.

    Args:
        model: the model.
        samples: malicious prompts; their refusal rate is the safety measure.
        heads: ranked safety heads (best first); the top ``k`` are removed for each ``k`` in ``ks``.
        ks: how many heads to remove.
        random_baseline: also remove ``k`` random heads (from outside ``heads``), once per seed.
        seeds: seeds of the random draws.
        utility_samples: benign prompts for the utility measure (optional).
        utility_fn: ``(answers, utility_samples) -> score``; default: the fraction answered without refusal.
        success_fn: ``(answers, samples) -> attack success rate`` on the malicious prompts; default: the
            fraction not refused (the paper's ASR). A stricter criterion (the answer actually complies) keeps
            heads whose removal merely breaks the model from looking like safety heads.
        judge: refusal judge; default ``RefusalJudge("sahs")``.
        mode, reference: the ablation (see ``ablate_heads``).
        max_new_tokens, batch_size: generation settings.

    Example:
        >>> curve = ablation_curve(model, malicious, rank_heads(sweep, k=64), ks=[4, 8, 16, 32, 64])
        >>> curve.safety_refusal, curve.random_mean()
    """
    head_set = _as_headset(heads, model)
    _check_mode(mode, reference, model)  # before the baseline pass, not after it
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1 or max(ks) > len(head_set):
        raise ValueError(f"ks must lie between 1 and the number of ranked heads ({len(head_set)}); got {ks}")
    if not samples:
        raise ValueError("no malicious samples given for the ablation curve")
    judge = judge or RefusalJudge("sahs")
    cfg = model.cfg

    def utility(texts: list[str]) -> float:
        assert utility_samples is not None
        if utility_fn is not None:
            return float(utility_fn(texts, utility_samples))
        return 1.0 - reject_rate(texts, judge)

    def measure(context: AbstractContextManager[Any]) -> tuple[float, float, float | None, list[str]]:
        with context:
            texts = generate_all(model, samples, batch_size=batch_size, max_new_tokens=max_new_tokens)
            util = None
            if utility_samples:
                util = utility(
                    generate_all(model, utility_samples, batch_size=batch_size, max_new_tokens=max_new_tokens)
                )
        refusal = reject_rate(texts, judge)
        asr = 1.0 - refusal if success_fn is None else float(success_fn(texts, samples))
        return refusal, asr, util, texts

    runs = 1 + len(ks) * (1 + (len(seeds) if random_baseline else 0))
    bar = tqdm(total=runs, desc="ablation curve", disable=not progress)
    base_refusal, base_asr, base_utility, base_texts = measure(contextlib.nullcontext())
    bar.update()
    safety_refusal, safety_asr, safety_utility = [], [], []
    examples = {"none": base_texts[:3]}
    for k in ks:
        refusal, asr, util, texts = measure(ablate_heads(model, head_set[:k], mode=mode, reference=reference))
        safety_refusal.append(refusal)
        safety_asr.append(asr)
        safety_utility.append(util)
        examples[f"safety_top{k}"] = texts[:3]
        bar.update()
    random_refusal: list[list[float]] = []
    random_asr: list[list[float]] = []
    random_utility: list[list[float | None]] = []
    if random_baseline:
        for seed in seeds:
            row_r, row_a, row_u = [], [], []
            for k in ks:
                drawn = random_heads(cfg.n_layers, cfg.n_heads, k, seed=seed, exclude=head_set)
                refusal, asr, util, _ = measure(ablate_heads(model, drawn, mode=mode, reference=reference))
                row_r.append(refusal)
                row_a.append(asr)
                row_u.append(util)
                bar.update()
            random_refusal.append(row_r)
            random_asr.append(row_a)
            random_utility.append(row_u)
    bar.close()
    has_utility = bool(utility_samples)
    return AblationCurve(
        ks=ks,
        baseline_refusal=base_refusal,
        safety_refusal=safety_refusal,
        random_refusal=random_refusal,
        baseline_utility=base_utility,
        safety_utility=[float(u) for u in safety_utility if u is not None] if has_utility else None,
        random_utility=[[float(u) for u in row if u is not None] for row in random_utility]
        if has_utility
        else None,
        seeds=list(seeds) if random_baseline else [],
        mode=mode,
        heads=str(head_set[: max(ks)]),
        judge=repr(judge),
        examples=examples,
        baseline_asr=base_asr,
        safety_asr=safety_asr,
        random_asr=random_asr,
        success="not refused" if success_fn is None else getattr(success_fn, "__name__", "success_fn"),
    )
