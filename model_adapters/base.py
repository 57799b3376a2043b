"""``HookedVLM``: one vision-language model, reached only through TransformerLens hook names.

A ``HookedVLM`` holds a live Hugging Face model behind a *backend* (``model_adapters.backends``: ``"hf"``,
the unmodified model with hook points, or ``"bridge"``, TransformerLens' ``TransformerBridge``), the
model's processor, and a prompt template. Neither backend converts or folds any weight, so the numbers are
Hugging Face's own; every attention head's output is reachable as ``blocks.{l}.attn.hook_z`` with shape
``[batch, pos, n_heads, d_head]`` (also under grouped-query attention), on either backend.

The surface is small on purpose: ``prepare`` turns prompts and images into a left-padded ``VLMInputs``
batch (left padding puts every row's last prompt token in the last column: the decision position), and
``__call__`` / ``run_with_cache`` / ``run_with_hooks`` / ``hooks`` / ``generate`` run it. Hooks are only
attached inside context managers and are removed when the block exits, also on error. ``generate`` is a
greedy (or sampling) decode that gives Hugging Face ``generate``'s tokens (on the ``hf`` backend it *is*
Hugging Face ``generate``) while any hooks stay active on every step.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from PIL import Image
from torch import Tensor
from transformer_lens.ActivationCache import ActivationCache

from model_adapters.backends import Backend, Decoding, FwdHook, LogitsProcessor
from model_adapters.batch_checks import check_batch
from model_adapters.concurrency import model_lock
from model_adapters.images import ImageLike, open_image
from model_adapters.language_models import refuse_images
from model_adapters.registry import Family, Template
from model_adapters.sampling import check_decoding
from model_adapters.text_safety import control_strings, safe_user_text

CACHE_OPTIONS = ("pos_slice", "remove_batch_dim", "return_cache_object", "stop_at_layer", "use_cache")
"""The TransformerLens ``run_with_cache`` options (and ``use_cache``, the forward's) ``run_with_cache`` passes on."""


@dataclass(frozen=True)
class VLMConfig:
    """Shape and identity of the wrapped language model (TransformerLens names where they exist)."""

    model_name: str
    family: str
    template: str
    n_layers: int
    n_heads: int
    d_head: int
    d_model: int
    n_key_value_heads: int
    d_vocab: int
    n_ctx: int
    dtype: str
    device: str
    checkpoint: str
    backend: str = "bridge"
    weights_sha256: str | None = None  # "sha256:<hex>" of the one file that held the weights (a GGUF)

    def identity(self) -> dict[str, Any]:
        """The fields an artifact must agree with to be used on this model (``backend`` and
        ``weights_sha256`` are recorded, not compared: both backends give the same activations, and the
        weights' fingerprint ``checkpoint`` already tells checkpoints apart)."""
        extra = {} if self.weights_sha256 is None else {"weights_sha256": self.weights_sha256}
        return {
            **extra,
            "backend": self.backend,
            "model_name": self.model_name,
            "checkpoint": self.checkpoint,
            "family": self.family,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "d_head": self.d_head,
            "template": self.template,
        }


@dataclass
class VLMInputs:
    """A prepared, left-padded batch: token ids, attention mask and the processor's image tensors.

    ``input_ids`` and ``attention_mask`` are ``[batch, pos]``; ``model_kwargs`` holds whatever else the
    processor produced (``pixel_values``, ``image_sizes``, ...), handed to the model unchanged at prefill.
    ``prompts`` are the user prompts, ``texts`` the templated texts, ``images`` the images per row.
    """

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    images: list[Image.Image | None] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def position_ids(self) -> Int[Tensor, "batch pos"]:
        """Positions counted over real tokens only (what Hugging Face ``generate`` derives from the mask)."""
        mask = self.attention_mask.long()
        return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> VLMInputs:
        """Move every tensor to ``device``; floating image tensors are cast to ``dtype`` when given."""
        kwargs = {}
        for key, value in self.model_kwargs.items():
            if isinstance(value, Tensor):
                value = value.to(device)
                if dtype is not None and value.is_floating_point():
                    value = value.to(dtype)
            kwargs[key] = value
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            model_kwargs=kwargs,
        )


@dataclass
class Generation:
    """What ``HookedVLM.generate_tokens`` returns: new tokens per row and their decoded texts.

    ``tokens`` is ``[batch, n_new]``; positions after a row finished hold the pad token. ``finished`` says
    whether each row stopped on an end-of-sequence token.
    """

    tokens: Int[Tensor, "batch new"]
    texts: list[str]
    finished: list[bool]


