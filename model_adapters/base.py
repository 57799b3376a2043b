"""``HookedVLM``: one vision-language model, reached only through TransformerLens hook names.

A ``HookedVLM`` holds a TransformerLens ``TransformerBridge`` around a live Hugging Face model, the
model's processor, and a prompt template. The bridge adds ``HookPoint`` s to the Hugging Face modules
without converting or folding any weight, so the numbers are Hugging Face's own; every attention head's
output is reachable as ``blocks.{l}.attn.hook_z`` with shape ``[batch, pos, n_heads, d_head]`` (also under
grouped-query attention).

The surface is small on purpose: ``prepare`` turns prompts and images into a left-padded ``VLMInputs``
batch (left padding puts every row's last prompt token in the last column: the decision position), and
``__call__`` / ``run_with_cache`` / ``run_with_hooks`` / ``hooks`` / ``generate`` run it. Hooks are only
attached inside context managers and are removed when the block exits, also on error. ``generate`` is a
greedy (or sampling) decoding loop with a KV cache that reproduces Hugging Face ``generate`` token for
token while any hooks stay active on every step.
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

from model_adapters.concurrency import model_lock
from model_adapters.images import ImageLike, open_image
from model_adapters.registry import Family, Template
from model_adapters.sampling import pick_tokens
from model_adapters.text_safety import control_strings, safe_user_text

HookFn = Callable[..., Any]
FwdHook = tuple[str | Callable[[str], bool], HookFn]
CACHE_OPTIONS = ("pos_slice", "remove_batch_dim", "return_cache_object", "stop_at_layer", "use_cache")
"""The TransformerLens ``run_with_cache`` options (and ``use_cache``, the forward's) ``run_with_cache`` passes on."""
# A logits processor for generate: (step, generated tokens so far [batch, step], logits [batch, vocab]) -> logits
LogitsProcessor = Callable[[int, Tensor, Tensor], Tensor]


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

    def identity(self) -> dict[str, Any]:
        """The fields an artifact must agree with to be used on this model."""
        return {
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

    Build one with ``model_adapters.load_vlm``. Attributes: ``bridge`` (the ``TransformerBridge``),
    ``hf_model`` (the wrapped Hugging Face model, shared with the bridge), ``processor``, ``tokenizer``,
    ``family`` and ``cfg`` (a ``VLMConfig``).
    """

    def __init__(
        self, bridge: Any, processor: Any, family: Family, template: Template, cfg: VLMConfig
    ) -> None:
        self.bridge = bridge
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
        return self.bridge.original_model  # type: ignore[no-any-return]

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
            f"{c.n_heads} heads x d_head {c.d_head}, {c.dtype} on {c.device})"
        )

    def with_template(self, template: str) -> HookedVLM:
        """The same model and weights with another prompt template."""
        tpl = self.family.template(template)
        return HookedVLM(self.bridge, self.processor, self.family, tpl, replace(self.cfg, template=tpl.name))

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
        loaded = [open_image(im) for im in image_list]
        # user text is text: control-token strings typed by the user are defused (model_adapters.text_safety)
        # (except in the raw template, whose prompt is the caller's own conversation text)
        controls = () if self.template.control_tokens_in_prompt else self._control_strings
        texts = [
            self.format_prompt(safe_user_text(p, controls), im is not None)
            for p, im in zip(prompts, loaded, strict=True)
        ]
        proc_kwargs = self.family.processor_images(loaded)
        with self.lock:
            encoded = self.processor(text=texts, return_tensors="pt", padding=True, **proc_kwargs)
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
            return inputs
        return self.prepare(inputs)

    def _forward_kwargs(self, inputs: VLMInputs) -> dict[str, Any]:
        """Keyword arguments of a single forward: no KV cache (a prefill-only pass would build one and drop
        it: ~2x the peak memory of collection on a 16-layer model)."""
        return {
            "attention_mask": inputs.attention_mask,
            "position_ids": inputs.position_ids,
            "use_cache": False,
            **inputs.model_kwargs,
        }

    # ---- running -------------------------------------------------------------------------------------
    def __call__(self, inputs: VLMInputs | str | Sequence[str]) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits for a prepared batch (prompts are prepared without images)."""
        batch = self._as_inputs(inputs)
        with self.lock, torch.no_grad():
            return self.bridge(batch.input_ids, **self._forward_kwargs(batch))  # type: ignore[no-any-return]

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
            return self.bridge.run_with_cache(  # type: ignore[no-any-return]
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
        with self.lock, self.bridge.hooks(fwd_hooks=list(fwd_hooks)):
            yield self

    @property
    def hook_names(self) -> list[str]:
        """Every hook name this model exposes."""
        return sorted(self.bridge.hook_dict)

    def check_hook_names(self, names: Sequence[str]) -> None:
        """Raise ``ValueError`` for an unknown hook name, suggesting the nearest valid ones."""
        valid = self.bridge.hook_dict
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
        batch = self._as_inputs(inputs)
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1; got {max_new_tokens}")
        prompt_length = int(batch.input_ids.shape[1])
        if prompt_length + max_new_tokens > self.cfg.n_ctx:
            raise ValueError(
                f"the prompt takes {prompt_length} tokens and max_new_tokens={max_new_tokens} more, past the "
                f"model's context of {self.cfg.n_ctx} tokens; ask for at most "
                f"{max(0, self.cfg.n_ctx - prompt_length)} new tokens or shorten the prompt"
            )
        if do_sample and temperature <= 0:
            raise ValueError(
                f"temperature must be > 0 when sampling; got {temperature} (use do_sample=False)"
            )
        generator = None
        if do_sample:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0 if seed is None else seed)
        n = batch.batch_size
        device = batch.input_ids.device
        eos = torch.tensor(self.eos_token_ids, device=device, dtype=torch.long)
        finished = torch.zeros(n, dtype=torch.bool, device=device)
        generated = torch.empty(n, 0, dtype=torch.long, device=device)
        step_ids = batch.input_ids
        mask = batch.attention_mask
        positions = batch.position_ids
        extra: dict[str, Any] = dict(batch.model_kwargs)
        past: Any = None
        with self.lock, self.hooks(fwd_hooks), torch.no_grad():
            for step in range(max_new_tokens):
                with self.hooks(prefill_hooks if step == 0 else ()):
                    logits, past = self.bridge(
                        step_ids,
                        attention_mask=mask,
                        position_ids=positions,
                        past_key_values=past,
                        use_cache=True,
                        return_type="logits_and_cache",
                        **extra,
                    )
                if past is None:
                    raise RuntimeError(
                        "the model returned no KV cache; this transformers version is not supported by the "
                        "TransformerLens bridge (transformers 5.24.0 renamed the cache argument). Install "
                        "transformers<5.24"
                    )
                next_logits = logits[:, -1, :].float()
                if logits_processor is not None:
                    next_logits = logits_processor(step, generated, next_logits)
                next_tokens = pick_tokens(next_logits, do_sample, temperature, top_k, top_p, generator)
                if stop_at_eos:
                    next_tokens = torch.where(
                        finished, torch.full_like(next_tokens, self.pad_token_id), next_tokens
                    )
                    finished |= torch.isin(next_tokens, eos)
                generated = torch.cat([generated, next_tokens[:, None]], dim=1)
                if stop_at_eos and bool(finished.all()):
                    break
                step_ids = next_tokens[:, None]
                mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
                positions = positions[:, -1:] + 1
                extra = {k: v for k, v in batch.model_kwargs.items() if k in self.family.decode_kwargs}
        texts = self.decode(generated)
        return Generation(tokens=generated, texts=texts, finished=finished.tolist())

    def decode(self, tokens: Int[Tensor, "batch new"]) -> list[str]:
        """Decode generated tokens per row, stopping at the first end-of-sequence token."""
        texts = []
        for row in tokens.tolist():
            cut = next((i for i, t in enumerate(row) if t in self.eos_token_ids), len(row))
            texts.append(self.tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
        return texts
