"""``SafetyHeadGuard``: a malicious-prompt detector read off the safety heads inside the prefill forward.

The safety heads' outputs at the decision position already separate malicious from benign prompts; a single
logistic regression on their concatenation (``k x d_head`` features; 4,096 for k = 32 heads of LLaVA-1.5-7B)
turns them into a detector. Because those outputs are computed anyway by the prefill forward that produces
the first token, scoring costs one dot product: the guard reads the heads' ``hook_z`` during that prefill
(``reading.py``), scores every row before the first token is chosen, and applies a policy to the flagged
rows (``policies.py``: refuse, indicate, prefix). Unflagged rows produce exactly the tokens of unguarded
generation.

A guard is a fitted artifact: ``fit`` (and ``calibrate``, which sets its one adjustable setting, the
threshold) make it; ``save`` / ``load`` write and read it as safetensors + JSON with full provenance, and
it refuses to be used with a model whose family, shape, template or checkpoint differ
(``model_adapters.identity``). It can also guard plain Hugging Face ``generate`` (``attach_hf``, ``hf.py``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from jaxtyping import Float
from safetensors.torch import save as save_bytes
from torch import Tensor, nn

from model_adapters import HookedVLM, VLMInputs, hf_identity
from model_adapters.concurrency import model_lock
from model_adapters.identity import IDENTITY_FIELDS, check_identity, identity_mismatches
from model_adapters.structure import find_language_model
from sahs_lens._version import __version__
from sahs_lens.atomic_files import write_atomic, write_json_atomic
from sahs_lens.guard.artifact import check_guard, check_weights, payload_binding, read_guard
from sahs_lens.guard.classify import Verdict, classify
from sahs_lens.guard.hf import HFGuardSession, check_hf_model
from sahs_lens.guard.policies import (
    INDICATING_PROMPT,
    REFUSAL_PREFIX,
    REFUSAL_TEXT,
    Policy,
    check_policy,
    policy_logits,
)
from sahs_lens.guard.reading import GuardReading, as_batch
from sahs_lens.head_activations import HeadActivations
from sahs_lens.heads import HeadSet
from sahs_lens.probes import fit_probes

GUARD_FORMAT = "sahs_lens.guard/1"
NonFinite = Literal["flag", "raise"]
NONFINITE: tuple[str, ...] = ("flag", "raise")
GUARD_JSON = "guard.json"
GUARD_TENSORS = "guard.safetensors"


@dataclass
class GuardedGeneration:
    """Result of ``SafetyHeadGuard.generate``: one text, flag and score per row."""

    texts: list[str]
    flagged: list[bool]
    scores: list[float]
    policy: str = "refuse"
    nonfinite: int = 0
    """Rows whose score was NaN or infinite (e.g. fp16 overflow): flagged, never passed (fail closed)."""


class SafetyHeadGuard:
    """A logistic-regression detector on the concatenated outputs of selected heads.

    Build one with ``SafetyHeadGuard.fit``; ``threshold`` (default 0.5, as in the paper) is a plain
    attribute that ``calibrate`` can set from benign prompts.

    The guard fails closed: a score that is not finite (NaN or inf in the heads' outputs, as fp16 overflow
    gives) is flagged, never passed, and counted (``GuardedGeneration.nonfinite``); with
    ``nonfinite="raise"`` it raises ``ValueError`` instead. ``score_inputs`` reports such a score as 1.0.

    Thread safety: every call keeps its reading state to itself (nothing is stored on the guard or the
    model), and hooked forwards of one model are serialised by the model's lock
    (``model_adapters.concurrency``), so concurrent ``score_inputs`` / ``generate`` / ``attach_hf`` calls on
    one model give exactly the results of running them one after another (they do not run in parallel).
    """

    def __init__(
        self,
        heads: HeadSet,
        weight: Float[Tensor, " features"],
        bias: float,
        *,
        d_head: int,
        threshold: float = 0.5,
        provenance: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        nonfinite: NonFinite = "flag",
    ) -> None:
        if nonfinite not in NONFINITE:
            raise ValueError(f"nonfinite must be one of {', '.join(NONFINITE)}; got {nonfinite!r}")
        if len(heads) == 0:
            raise ValueError("a guard needs at least one head; pass the output of rank_heads(sweep, k=32)")
        if weight.shape != (len(heads) * d_head,):
            raise ValueError(f"weight must have {len(heads)} x {d_head} entries; got {tuple(weight.shape)}")
        check_weights(weight.float(), float(bias), where="the guard")
        self.heads = heads
        self.d_head = d_head
        self.weight = weight.float()
        self.bias = float(bias)
        self.provenance = dict(provenance or {})
        self.training = dict(training or {})
        self.threshold = threshold
        self.nonfinite: NonFinite = nonfinite

    # ---- threshold ---------------------------------------------------------------------------------
    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        if not 0.0 < float(value) < 1.0:
            raise ValueError(f"threshold is a probability and must lie strictly between 0 and 1; got {value}")
        self._threshold = float(value)

    def __repr__(self) -> str:
        return (
            f"SafetyHeadGuard({len(self.heads)} heads: {self.heads[:4]}{'...' if len(self.heads) > 4 else ''}, "
            f"threshold={self.threshold:.3g}, model={self.provenance.get('model_name')!r})"
        )

    # ---- fitting -----------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        acts: HeadActivations,
        heads: HeadSet | Sequence[Any] | str,
        *,
        C: float = 1.0,
        standardize: bool = False,
        threshold: float = 0.5,
    ) -> SafetyHeadGuard:
        """Fit ``LogisticRegression(C)`` (L2, unpenalised intercept) on the heads' concatenated features.

        Args:
            acts: training activations (both classes).
            heads: the safety heads (e.g. ``rank_heads(sweep, k=32)``).
            C: inverse regularisation strength, as in scikit-learn.
            standardize: z-score the features with the training mean and std first.
            threshold: decision threshold on the malicious probability.

        Example:
            >>> guard = SafetyHeadGuard.fit(train_acts, rank_heads(sweep, k=32))
        """
        head_set = HeadSet.parse(heads) if isinstance(heads, str) else HeadSet(heads)
        acts.check_finite()
        counts = torch.bincount(acts.labels, minlength=2)
        if counts.min() == 0:
            raise ValueError(
                f"the guard needs both malicious and benign training samples; got {int(counts[1])} malicious and "
                f"{int(counts[0])} benign"
            )
        x = acts.features(head_set).float()
        # with standardize=True the scaling is folded into weight and bias: x @ weight + bias stays valid
        fit = fit_probes(x[None], acts.labels[None], C=C, standardize=standardize)
        weight, bias = fit.weight[0], float(fit.bias[0])
        guard = cls(
            head_set,
            weight,
            bias,
            d_head=acts.d_head,
            threshold=threshold,
            provenance=dict(acts.provenance),
            training={
                "n_train": acts.n_samples,
                "n_malicious": int(counts[1]),
                "n_benign": int(counts[0]),
                "C": C,
                "standardize": standardize,
                "converged": bool(fit.converged.all()),
            },
        )
        train_acc = float(((guard.score(acts) >= guard.threshold).long() == acts.labels).float().mean())
        guard.training["train_accuracy"] = train_acc
        return guard

    def calibrate(self, benign: HeadActivations, target_fpr: float = 0.05) -> float:
        """Set ``threshold`` so that at most ``target_fpr`` of ``benign`` prompts are flagged; returns it.

        The threshold is placed just above the ``(m + 1)``-th highest benign score, ``m = floor(target_fpr *
        n_benign)``, so the measured false-positive rate on ``benign`` is at most the target.
        """
        if not 0.0 < target_fpr < 1.0:
            raise ValueError(f"target_fpr must lie strictly between 0 and 1; got {target_fpr}")
        if not isinstance(benign, HeadActivations):
            raise TypeError(
                f"calibrate takes the HeadActivations of benign prompts; got {type(benign).__name__}"
            )
        if benign.n_samples == 0:
            raise ValueError("calibration needs benign activations; got none (collect some benign prompts)")
        n_malicious = int((benign.labels != 0).sum())
        if n_malicious:
            first = benign.ids[int((benign.labels != 0).nonzero()[0])]
            raise ValueError(
                f"calibrate sets the threshold from benign prompts, but {n_malicious} of the {benign.n_samples} "
                f"given are labelled malicious (e.g. {first!r}); pass only benign rows, e.g. "
                "acts.select((acts.labels == 0).nonzero().flatten())"
            )
        scores = self.score(benign)
        n = scores.numel()
        if target_fpr < 1.0 / n:
            raise ValueError(
                f"target_fpr={target_fpr} cannot be reached or checked with {n} benign samples (the smallest "
                f"non-zero false-positive rate they can show is {1.0 / n:.3g}); give at least "
                f"{math.ceil(1.0 / target_fpr)} benign samples or a larger target_fpr"
            )
        allowed = math.floor(target_fpr * n + 1e-9)
        # Scores are float32 and so are the comparisons that use the threshold: the next float32 above the
        # cut (a float64 step would round back onto the cut and flag it, and every score tied with it).
        ordered = torch.sort(scores.float(), descending=True).values
        cut = ordered[allowed] if allowed < n else torch.tensor(0.0)
        threshold = float(torch.nextafter(cut.float(), torch.tensor(2.0, dtype=torch.float32)))
        if threshold >= 1.0:
            raise ValueError(
                f"target_fpr={target_fpr} is unreachable: {allowed + 1} benign samples already score 1.0; the "
                "guard cannot separate them (more training data, or another head set, may help)"
            )
        self.threshold = max(threshold, 1e-12)
        self.training["calibration"] = {
            "target_fpr": target_fpr,
            "n_benign": n,
            "achieved_fpr": float((scores >= self.threshold).float().mean()),
        }
        return self.threshold

    # ---- scoring -----------------------------------------------------------------------------------
    def score_features(self, x: Float[Tensor, "batch features"]) -> Float[Tensor, " batch"]:
        """Malicious probability from concatenated head features ``[batch, k * d_head]``; NaN for a row the
        guard cannot judge: any feature not finite (a ``-inf`` times a positive weight would otherwise score
        0.0 and pass), or a logit that overflows. Every caller flags NaN (fail closed)."""
        x = x.float()
        logits = x @ self.weight.to(x.device) + self.bias
        unjudged = ~torch.isfinite(x).all(dim=-1) | ~torch.isfinite(logits)
        return torch.sigmoid(logits).masked_fill(unjudged, float("nan"))

    def score(self, acts: HeadActivations) -> Float[Tensor, " n"]:
        """Malicious probability for each sample of ``acts``. A sample the guard cannot judge (see
        ``score_features``) scores 1.0, so it is flagged at every threshold, or raises with
        ``nonfinite="raise"``, as on every other path."""
        self.check_activations(acts)
        scores = self.score_features(acts.features(self.heads))
        unjudged = torch.isnan(scores)
        if bool(unjudged.any()) and self.nonfinite == "raise":
            raise ValueError(
                f"the guard cannot score sample(s) {unjudged.nonzero().flatten().tolist()[:10]}: NaN or inf in "
                "the safety heads' outputs, or a logit that overflows; collect in float32, or use nonfinite='flag'"
            )
        return scores.masked_fill(unjudged, 1.0)

    def score_inputs(
        self, model: HookedVLM, inputs: VLMInputs | str | Sequence[str]
    ) -> Float[Tensor, " batch"]:
        """Score a prepared batch (or text prompts) with one prefill forward that stops after the deepest
        safety head. A non-finite score is reported as 1.0 (fail closed), or raises with ``nonfinite="raise"``."""
        self.check_model(model)
        inputs = as_batch(model, inputs)
        reading = GuardReading(self, stop_after_capture=True)
        reading.reader.read(model, inputs)
        return reading.scores.masked_fill(reading.nonfinite, 1.0)

    def classify(
        self, model: HookedVLM, prompts: str | Sequence[str], images: Any = None, *, batch_size: int = 16
    ) -> list[Verdict]:
        """One ``Verdict`` per prompt (flagged, score, threshold, each head's share of the logit, the model's
        identity, the guard's hash), from a prefill that stops after the deepest safety head
        (``sahs_lens.guard.classify``): the guard as a moderation call."""
        return classify(self, model, prompts, images, batch_size=batch_size)

    # ---- generation --------------------------------------------------------------------------------
    def generate(
        self,
        model: HookedVLM,
        inputs: VLMInputs | str | Sequence[str],
        max_new_tokens: int = 64,
        *,
        policy: Policy = "refuse",
        refusal_text: str = REFUSAL_TEXT,
        indicating_prompt: str = INDICATING_PROMPT,
        refusal_prefix: str = REFUSAL_PREFIX,
        **generate_kwargs: Any,
    ) -> GuardedGeneration:
        """Generate with the guard scoring every row inside the prefill forward of the same call.

        Args:
            model: the guarded model (must match the guard's provenance).
            inputs: a prepared batch (``model.prepare``), or text prompts (prepared without images).
            max_new_tokens: decoding budget.
            policy: ``"refuse"``, ``"indicate"`` or ``"prefix"`` for flagged rows (see the module docstring).
            refusal_text, indicating_prompt, refusal_prefix: the texts each policy uses.
            **generate_kwargs: passed to ``model.generate_tokens`` (sampling settings, ``fwd_hooks``).

        Returns:
            ``GuardedGeneration`` with ``texts``, ``flagged`` and ``scores`` per row, and the count of
            non-finite scores (flagged).

        Example:
            >>> out = guard.generate(model, model.prepare(prompts, images), max_new_tokens=64)
            >>> [t for t, f in zip(out.texts, out.flagged) if f]
        """
        check_policy(policy)
        self.check_model(model)
        inputs = as_batch(model, inputs)
        reading = GuardReading(self, stop_after_capture=False)
        forced: list[int] = []
        if policy == "prefix":
            forced = model.tokenizer.encode(" " + refusal_prefix.strip(), add_special_tokens=False)
        eos = model.eos_token_ids[0] if model.eos_token_ids else model.pad_token_id

        def processor(step: int, generated: Tensor, logits: Tensor) -> Tensor:
            return policy_logits(logits, reading.flagged, policy=policy, step=step, eos=eos, forced=forced)

        result = model.generate_tokens(
            inputs,
            max_new_tokens,
            prefill_hooks=reading.hooks(),
            logits_processor=processor,
            **generate_kwargs,
        )
        flagged = reading.flagged.tolist()
        texts = list(result.texts)
        if policy == "refuse":
            texts = [refusal_text if f else t for t, f in zip(texts, flagged, strict=True)]
        elif policy == "indicate" and any(flagged):
            rows = [i for i, f in enumerate(flagged) if f]
            warned = model.prepare(
                [f"{inputs.prompts[i]}\n{indicating_prompt}" for i in rows],
                images=[inputs.images[i] for i in rows],
            )
            again = model.generate(warned, max_new_tokens, **generate_kwargs)
            for i, text in zip(rows, again, strict=True):
                texts[i] = text
        return GuardedGeneration(
            texts=texts,
            flagged=flagged,
            scores=reading.scores.tolist(),
            policy=policy,
            nonfinite=int(reading.nonfinite.sum()),
        )

    @contextlib.contextmanager
    def attach_hf(
        self,
        hf_model: nn.Module,
        policy: Literal["refuse", "prefix"] = "refuse",
        tokenizer: Any = None,
        *,
        allow_mismatch: bool = False,
    ) -> Iterator[HFGuardSession]:
        """Guard plain Hugging Face ``generate``: ``o_proj`` pre-hooks score the prefill, a logits processor
        applies the policy. Inputs must be left-padded (the last column is every row's decision position).

        The model must be the one the guard was fitted on: its family, head shape and weight fingerprint
        (``model_adapters.hf_identity``, computed as for a loaded model) are checked against the guard's
        provenance, and a mismatch raises ``ValueError`` before any hook is attached. ``allow_mismatch=True``
        attaches anyway and records what differed in ``session.mismatches``. While the block is open the
        model's lock is held (``model_adapters.concurrency``): other threads' guarded or hooked calls on
        this model wait, so each sees only its own hooks.

        Example:
            >>> with guard.attach_hf(hf_model, tokenizer=processor.tokenizer) as session:
            ...     out = hf_model.generate(**enc, logits_processor=[session.logits_processor])
            >>> session.flagged, session.scores
        """
        check_hf_model(hf_model)
        identity = hf_identity(hf_model)
        fields = tuple(k for k in IDENTITY_FIELDS if k in identity)
        mismatches = identity_mismatches(self.provenance, identity, fields)
        if mismatches and not allow_mismatch:
            raise ValueError(
                f"this guard does not fit this Hugging Face model: {'; '.join(mismatches)}; fit a guard on "
                "activations of this model, or pass allow_mismatch=True to attach anyway (recorded)"
            )
        self.heads.check_fits(identity["n_layers"], identity["n_heads"])
        session = HFGuardSession(self, policy, tokenizer, hf_model, identity["n_heads"])
        session.mismatches = mismatches
        attention = find_language_model(hf_model).attention
        o_projs: list[nn.Module] = [attention[layer].o_proj for layer in self.heads.layers]  # type: ignore[misc]
        with model_lock(hf_model):
            handles = [hf_model.register_forward_pre_hook(session.check_inputs, with_kwargs=True)] + [
                o_proj.register_forward_pre_hook(session.pre_hook(layer))
                for o_proj, layer in zip(o_projs, self.heads.layers, strict=True)
            ]
            try:
                yield session
            finally:
                for handle in handles:
                    handle.remove()

    # ---- provenance --------------------------------------------------------------------------------
    def check_model(self, model: HookedVLM) -> None:
        """Raise ``ValueError`` naming every field in which ``model`` differs from the guard's training model."""
        check_identity(
            self.provenance,
            model.cfg.identity(),
            what="this guard",
            fix="it was fitted on another model or setup: fit a guard on activations of this model",
        )
        self.heads.check_fits(model.cfg.n_layers, model.cfg.n_heads)

    def check_activations(self, acts: HeadActivations) -> None:
        """Raise ``ValueError`` unless ``acts`` come from the guard's model, setup and head shape."""
        acts.check_compatible(self.provenance, what="these activations")
        if acts.d_head != self.d_head:
            raise ValueError(f"activations have d_head {acts.d_head} but the guard expects {self.d_head}")
        self.heads.check_fits(acts.n_layers, acts.n_heads)

    # ---- artifact ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything the guard is, JSON-ready (weights as a list); ``from_dict`` rebuilds it exactly."""
        return {
            **self._meta(),
            "weight": self.weight.tolist(),
            "bias": self.bias,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SafetyHeadGuard:
        """Rebuild a guard from ``to_dict`` output (checked like a saved guard: a clear error, never a KeyError)."""
        if not isinstance(data, dict) or not isinstance(data.get("weight"), list):
            raise ValueError(
                "a guard dictionary needs 'weight' (a list of numbers), as SafetyHeadGuard.to_dict gives"
            )
        if isinstance(data.get("bias"), bool) or not isinstance(data.get("bias"), int | float):
            raise ValueError(f"a guard dictionary needs 'bias' (a number); got {data.get('bias')!r}")
        return cls._from_meta(data, torch.tensor(data["weight"], dtype=torch.float32), float(data["bias"]))

    def _meta(self) -> dict[str, Any]:
        return {
            "format": GUARD_FORMAT,
            "package_version": __version__,
            "heads": self.heads.to_list(),
            "d_head": self.d_head,
            "threshold": self.threshold,
            "provenance": self.provenance,
            "training": self.training,
            "nonfinite": self.nonfinite,
        }

    @classmethod
    def _from_meta(
        cls, meta: Any, weight: Tensor, bias: float, where: str = "the guard data"
    ) -> SafetyHeadGuard:
        check_guard(meta, weight, bias, where=where, fmt=GUARD_FORMAT, nonfinite=NONFINITE)
        return cls(
            HeadSet.from_dict(meta),
            weight.float(),
            bias,
            d_head=meta["d_head"],
            threshold=float(meta["threshold"]),
            provenance=meta["provenance"],
            training=meta["training"],
            nonfinite=meta.get("nonfinite", "flag"),
        )

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``guard.safetensors`` (weights) and ``guard.json`` (heads, threshold, provenance).

        Each file is written atomically and ``guard.json`` last, binding the weights by SHA-256
        (``sahs_lens.atomic_files``): a save interrupted between the two files is refused at load. Refuses to replace a guard already saved in ``directory`` unless ``overwrite=True``.
        """
        directory = Path(directory)
        if (directory / GUARD_JSON).exists() and not overwrite:
            raise FileExistsError(
                f"{directory} already holds a guard; pass overwrite=True or choose another directory"
            )
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"weight": self.weight.contiguous(), "bias": torch.tensor([self.bias], dtype=torch.float64)}
        binding = payload_binding(GUARD_FORMAT, self.heads.to_list())
        digest = write_atomic(directory / GUARD_TENSORS, save_bytes(tensors, metadata=binding))
        write_json_atomic(directory / GUARD_JSON, {**self._meta(), "files": {GUARD_TENSORS: digest}})
        return directory

    @classmethod
    def load(cls, directory: str | Path, model: HookedVLM | None = None) -> SafetyHeadGuard:
        """Read a saved guard (safetensors + JSON: no code runs); with ``model=`` refuse it unless it fits."""
        directory = Path(directory)
        meta, weight, bias = read_guard(
            directory, json_name=GUARD_JSON, tensors_name=GUARD_TENSORS, fmt=GUARD_FORMAT
        )
        guard = cls._from_meta(meta, weight, bias, where=str(directory / GUARD_JSON))
        if model is not None:
            guard.check_model(model)
        return guard
