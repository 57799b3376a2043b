"""Train the model organism: a tiny LLaVA that learns, from scratch, to refuse harmful requests.

**What a model organism is.** Biologists study fruit flies because they are small, fast and share the
mechanisms they care about with larger animals. Interpretability borrows the idea: a *model organism* is a
model small enough to train, probe and break on a laptop that still has the behaviour under study. Here the
behaviour is the one the SAHs paper dissects in LLaVA: the model reads a request (as text, or written inside
an image) and either answers or refuses. Random tiny checkpoints cannot stand in for that: they have no
refusal behaviour, so "safety heads" found in them mean nothing, ablating heads changes nothing measurable,
and a guard has nothing to guard. A model that *learned* to refuse makes every step of the method testable
end to end: its heads can really come to carry "this request is harmful", removing them can really lower the
refusal rate, and the refusal rate on held-out prompts it never saw is a real, measured number.

**What it is.** A real Hugging Face ``LlavaForConditionalGeneration`` checkpoint (CLIP vision tower, two-layer
projector, Llama language model) with a byte-level BPE tokenizer trained on all its training text, the
llava-hf chat template (``USER: <image>\\n... ASSISTANT:``) and a CLIP image processor, saved in float16 so
the whole directory ships in the repository. ``model_adapters.load_vlm(path)`` loads it like any hub model.

**What it learns** is in ``recipe`` (the answers, the training requests, why it is safety-tuned on text
only); ``build`` makes the untrained checkpoint and ``batches`` the training batches.

**How the vision tower learns to read.** A refuse-or-comply decision is one bit per image: far too little
for a vision tower trained from scratch in minutes (the first attempts ignored the image entirely). So, as
real VLMs do with CLIP pre-training and LLaVA's feature-alignment stage, typographic batches add a
contrastive image-text loss (``_align_loss``): the image token of each word cell must pick out, among all
word cells of the batch, the language model's own embedding of that word. It adds no weights (the checkpoint
is a plain LLaVA); it puts *which word is written* into the image tokens, in the language model's
embedding space. Whether what the language model learned about harmful text carries over to harmful images
is left to training, as in real VLMs. (Restating the drawn text, one character per patch, was tried first as
a denser reading signal; the organism did not learn it in the budget.)

**How.** Every training prompt is built exactly as ``HookedVLM.prepare`` builds it (the family's template,
the processor's image-token expansion), the answer follows as tokens with the end-of-sequence token ``</s>``
after it (so greedy generation stops), and the loss is the cross-entropy on the answer tokens only, the first
answer token (where refuse-or-comply is decided) weighted ``decision_weight``. AdamW, linear warm-up and
cosine decay, bfloat16 autocast (3x faster on CPUs with AMX / AVX512-BF16; ``--no-bf16`` elsewhere). Each
batch holds one modality (typographic, text with pictures, or text alone: similar lengths, little padding)
and mixes harmful and benign requests. Everything random (initialisation, data order, which refusal, which
ordinary picture) flows from ``seed``: the same seed on the same machine, torch version and thread count
gives the same weights, bit for bit.

Run it with ``python -m sahs_lens.organism.train --out DIR`` (about half an hour on 2 CPU cores; on a
machine shared with other jobs set ``OMP_WAIT_POLICY=PASSIVE``, or ``--threads 1``, so that busy-waiting
threads do not slow it several-fold) or ``train_organism(out_dir, seed=0)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sahs_lens.organism.batches import Batch, BatchSampler, encode_batch
from sahs_lens.organism.build import build_organism_checkpoint
from sahs_lens.organism.evaluate import write_model_card
from sahs_lens.organism.recipe import OrganismConfig, training_items

__all__ = ["machine_description", "main", "train_organism"]


def _loss(model: Any, batch: Batch, decision_weight: float = 1.0) -> Tensor:
    """Mean cross-entropy over the answer tokens; the first one (the decision) weighs ``decision_weight``."""
    outputs = model.model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        pixel_values=batch.pixel_values,
        use_cache=False,
    )
    hidden = outputs.last_hidden_state[batch.loss_mask]  # [n_answer_tokens, d_model]
    targets = batch.input_ids[:, 1:][batch.loss_mask[:, :-1]]
    logits = model.lm_head(hidden)
    losses = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    # the first True of each row's loss mask predicts the first answer token
    first = batch.loss_mask & ~torch.nn.functional.pad(batch.loss_mask[:, :-1], (1, 0), value=False)
    weights = torch.where(first[batch.loss_mask], decision_weight, 1.0)
    return (losses * weights).sum() / weights.sum()


def _align_loss(
    model: Any, tokenizer: Any, pixel_values: Tensor, words: Sequence[Sequence[str]], cfg: OrganismConfig
) -> Tensor:
    """CLIP-style contrastive loss between word cells and word embeddings (training only; no new weights).

    Each image token of a typographic image holds one word (``render.render_grid``). Its projected feature
    (what the language model receives) must pick out, among all word cells of the batch, the language
    model's own input embedding of that word (mean over its BPE tokens, detached).

    This stands in for the image-text pre-training that real vision towers get (CLIP) and for LLaVA's
    feature-alignment stage: it teaches the tower and projector to put *which word is written* into the image
    tokens, in the language model's embedding space, instead of leaving the language model to discover
    reading from the refuse-or-comply signal alone (one bit per image: far too little for minutes of CPU).
    Whether what the language model learned about harmful *text* then carries over to harmful *images* is
    left to training, as in real VLMs.
    """
    out = model.model.get_image_features(pixel_values=pixel_values)
    cells = out.pooler_output if hasattr(out, "pooler_output") else out
    if isinstance(cells, (list, tuple)):
        cells = torch.stack(list(cells))  # [batch, n_cells, d_model]
    embed = model.model.language_model.embed_tokens.weight
    features, targets = [], []
    for row, row_words in enumerate(words):
        for index, word in enumerate(row_words):
            ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
            features.append(cells[row, index])
            targets.append(embed[torch.tensor(ids)].mean(dim=0))
    feature = torch.nn.functional.normalize(torch.stack(features).float(), dim=-1)
    target = torch.nn.functional.normalize(torch.stack(targets).detach().float(), dim=-1)
    logits = feature @ target.T / cfg.align_temperature
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(features)))


def _lr_factor(step: int, cfg: OrganismConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def machine_description() -> dict[str, Any]:
    """CPU model, logical cores available, torch threads, platform and library versions."""
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def train_organism(
    out_dir: str | Path,
    *,
    seed: int = 0,
    steps: int | None = None,
    config: OrganismConfig | None = None,
    log_every: int = 25,
    progress: bool = True,
    **overrides: Any,
) -> Path:
    """Train the organism from scratch and save a Hugging Face checkpoint directory to ``out_dir``.

    Args:
        out_dir: where the checkpoint goes (created; an existing checkpoint there is overwritten).
        seed: the one seed for initialisation, data order, answers and pictures.
        steps: optimisation steps (default ``OrganismConfig.steps``).
        config: a full ``OrganismConfig``; ``seed``/``steps``/``overrides`` replace its fields.
        log_every: print the loss every this many steps (when ``progress``).
        **overrides: any other ``OrganismConfig`` field, e.g. ``n_layers=2`` for a quick test.

    Returns:
        ``out_dir``, holding config.json, model.safetensors (float16), tokenizer and processor files,
        chat_template.jinja and ``metrics.json`` whose ``"training"`` record holds the config, the loss
        curve, the time and the machine (``evaluate.write_model_card`` adds the held-out figures).

    Example:
        >>> path = train_organism("/tmp/organism", steps=3, n_layers=2, d_model=64)  # doctest: +SKIP
        >>> model = load_vlm(path)  # doctest: +SKIP
    """
    cfg = config or OrganismConfig()
    changes: dict[str, Any] = dict(overrides)
    changes["seed"] = seed
    if steps is not None:
        changes["steps"] = steps
    cfg = dataclasses.replace(cfg, **changes)
    if cfg.steps < 1:
        raise ValueError(f"steps must be at least 1; got {cfg.steps}")
    out = Path(out_dir)
    torch.set_num_threads(cfg.threads)
    start, cpu_start = time.perf_counter(), time.process_time()
    items = training_items(cfg.typographic_attack_fraction, cfg.seed)
    model, processor = build_organism_checkpoint(out, cfg, items)
    model.config._attn_implementation = "sdpa"  # fast for training; load_vlm uses eager for inference
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, cfg))
    sampler = BatchSampler(items, cfg)
    losses: list[float] = []
    align_losses: list[float] = []
    for step in range(cfg.steps):
        prompts, images, answers, drawn = sampler.next()
        batch = encode_batch(processor, prompts, images, answers)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = _loss(model, batch, cfg.decision_weight)
            if drawn is not None and cfg.align_weight > 0 and batch.pixel_values is not None:
                align = _align_loss(model, processor.tokenizer, batch.pixel_values, drawn, cfg)
                align_losses.append(align.item())
                loss = loss + cfg.align_weight * align
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if progress and (step % log_every == 0 or step == cfg.steps - 1):
            elapsed = time.perf_counter() - start
            recent = sum(losses[-log_every:]) / len(losses[-log_every:])
            align_note = (
                f"  align {sum(align_losses[-5:]) / len(align_losses[-5:]):.3f}" if align_losses else ""
            )
            print(f"step {step + 1}/{cfg.steps}  loss {recent:.4f}{align_note}  {elapsed:.0f}s", flush=True)
    train_seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    model.eval()
    model.config._attn_implementation = "eager"
    model.half().save_pretrained(out)  # float16 on disk; load_vlm loads float32 by default
    n_train = {
        kind: sum(1 for i in items if (i.kind, i.label) == key)
        for kind, key in {
            "harmful_text": ("text", 1),
            "benign_text": ("text", 0),
            "figstep_attack": ("typographic", 1),
            "figstep_benign": ("typographic", 0),
        }.items()
    }
    n_train["benign_overlap"] = sum(1 for i in items if i.overlap)
    record = {
        "config": cfg.to_dict(),
        "train_seconds": round(train_seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),  # all threads; on a machine shared with others wall time grows
        "machine": machine_description(),
        "train_sizes": n_train,
        "samples_seen": cfg.steps * cfg.batch_size,
        "loss_curve": [round(v, 5) for v in losses],
        "align_loss_curve": [round(v, 5) for v in align_losses],
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "command": (
            f"python -m sahs_lens.organism.train --out DIR --seed {cfg.seed} --steps {cfg.steps} "
            f"--threads {cfg.threads}" + ("" if cfg.bf16 else " --no-bf16")
        ),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    (out / "metrics.json").write_text(json.dumps({"training": record}, indent=1) + "\n", encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sahs_lens.organism.train",
        description="Train the sahs_lens model organism (a tiny LLaVA that refuses harmful requests).",
        epilog="Example: python -m sahs_lens.organism.train --out /tmp/organism --seed 0",
    )
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help=f"default {OrganismConfig.steps}")
    parser.add_argument(
        "--threads", type=int, default=None, help=f"torch threads (default {OrganismConfig.threads})"
    )
    parser.add_argument(
        "--no-bf16",
        action="store_true",
        help="train in float32 (CPUs without bfloat16 support: slower there)",
    )
    parser.add_argument(
        "--evaluate", action="store_true", help="then evaluate on the held-out sets and write the model card"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"bf16": not args.no_bf16}
    if args.threads is not None:
        overrides["threads"] = args.threads
    out = train_organism(args.out, seed=args.seed, steps=args.steps, **overrides)
    print(f"checkpoint written to {out}")
    if args.evaluate:
        write_model_card(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