class HookedVLM:
    """A vision-language model with TransformerLens hooks; see the module docstring.

    Build one with ``model_adapters.load_vlm``. Attributes: ``backend`` (``"hf"`` or ``"bridge"``, see
    ``model_adapters.backends``), ``hf_model`` (the Hugging Face model), ``processor``, ``tokenizer``,
    ``family`` and ``cfg`` (a ``VLMConfig``).
    """

    def __init__(
        self, backend: Backend, processor: Any, family: Family, template: Template, cfg: VLMConfig
    ) -> None:
        self._backend = backend
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.family = family
        self.template = template
        self.cfg = cfg
        gen_cfg = getattr(self.hf_model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_token_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        pad = getattr(gen_cfg, "pad_token_id", None)
        if pad is None:
            pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.eos_token_ids[0] if self.eos_token_ids else 0
        self.pad_token_id: int = int(pad)
        # hooked forwards on one model run one at a time (model_adapters.concurrency)
        self.lock = model_lock(self.hf_model)
        self._control_strings = control_strings(processor)

    # ---- identity ------------------------------------------------------------------------------------
    @property
    def hf_model(self) -> torch.nn.Module:
        return self._backend.hf_model

    @property
    def backend(self) -> str:
        """The backend's name: ``"hf"`` or ``"bridge"``."""
        return self._backend.name

    @property
    def bridge(self) -> Any:
        """The ``TransformerBridge`` (bridge backend only)."""
        if self._backend.name != "bridge":
            raise AttributeError(
                "this model runs on the 'hf' backend, which has no TransformerBridge; load it with "
                "load_vlm(..., backend='bridge') for the bridge"
            )
        return self._backend.bridge  # type: ignore[attr-defined]

    @property
    def device(self) -> torch.device:
        return next(self.hf_model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf_model.parameters()).dtype

    def __repr__(self) -> str:
        c = self.cfg
        return (
            f"HookedVLM({c.model_name!r}, family={c.family}, template={c.template}, {c.n_layers} layers x "
            f"{c.n_heads} heads x d_head {c.d_head}, {c.dtype} on {c.device}, backend={c.backend})"
        )

    def with_template(self, template: str) -> HookedVLM:
        """The same model and weights with another prompt template."""
        tpl = self.family.template(template)
        return HookedVLM(
            self._backend, self.processor, self.family, tpl, replace(self.cfg, template=tpl.name)
        )

    # ---- inputs --------------------------------------------------------------------------------------
    def format_prompt(self, prompt: str, has_image: bool) -> str:
        """The templated text for one prompt (ends with the assistant prefix)."""
        return self.template.render(prompt, has_image, self.processor)

    def prepare(
        self, prompts: str | Sequence[str], images: ImageLike | Sequence[ImageLike] = None
    ) -> VLMInputs:
        """Template, tokenize and left-pad prompts with their images.

        Args:
            prompts: one prompt or a list.
            images: ``None``, or one image (path or PIL image) or ``None`` per prompt.

        Returns:
            ``VLMInputs`` on the model's device, image tensors in the model's dtype.

        Example:
            >>> batch = model.prepare(["How do I bake bread?", "Describe this."], images=[None, "cat.png"])
        """
        if isinstance(prompts, bytes | bytearray):
            raise TypeError("prompts must be strings; got bytes: decode them first (text.decode('utf-8'))")
        if isinstance(prompts, str):
            prompts = [prompts]
            if isinstance(images, (str, Path, Image.Image)):
                images = [images]
        prompts = list(prompts)
        if not prompts:
            raise ValueError("no prompts given; pass at least one prompt string")
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise TypeError(f"prompt {i} is a {type(p).__name__}; prompts must be strings")
        if images is None:
            image_list: list[ImageLike] = [None] * len(prompts)
        elif isinstance(images, (str, Path, Image.Image)):
            raise ValueError(
                f"got a single image for {len(prompts)} prompts; pass a list with one image (or None) per prompt"
            )
        else:
            image_list = list(images)
        if len(image_list) != len(prompts):
            raise ValueError(
                f"got {len(image_list)} images for {len(prompts)} prompts; pass one image (or None) per prompt"
            )
        if not self.family.takes_images:
            refuse_images(image_list, self.cfg.model_name)
        loaded = [open_image(im) for im in image_list]
        # user text is text: control-token strings typed by the user are defused (model_adapters.text_safety)
        # (except in the raw template, whose prompt is the caller's own conversation text)
        controls = () if self.template.control_tokens_in_prompt else self._control_strings
        if self.template.control_tokens_in_prompt:
            _check_image_tokens(prompts, loaded, getattr(self.processor, "image_token", None))
        texts = [
            self.format_prompt(safe_user_text(p, controls), im is not None)
            for p, im in zip(prompts, loaded, strict=True)
        ]
        proc_kwargs = self.family.processor_images(loaded)
        with self.lock:
            if self.family.encode is not None:
                encoded = dict(self.family.encode(self.processor, texts, loaded))
            else:
                encoded = dict(self.processor(text=texts, return_tensors="pt", padding=True, **proc_kwargs))
        encoded.pop("labels", None)  # some processors add training labels; a forward would compute a loss
        input_ids = encoded.pop("input_ids")
        attention_mask = encoded.pop("attention_mask")
        if input_ids.shape[1] > self.cfg.n_ctx:
            longest = int(attention_mask.sum(-1).argmax())
            raise ValueError(
                f"prompt {longest} is {int(attention_mask[longest].sum())} tokens long (images included) but "
                f"the model's context is {self.cfg.n_ctx} tokens; shorten the prompt or use a smaller image"
            )
        batch = VLMInputs(
            input_ids=input_ids,
            attention_mask=attention_mask,
            model_kwargs=dict(encoded),
            prompts=prompts,
            texts=texts,
            images=loaded,
        )
        return batch.to(self.device, self.dtype)

    def _as_inputs(self, inputs: VLMInputs | str | Sequence[str]) -> VLMInputs:
        if isinstance(inputs, VLMInputs):
            return check_batch(inputs, self.cfg.d_vocab)
        return self.prepare(inputs)

    def _forward_kwargs(self, inputs: VLMInputs) -> dict[str, Any]:
        """Keyword arguments of a single forward: no KV cache (a prefill-only pass would build one and drop
        it: ~2x the peak memory of collection on a 16-layer model)."""
        kwargs: dict[str, Any] = {"attention_mask": inputs.attention_mask, "use_cache": False}
        if self.family.positions == "mask":  # what HF generate gives a left-padded prefill
            kwargs["position_ids"] = inputs.position_ids
        return {**kwargs, **inputs.model_kwargs}

    # ---- running -------------------------------------------------------------------------------------
    def __call__(self, inputs: VLMInputs | str | Sequence[str]) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits for a prepared batch (prompts are prepared without images)."""
        batch = self._as_inputs(inputs)
        with self.lock, torch.no_grad():
            return self._backend.forward(batch.input_ids, **self._forward_kwargs(batch))

    def run_with_cache(
        self,
        inputs: VLMInputs | str | Sequence[str],
        names_filter: str | Sequence[str] | Callable[[str], bool] | None = None,
        **kwargs: Any,
    ) -> tuple[Float[Tensor, "batch pos d_vocab"], ActivationCache]:
        """Logits and an ``ActivationCache`` of the hooks that ``names_filter`` selects (TransformerLens').

        Example:
            >>> logits, cache = model.run_with_cache(batch, names_filter=lambda n: n.endswith("hook_z"))
            >>> cache["blocks.3.attn.hook_z"].shape  # [batch, pos, n_heads, d_head]
        """
        unknown = sorted(set(kwargs) - set(CACHE_OPTIONS))
        if unknown:
            near = difflib.get_close_matches(unknown[0], CACHE_OPTIONS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise TypeError(
                f"run_with_cache got unknown keyword(s) {', '.join(unknown)}{hint}; it takes names_filter and "
                f"{', '.join(CACHE_OPTIONS)}"
            )
        batch = self._as_inputs(inputs)
        if isinstance(names_filter, str):
            self.check_hook_names([names_filter])
        elif isinstance(names_filter, Sequence):
            self.check_hook_names(list(names_filter))
        with self.lock, torch.no_grad():
            return self._backend.run_with_cache(
                batch.input_ids, names_filter=names_filter, **{**self._forward_kwargs(batch), **kwargs}
            )

    def run_with_hooks(
        self, inputs: VLMInputs | str | Sequence[str], fwd_hooks: Sequence[FwdHook] = ()
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits with ``fwd_hooks`` (``[(hook name or filter, fn(tensor, hook))]``) active for one forward."""
        with self.hooks(fwd_hooks):
            return self(inputs)

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Sequence[FwdHook] = ()) -> Iterator[HookedVLM]:
        """Attach forward hooks for the duration of a ``with`` block; they are removed on exit and on error.

        Example:
            >>> def zero_head(z, hook):
            ...     z[:, :, 5] = 0.0
            ...     return z
            >>> with model.hooks(fwd_hooks=[("blocks.3.attn.hook_z", zero_head)]):
            ...     texts = model.generate(batch, max_new_tokens=16)
        """
        self.check_hook_names([name for name, _ in fwd_hooks if isinstance(name, str)])
        with self.lock, self._backend.hooks(list(fwd_hooks)):
            yield self

    @property
    def hook_dict(self) -> dict[str, Any]:
        """``{hook name: HookPoint}`` of the backend (TransformerLens' name for it)."""
        return dict(self._backend.hook_dict)

    @property
    def hook_names(self) -> list[str]:
        """Every hook name this model exposes."""
        return sorted(self._backend.hook_dict)

    def check_hook_names(self, names: Sequence[str]) -> None:
        """Raise ``ValueError`` for an unknown hook name, suggesting the nearest valid ones."""
        valid = self._backend.hook_dict
        for name in names:
            if name not in valid:
                near = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
                raise ValueError(
                    f"unknown hook name {name!r} on this model ({self.cfg.n_layers} layers){hint} "
                    "List them with model.hook_names"
                )

    # ---- generation ----------------------------------------------------------------------------------
    def generate(
        self,
        inputs: VLMInputs | str | Sequence[str],
        max_new_tokens: int = 32,
        *,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop_at_eos: bool = True,
        fwd_hooks: Sequence[FwdHook] = (),
    ) -> list[str]:
        """Generate text for every row; hooks (``fwd_hooks`` and any active ``hooks()``) run on every step.

        Greedy by default, with a KV cache; token for token the same as Hugging Face ``generate``.

        Example:
            >>> model.generate(model.prepare(["How do I bake bread?"]), max_new_tokens=32)
        """
        return self.generate_tokens(
            inputs,
            max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            stop_at_eos=stop_at_eos,
            fwd_hooks=fwd_hooks,
        ).texts

    def generate_tokens(
        self,
        inputs: VLMInputs | str | Sequence[str],
        max_new_tokens: int = 32,
        *,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop_at_eos: bool = True,
        fwd_hooks: Sequence[FwdHook] = (),
        prefill_hooks: Sequence[FwdHook] = (),
        logits_processor: LogitsProcessor | None = None,
    ) -> Generation:
        """Like ``generate`` but returns a ``Generation`` (new token ids, texts, finished flags).

        ``fwd_hooks`` run on every forward (prefill and each decoding step); ``prefill_hooks`` only on the
        prefill forward, whose last position is the decision position (the guard reads its heads there and
        costs nothing on decoding steps). ``logits_processor(step, generated [batch, step], logits
        [batch, d_vocab]) -> logits`` may rewrite each step's next-token logits (the guard uses it to force a
        refusal for flagged rows).
        """
        check_decoding(max_new_tokens, do_sample, temperature, top_k, top_p, seed)
        batch = self._as_inputs(inputs)
        prompt_length = int(batch.input_ids.shape[1])
        if prompt_length + max_new_tokens > self.cfg.n_ctx:
            raise ValueError(
                f"the prompt takes {prompt_length} tokens and max_new_tokens={max_new_tokens} more, past the "
                f"model's context of {self.cfg.n_ctx} tokens; ask for at most "
                f"{max(0, self.cfg.n_ctx - prompt_length)} new tokens or shorten the prompt"
            )
        decoding = Decoding(
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            stop_at_eos=stop_at_eos,
            eos_token_ids=tuple(self.eos_token_ids),
            pad_token_id=self.pad_token_id,
            prefill_hooks=list(prefill_hooks),
            logits_processor=logits_processor,
            decode_kwargs=self.family.decode_kwargs,
        )
        self.check_hook_names([name for name, _ in prefill_hooks if isinstance(name, str)])
        model_kwargs = {"attention_mask": batch.attention_mask, **batch.model_kwargs}
        with self.lock, self.hooks(fwd_hooks), torch.no_grad():
            generated, finished = self._backend.generate(batch.input_ids, model_kwargs, decoding)
        texts = self.decode(generated)
        return Generation(tokens=generated, texts=texts, finished=finished.tolist())

    def decode(self, tokens: Int[Tensor, "batch new"]) -> list[str]:
        """Decode generated tokens per row, stopping at the first end-of-sequence token."""
        texts = []
        for row in tokens.tolist():
            cut = next((i for i, t in enumerate(row) if t in self.eos_token_ids), len(row))
            texts.append(self.tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
        return texts


def _check_image_tokens(
    prompts: Sequence[str], images: Sequence[Image.Image | None], token: str | None
) -> None:
    """In a prompt the caller writes (the raw template), one image token per image given."""
    if not token:
        return
    for i, (prompt, image) in enumerate(zip(prompts, images, strict=True)):
        found, given = prompt.count(token), int(image is not None)
        if found > given:
            raise ValueError(
                f"prompt {i} has {found} image tokens ({token}) but {given} image was given for it; this "
                f"template places one image per prompt: write {given} {token} into the prompt"
            )
